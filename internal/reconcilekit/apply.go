package reconcilekit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/csaupgrade"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gmsa-operator/gmsa-operator/internal/manifest"
)

// Labels and names the operator marks its objects with (the values of
// api/v1alpha1's LabelManagedBy, ManagedByValue and FieldManager).
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "gmsa-operator"
	FieldManager   = "gmsa-operator"
	// AppliedHashAnnotation holds a hash of what the operator last applied
	// to an object: a field removed from the desired object changes it, so
	// the next apply (which no longer sets the field) removes the field.
	AppliedHashAnnotation = "gmsa.io/applied-hash"
)

// ForeignError says that an object of the name the operator wants exists and
// was not made by it (for the owner it is applied for). The operator never
// changes such an object.
type ForeignError struct {
	GVK schema.GroupVersionKind
	Key client.ObjectKey
	// Owner says who made it, when known: the controller owner's kind and
	// name, or the app.kubernetes.io/managed-by label.
	Owner string
}

func (e *ForeignError) Error() string {
	name := e.Key.Name
	if e.Key.Namespace != "" {
		name = e.Key.Namespace + "/" + name
	}
	msg := fmt.Sprintf("%s %s exists and was not made by gmsa-operator", e.GVK.Kind, name)
	if e.Owner != "" {
		msg += " (" + e.Owner + ")"
	}
	return msg + "; it is left untouched: delete or rename it, and the operator creates its own"
}

// IsForeign returns the ForeignError in err's chain, if any.
func IsForeign(err error) (*ForeignError, bool) {
	var f *ForeignError
	ok := errors.As(err, &f)
	return f, ok
}

// ErrCacheLag says that an object the operator made is not in its cache yet.
// It is normal for a moment after a create; the caller requeues quietly
// (RequeueAfter CacheLagRequeue) and reports nothing.
var ErrCacheLag = errors.New("not in the operator's cache yet")

// Result says what Apply did.
type Result int

const (
	// Unchanged: the object was as desired; nothing was written.
	Unchanged Result = iota
	// Created: the object did not exist and was created.
	Created
	// Updated: the object differed and was put back to the desired state.
	Updated
)

func (r Result) String() string {
	return [...]string{"unchanged", "created", "updated"}[r]
}

// Applier writes desired objects under the operator's field manager. A
// reconcile that finds everything as desired makes no request but cache
// reads. Before any write it checks, on the live object, that the object is
// the operator's: same controller owner as the desired object (or, for an
// object without owner references such as a CRD, the managed-by label).
// Someone else's object is never written: Apply returns *ForeignError.
type Applier struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server, to tell an object missing from
	// the (label-restricted) cache from an absent one.
	APIReader client.Reader
	// MetadataOnly lists the kinds the cache holds as metadata only; the
	// applier reads those as metadata (and must not start a typed cache).
	MetadataOnly map[schema.GroupKind]bool

	foreignOnce  sync.Once
	knownForeign *foreignSet
}

// ForeignMemory is how many objects found to be someone else's the applier
// remembers (the least recently seen are forgotten first). For those, a
// cache miss is checked with a read instead of a create that would fail: a
// stalled owner is re-checked without writes. Forgetting one costs one
// failing create, never a wrong answer.
const ForeignMemory = 4096

// foreignSet is the bounded memory of foreign objects.
type foreignSet struct{ c *lru.Cache }

type objectID struct {
	gvk schema.GroupVersionKind
	key client.ObjectKey
}

func newForeignSet(size int) *foreignSet        { return &foreignSet{c: lru.New(size)} }
func (f *foreignSet) add(id objectID)           { f.c.Add(id, struct{}{}) }
func (f *foreignSet) remove(id objectID)        { f.c.Remove(id) }
func (f *foreignSet) len() int                  { return f.c.Len() }
func (f *foreignSet) has(id objectID) (ok bool) { _, ok = f.c.Get(id); return ok }
func (a *Applier) foreignObjects() *foreignSet {
	a.foreignOnce.Do(func() { a.knownForeign = newForeignSet(ForeignMemory) })
	return a.knownForeign
}

