package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/manifest"
)

// errForeign says that an object of the name the operator wants exists and
// was not made by it. The operator never changes such an object.
type errForeign struct {
	gvk   schema.GroupVersionKind
	key   client.ObjectKey
	owner string
}

func (e *errForeign) Error() string {
	name := e.key.Name
	if e.key.Namespace != "" {
		name = e.key.Namespace + "/" + name
	}
	msg := fmt.Sprintf("%s %s exists and was not made by gmsa-operator", e.gvk.Kind, name)
	if e.owner != "" {
		msg += " (managed by " + e.owner + ")"
	}
	return msg + "; it is left untouched: delete or rename it, and the operator creates its own"
}

// applier writes desired objects with server-side apply under the
// operator's field manager, and only when the cached object differs from
// them in a field they set: a reconcile that finds everything as desired
// makes no write request.
type applier struct {
	client    client.Client
	apiReader client.Reader
	scheme    *runtime.Scheme
}

// ensure makes the object match desired. It reads the object from the cache
// (label-restricted: it sees only what the operator made); when the cache
// has none, it asks the API server, and an object found there belongs to
// someone else: ensure returns *errForeign and writes nothing. It returns
// whether it wrote.
func (a *applier) ensure(ctx context.Context, desired client.Object) (bool, error) {
	gvk, err := a.gvk(desired)
	if err != nil {
		return false, err
	}
	want, err := toApplyMap(desired)
	if err != nil {
		return false, err
	}
	// The hash of what is applied goes with it: a field removed from the
	// desired object changes the hash, and the next apply (which no longer
	// sets the field) removes it from the live object. The subset check
	// alone would never notice a removal.
	hash, err := applyHash(want)
	if err != nil {
		return false, err
	}
	md := want["metadata"].(map[string]any)
	annotations, _ := md["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
	}
	annotations[AppliedHashAnnotation] = hash
	md["annotations"] = annotations
	live, err := a.scheme.New(gvk)
	if err != nil {
		return false, err
	}
	liveObj := live.(client.Object)
	key := client.ObjectKeyFromObject(desired)
	switch err := a.client.Get(ctx, key, liveObj); {
	case apierrors.IsNotFound(err):
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(gvk)
		switch err := a.apiReader.Get(ctx, key, meta); {
		case err == nil && sameController(meta, desired):
			// Made by this operator for this owner a moment ago: the
			// cache has not caught up yet. Not a conflict; retry.
			return false, fmt.Errorf("%s %s is not in the operator's cache yet; retrying", gvk.Kind, key)
		case err == nil:
			return false, &errForeign{gvk: gvk, key: key, owner: meta.Labels[gmsav1alpha1.LabelManagedBy]}
		case !apierrors.IsNotFound(err):
			return false, fmt.Errorf("read %s %s: %w", gvk.Kind, key, err)
		}
	case err != nil:
		return false, fmt.Errorf("read %s %s: %w", gvk.Kind, key, err)
	default:
		have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(liveObj)
		if err != nil {
			return false, err
		}
		if subset(want, have) {
			return false, nil
		}
	}
	return true, a.apply(ctx, gvk, want)
}

// AppliedHashAnnotation holds a hash of what the operator last applied to
// an object.
const AppliedHashAnnotation = "gmsa.io/applied-hash"

func applyHash(want map[string]any) (string, error) {
	b, err := json.Marshal(want) // map keys are sorted: the hash is stable
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12]), nil
}

// sameController reports whether found has the same controller owner
// reference as desired (and desired has one).
func sameController(found metav1.Object, desired metav1.Object) bool {
	want := metav1.GetControllerOf(desired)
	got := metav1.GetControllerOf(found)
	return want != nil && got != nil && want.UID == got.UID && found.GetLabels()[gmsav1alpha1.LabelManagedBy] == gmsav1alpha1.ManagedByValue
}

// apply writes want with server-side apply, forcing ownership of the
// fields it sets (the operator is their only rightful owner).
func (a *applier) apply(ctx context.Context, gvk schema.GroupVersionKind, want map[string]any) error {
	u := &unstructured.Unstructured{Object: want}
	u.SetGroupVersionKind(gvk)
	//nolint:staticcheck // Patch with client.Apply takes unstructured objects as they are.
	if err := a.client.Patch(ctx, u, client.Apply, client.FieldOwner(gmsav1alpha1.FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, client.ObjectKeyFromObject(u), err)
	}
	return nil
}

func (a *applier) gvk(obj client.Object) (schema.GroupVersionKind, error) {
	if gvk := obj.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
		return gvk, nil
	}
	gvks, _, err := a.scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return schema.GroupVersionKind{}, fmt.Errorf("no kind for %T: %w", obj, err)
	}
	return gvks[0], nil
}

// toApplyMap converts a typed object into the map server-side apply takes:
// without status, creationTimestamp or null values.
func toApplyMap(obj client.Object) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return manifest.DropNulls(m).(map[string]any), nil
}

// subset reports whether every field set in want has the same value in
// have. Lists must have the same length and match item by item, so that a
// removed or added item counts as a difference; maps in have may hold more
// (fields the API server defaults, or other managers own).
func subset(want, have any) bool {
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
			if !subset(wv, hv) {
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
			if !subset(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(want, have)
	}
}

// isEmpty: an empty map or list in want matches an absent field (the API
// server drops empty objects such as objectSelector: {}).
func isEmpty(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}