// ApplyOption changes one Apply.
type ApplyOption func(*applyOptions)

type applyOptions struct{ adopt bool }

// Adopt lets Apply take over an object someone else made (the user asked for
// it explicitly, as with a CRD policy of Adopt).
func Adopt() ApplyOption { return func(o *applyOptions) { o.adopt = true } }

// Apply makes the object match desired.
//   - Absent: it is created (one request).
//   - Present and the operator's, every field desired set has its value, and
//     the applied hash matches: nothing is written.
//   - Present and the operator's, but different: it is put back with
//     server-side apply, forcing the fields desired sets.
//   - Present and someone else's: *ForeignError, nothing is written.
//   - Made by the operator a moment ago, not yet cached: ErrCacheLag.
//
// The result is Created or Updated only when the write succeeded.
func (a *Applier) Apply(ctx context.Context, desired client.Object, opts ...ApplyOption) (Result, error) {
	var o applyOptions
	for _, opt := range opts {
		opt(&o)
	}
	gvk, err := a.gvk(desired)
	if err != nil {
		return Unchanged, err
	}
	want, err := ApplyMap(desired)
	if err != nil {
		return Unchanged, err
	}
	key := client.ObjectKeyFromObject(desired)
	logger := log.FromContext(ctx).WithValues("kind", gvk.Kind, "object", key)

	live, have, err := a.readCached(ctx, gvk, key)
	switch {
	case apierrors.IsNotFound(err):
		created, err := a.create(ctx, gvk, key, want, desired, o)
		if err != nil || !created {
			return Unchanged, err
		}
		logger.Info("created")
		return Created, nil
	case err != nil:
		return Unchanged, fmt.Errorf("read %s %s: %w", gvk.Kind, key, err)
	}
	if !o.adopt && !Owns(desired, live) {
		return Unchanged, a.foreign(ctx, gvk, key, desired)
	}
	if Subset(want, have) {
		logger.V(1).Info("as desired; no write")
		return Unchanged, nil
	}
	if err := a.update(ctx, gvk, key, want); err != nil {
		return Unchanged, err
	}
	logger.Info("put back to the desired state")
	return Updated, nil
}

// readCached reads the live object from the cache and returns it with its
// content as a map.
func (a *Applier) readCached(ctx context.Context, gvk schema.GroupVersionKind, key client.ObjectKey) (client.Object, map[string]any, error) {
	var live client.Object
	if a.MetadataOnly[gvk.GroupKind()] {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		live = m
	} else {
		obj, err := a.Client.Scheme().New(gvk)
		if err != nil {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			obj = u
		}
		live = obj.(client.Object)
	}
	if err := a.Client.Get(ctx, key, live); err != nil {
		return nil, nil, err
	}
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
	return live, have, err
}

// create creates the object. When the API server already has one (the cache
// is label-restricted, so it may hide someone else's object), it looks at it:
// the operator's own is cache lag; anyone else's is a ForeignError, unless
// adopt, in which case it is applied over. An object already known to be
// someone else's is read first instead.
func (a *Applier) create(ctx context.Context, gvk schema.GroupVersionKind, key client.ObjectKey, want map[string]any, desired client.Object, o applyOptions) (bool, error) {
	id := objectID{gvk: gvk, key: key}
	known := a.foreignObjects()
	found := &metav1.PartialObjectMetadata{}
	found.SetGroupVersionKind(gvk)
	if known.has(id) {
		switch err := a.APIReader.Get(ctx, key, found); {
		case apierrors.IsNotFound(err):
			known.remove(id) // gone: create ours
		case err != nil:
			return false, fmt.Errorf("read %s %s: %w", gvk.Kind, key, err)
		default:
			return a.existing(ctx, id, want, desired, found, o)
		}
	}
	u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(want)}
	u.SetGroupVersionKind(gvk)
	err := a.Client.Create(ctx, u, client.FieldOwner(FieldManager))
	if err == nil {
		return true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, fmt.Errorf("create %s %s: %w", gvk.Kind, key, err)
	}
	if err := a.APIReader.Get(ctx, key, found); err != nil {
		if apierrors.IsNotFound(err) { // deleted in between: the next pass creates it
			return false, ErrCacheLag
		}
		return false, fmt.Errorf("read %s %s: %w", gvk.Kind, key, err)
	}
	return a.existing(ctx, id, want, desired, found, o)
}

// existing decides about an object the API server has and the cache does
// not: adopt it, wait for the cache (it is the operator's), or report it as
// someone else's (and remember that).
func (a *Applier) existing(ctx context.Context, id objectID, want map[string]any, desired client.Object, found *metav1.PartialObjectMetadata, o applyOptions) (bool, error) {
	switch {
	case o.adopt:
		return true, a.update(ctx, id.gvk, id.key, want)
	case Owns(desired, found):
		a.foreignObjects().remove(id)
		return false, fmt.Errorf("%s %s: %w", id.gvk.Kind, id.key, ErrCacheLag)
	}
	a.foreignObjects().add(id)
	log.FromContext(ctx).V(1).Info("found someone else's object under the desired name; left untouched", "kind", id.gvk.Kind, "object", id.key)
	return false, &ForeignError{GVK: id.gvk, Key: id.key, Owner: describeOwner(found)}
}

// foreign confirms with the API server that a cached object is not the
// operator's (the cache may be behind) and says whose it is: the cache
// drops managedFields, which name the manager that made it.
func (a *Applier) foreign(ctx context.Context, gvk schema.GroupVersionKind, key client.ObjectKey, desired client.Object) error {
	found := &metav1.PartialObjectMetadata{}
	found.SetGroupVersionKind(gvk)
	switch err := a.APIReader.Get(ctx, key, found); {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s %s was deleted: %w", gvk.Kind, key, ErrCacheLag)
	case err != nil:
		return fmt.Errorf("read %s %s: %w", gvk.Kind, key, err)
	case Owns(desired, found):
		return fmt.Errorf("%s %s: %w", gvk.Kind, key, ErrCacheLag)
	}
	log.FromContext(ctx).V(1).Info("found someone else's object under the desired name; left untouched", "kind", gvk.Kind, "object", key)
	return &ForeignError{GVK: gvk, Key: key, Owner: describeOwner(found)}
}

// update writes want with server-side apply, forcing the fields it sets (the
// operator is their only rightful owner). An object first written by a
// create (or by an older operator's updates) has its fields under an Update
// entry of the operator's field manager, which server-side apply would never
// release: they are moved to the Apply entry first (client-go's csaupgrade),
// so that a field no longer desired is removed.
func (a *Applier) update(ctx context.Context, gvk schema.GroupVersionKind, key client.ObjectKey, want map[string]any) error {
	full := &unstructured.Unstructured{}
	full.SetGroupVersionKind(gvk)
	if err := a.APIReader.Get(ctx, key, full); err != nil {
		return fmt.Errorf("read %s %s: %w", gvk.Kind, key, err)
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(full, sets.New(FieldManager), FieldManager)
	if err != nil {
		return fmt.Errorf("%s %s: move field ownership to server-side apply: %w", gvk.Kind, key, err)
	}
	if patch != nil {
		if err := a.Client.Patch(ctx, full, client.RawPatch(types.JSONPatchType, patch)); err != nil {
			return fmt.Errorf("%s %s: move field ownership to server-side apply: %w", gvk.Kind, key, err)
		}
	}
	u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(want)}
	u.SetGroupVersionKind(gvk)
	//nolint:staticcheck // Patch with client.Apply takes unstructured objects as they are.
	err = a.Client.Patch(ctx, u, client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership)
	if apierrors.IsInvalid(err) {
		// Server-side apply merges list sets and maps with what other
		// managers own, and the merge itself can be invalid (a Warn added
		// to validationActions next to the Deny the operator applies).
		// The object is the operator's: replace its content whole, with a
		// JSON patch guarded by the resourceVersion just read.
		log.FromContext(ctx).Info("server-side apply cannot merge with someone's change; replacing the object's content", "kind", gvk.Kind, "object", key, "reason", err.Error())
		ops := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": full.GetResourceVersion()}}
		for k, v := range want {
			if k == "metadata" || k == "apiVersion" || k == "kind" || k == "status" {
				continue
			}
			op := "add"
			if _, ok := full.Object[k]; ok {
				op = "replace"
			}
			ops = append(ops, map[string]any{"op": op, "path": "/" + k, "value": v})
		}
		body, merr := json.Marshal(ops)
		if merr != nil {
			return fmt.Errorf("%s %s: encode the replacement: %w", gvk.Kind, key, merr)
		}
		err = a.Client.Patch(ctx, full, client.RawPatch(types.JSONPatchType, body), client.FieldOwner(FieldManager))
	}
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, key, err)
	}
	return nil
}

func (a *Applier) gvk(obj client.Object) (schema.GroupVersionKind, error) {
	if gvk := obj.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
		return gvk, nil
	}
	gvks, _, err := a.Client.Scheme().ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return schema.GroupVersionKind{}, fmt.Errorf("no kind for %T: %w", obj, err)
	}
	return gvks[0], nil
}

// Owns reports whether live is the operator's object for the owner desired
// names: live carries the managed-by label, and the same controller owner
// (UID) as desired; or, when desired has no controller owner, just the label.
func Owns(desired, live metav1.Object) bool {
	if live.GetLabels()[LabelManagedBy] != ManagedByValue {
		return false
	}
	want := metav1.GetControllerOf(desired)
	if want == nil {
		return true
	}
	got := metav1.GetControllerOf(live)
	return got != nil && got.UID == want.UID
}

// describeOwner says who made an object, as far as its metadata tells.
func describeOwner(obj metav1.Object) string {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return fmt.Sprintf("it belongs to %s %q", ref.Kind, ref.Name)
	}
	if by := obj.GetLabels()[LabelManagedBy]; by != "" {
		return "managed by " + by
	}
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != "" {
			return fmt.Sprintf("made by %q", mf.Manager)
		}
	}
	return ""
}

// ApplyMap converts a typed object into the map server-side apply takes:
// without status, creationTimestamp or null values, and with the applied
// hash annotation.
func ApplyMap(obj client.Object) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	m = manifest.DropNulls(m).(map[string]any)
	hash, err := applyHash(m)
	if err != nil {
		return nil, err
	}
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		m["metadata"] = md
	}
	annotations, _ := md["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
	}
	annotations[AppliedHashAnnotation] = hash
	md["annotations"] = annotations
	return m, nil
}

func applyHash(want map[string]any) (string, error) {
	b, err := json.Marshal(want) // map keys are sorted: the hash is stable
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12]), nil
}

// Subset reports whether every field set in want has the same value in
// have. Lists must have the same length and match item by item, so that a
// removed or added item counts as a difference; maps in have may hold more
// (fields the API server defaults, or other managers own). An empty map or
// list in want matches an absent field (the API server drops empty objects
// such as objectSelector: {}).
func Subset(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			hv, ok := h[k]
			if !ok {
				if isEmpty(wv) {
					continue
				}
				return false
			}
			if !Subset(wv, hv) {
				return false
			}
			// A label selector means what all its terms say together: a
			// term someone added narrows it, so it must match exactly
			// (the API server defaults nothing in one).
			if selectorKeys[k] && !Subset(hv, wv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return len(w) == 0 && !ok && have == nil
		}
		for i := range w {
			if !Subset(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(want, have)
	}
}

// selectorKeys name the fields that hold label selectors in the objects the
// operator applies.
var selectorKeys = map[string]bool{"namespaceSelector": true, "objectSelector": true, "selector": true}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}
