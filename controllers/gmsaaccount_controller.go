// Package controllers holds the reconcilers of gmsa-operator. Each is thin:
// read, compute the desired state with the pure packages under internal/,
// apply it with server-side apply, report status once.
package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/account"
	"github.com/gmsa-operator/gmsa-operator/internal/credspec"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
)

// CredentialSpecGVK is the kind of the credspecs the operator manages.
var CredentialSpecGVK = schema.GroupVersionKind{Group: credspeccrd.Group, Version: "v1", Kind: credspeccrd.Kind}

const (
	indexCredentialSpecName = "gmsa.io/credentialSpecName"
	indexNamespace          = "gmsa.io/namespace"
	// indexAccount indexes generated objects by their gmsa.io/account
	// label, so that listing one account's objects does not scan them all.
	indexAccount = "gmsa.io/account"
)

// The GmsaAccount controller's permissions. It may grant `use` of credspecs
// only because it holds `use` itself (RBAC escalation prevention); it never
// uses a credspec. finalizers/update lets it set blockOwnerDeletion on the
// owner references of what it generates.
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsaaccounts,verbs=list;watch
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsaaccounts/status,verbs=patch
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsaaccounts/finalizers,verbs=update
// +kubebuilder:rbac:groups=windows.k8s.io,resources=gmsacredentialspecs,verbs=get;list;watch;create;update;delete;use
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;rolebindings,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// GmsaAccountReconciler makes, for each GmsaAccount, its credspec, the
// ClusterRole allowing `use` of it and the RoleBindings of the listed
// service accounts.
type GmsaAccountReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server; it is used only when an object
	// the account should own is missing from the cache, to tell "absent"
	// from "someone else's".
	APIReader client.Reader
	// Recorder records Kubernetes Events on the GmsaAccount.
	Recorder recorder.EventRecorder
	// MaxConcurrentReconciles is how many GmsaAccounts are reconciled at
	// once.
	MaxConcurrentReconciles int

	// foreignObjects remembers objects found to belong to someone else, so
	// that a stalled account is re-checked with reads, not failing creates.
	foreignObjects sync.Map
}

type objectID struct {
	kind string
	key  client.ObjectKey
}

// SetupWithManager registers the reconciler, its indexes and its watches.
func (r *GmsaAccountReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &gmsav1alpha1.GmsaAccount{}, indexCredentialSpecName, func(o client.Object) []string {
		return []string{account.CredentialSpecName(o.(*gmsav1alpha1.GmsaAccount))}
	}); err != nil {
		return fmt.Errorf("index GmsaAccounts by credspec name: %w", err)
	}
	if err := idx.IndexField(ctx, &gmsav1alpha1.GmsaAccount{}, indexNamespace, func(o client.Object) []string {
		return account.Namespaces(account.Subjects(o.(*gmsav1alpha1.GmsaAccount)))
	}); err != nil {
		return fmt.Errorf("index GmsaAccounts by namespace: %w", err)
	}

	credSpec := &unstructured.Unstructured{}
	credSpec.SetGroupVersionKind(CredentialSpecGVK)
	byAccountLabel := func(o client.Object) []string {
		if v, ok := o.GetLabels()[gmsav1alpha1.LabelAccount]; ok {
			return []string{v}
		}
		return nil
	}
	for _, obj := range []client.Object{&rbacv1.RoleBinding{}, credSpec.DeepCopy()} {
		if err := idx.IndexField(ctx, obj, indexAccount, byAccountLabel); err != nil {
			return fmt.Errorf("index %T by account: %w", obj, err)
		}
	}

	// The operator creates its objects itself: their creation needs no
	// reconcile. Changes and deletions (drift) do.
	notCreated := builder.WithPredicates(predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }})
	return ctrl.NewControllerManagedBy(mgr).
		Named("gmsaaccount").
		// Status writes change neither generation nor annotations: they
		// trigger no reconcile. An annotation change forces one.
		For(&gmsav1alpha1.GmsaAccount{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&rbacv1.ClusterRole{}, notCreated).
		Owns(&rbacv1.RoleBinding{}, notCreated).
		// Owned and referenced credspecs alike, by name.
		Watches(credSpec, handler.EnqueueRequestsFromMapFunc(r.accountsUsing)).
		// A deleted account may free a credspec name for a newer one.
		Watches(&gmsav1alpha1.GmsaAccount{}, handler.EnqueueRequestsFromMapFunc(r.rivalsOf),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				UpdateFunc:  func(e event.UpdateEvent) bool { return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() },
				DeleteFunc:  func(event.DeleteEvent) bool { return true },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		// A namespace that appears gets its RoleBinding.
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.accountsInNamespace),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc: func(event.CreateEvent) bool { return true },
				UpdateFunc: func(e event.UpdateEvent) bool {
					return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
				},
				DeleteFunc:  func(event.DeleteEvent) bool { return true },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

func (r *GmsaAccountReconciler) accountsByIndex(ctx context.Context, index, value string) []reconcile.Request {
	list := &gmsav1alpha1.GmsaAccountList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{index: value}); err != nil {
		log.FromContext(ctx).Error(err, "list GmsaAccounts", "index", index, "value", value)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, a := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: a.Name}})
	}
	return reqs
}

func (r *GmsaAccountReconciler) accountsUsing(ctx context.Context, o client.Object) []reconcile.Request {
	return r.accountsByIndex(ctx, indexCredentialSpecName, o.GetName())
}

func (r *GmsaAccountReconciler) rivalsOf(ctx context.Context, o client.Object) []reconcile.Request {
	return r.accountsByIndex(ctx, indexCredentialSpecName, account.CredentialSpecName(o.(*gmsav1alpha1.GmsaAccount)))
}

func (r *GmsaAccountReconciler) accountsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.accountsByIndex(ctx, indexNamespace, o.GetName())
}

// Reconcile brings one GmsaAccount's generated objects to the desired
// state and writes its status once, only when it changed.
func (r *GmsaAccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	acct := &gmsav1alpha1.GmsaAccount{}
	if err := r.Client.Get(ctx, req.NamespacedName, acct); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !acct.DeletionTimestamp.IsZero() {
		// Everything it generated carries its owner reference: the garbage
		// collector removes it.
		return ctrl.Result{}, nil
	}

	changes := &changeLog{}
	outcome, err := r.reconcile(ctx, acct, changes)
	changes.record(r.Recorder, acct)
	if err != nil {
		outcome.Problem = &account.Problem{Reason: gmsav1alpha1.ReasonReconcileError, Message: err.Error(), Kind: account.Transient}
	}
	if perr := r.writeStatus(ctx, acct, outcome); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
	}
	if err == nil && outcome.Problem != nil && outcome.Problem.Reason == gmsav1alpha1.ReasonRBACConflict {
		// The foreign object is invisible to the label-restricted cache:
		// its deletion brings no event, so look again later.
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	return ctrl.Result{}, err
}

func (r *GmsaAccountReconciler) writeStatus(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, o account.Outcome) error {
	next := account.Status(acct, o, metav1.Now())
	if equality.Semantic.DeepEqual(acct.Status, next) {
		return nil
	}
	if p := o.Problem; p != nil && p.Kind == account.Stalled {
		if old := findCondition(acct.Status.Conditions, gmsav1alpha1.ConditionStalled); old == nil || old.Message != p.Message {
			r.Recorder.Eventf(acct, nil, corev1.EventTypeWarning, p.Reason, "Refuse", "%s", p.Message)
		}
	}
	patch := client.MergeFrom(acct.DeepCopy())
	acct.Status = next
	if err := r.Client.Status().Patch(ctx, acct, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

func findCondition(cs []metav1.Condition, t string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// reconcile runs the steps in order. A step that finds a problem a person
// must solve returns it in the outcome; an API error is returned as error.
func (r *GmsaAccountReconciler) reconcile(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *changeLog) (account.Outcome, error) {
	o := account.Outcome{CredentialSpecName: account.CredentialSpecName(acct)}

	problem, err := r.reconcileCredentialSpec(ctx, acct, changes)
	if err != nil {
		return o, fmt.Errorf("credspec %q: %w", o.CredentialSpecName, err)
	}
	if problem != nil && problem.Kind == account.Stalled {
		// Never grant use of a credspec that is not this account's: take
		// back a grant made before the conflict arose.
		o.Problem = problem
		return o, r.revoke(ctx, acct, changes)
	}
	if err := r.deleteStaleCredentialSpecs(ctx, acct, changes); err != nil {
		return o, err
	}

	rbacProblem, err := r.ensure(ctx, acct, account.DesiredClusterRole(acct), &rbacv1.ClusterRole{}, repairClusterRole, changes)
	if err != nil {
		return o, fmt.Errorf("ClusterRole %q: %w", account.ClusterRoleName(acct), err)
	}
	if rbacProblem != nil {
		o.Problem = rbacProblem
		return o, nil
	}
	o.ClusterRoleName = account.ClusterRoleName(acct)

	bound, pending, rbProblem, err := r.reconcileRoleBindings(ctx, acct, changes)
	o.BoundSubjects, o.PendingNamespaces = bound, pending
	if err != nil {
		return o, err
	}
	switch {
	case rbProblem != nil:
		o.Problem = rbProblem
	case problem != nil:
		o.Problem = problem
	}
	return o, nil
}

// reconcileCredentialSpec makes sure the generated or raw credspec exists
// as desired, or that the referenced one exists and is usable.
func (r *GmsaAccountReconciler) reconcileCredentialSpec(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *changeLog) (*account.Problem, error) {
	name := account.CredentialSpecName(acct)
	current, err := r.getCredentialSpec(ctx, name)
	if err != nil {
		return nil, err
	}

	if account.ModeOf(acct) == account.ModeExisting {
		if current == nil {
			return &account.Problem{Kind: account.Waiting, Reason: gmsav1alpha1.ReasonCredentialSpecNotFound,
				Message: fmt.Sprintf("GMSACredentialSpec %q does not exist; the account becomes Ready as soon as it is created", name)}, nil
		}
		content, _, _ := unstructured.NestedMap(current.Object, "credspec")
		if err := credspec.Check(content); err != nil {
			return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonInvalidCredentialSpec,
				Message: fmt.Sprintf("GMSACredentialSpec %q cannot be used: %v", name, err)}, nil
		}
		return nil, nil
	}

	if p, err := r.olderClaim(ctx, acct, name); err != nil || p != nil {
		if err == nil && current != nil && controlledBy(current, acct) {
			// The older account gets the name: give up the credspec.
			err = r.deleteOwned(ctx, current)
			if err == nil {
				changes.deleted = append(changes.deleted, refTo(current))
			}
		}
		return p, err
	}
	if current != nil && !controlledBy(current, acct) {
		// The cache drops managedFields; read the object once more to say
		// who made it.
		_ = r.APIReader.Get(ctx, client.ObjectKey{Name: name}, current)
		return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonCredentialSpecConflict,
			Message: fmt.Sprintf("GMSACredentialSpec %q already exists and %s; it is left unchanged. Grant its use with credentialSpec.existing, or choose another credentialSpecName", name, describeOwner(current))}, nil
	}
	desired, err := account.DesiredCredentialSpec(acct)
	if err != nil {
		return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonInvalidCredentialSpec, Message: err.Error()}, nil
	}
	current = &unstructured.Unstructured{}
	current.SetGroupVersionKind(CredentialSpecGVK)
	p, err := r.ensure(ctx, acct, desired, current, repairCredentialSpec, changes)
	if p != nil && p.Reason == gmsav1alpha1.ReasonRBACConflict {
		p.Reason = gmsav1alpha1.ReasonCredentialSpecConflict
	}
	return p, err
}

// getCredentialSpec returns the credspec from the cache (which holds every
// credspec), or nil.
func (r *GmsaAccountReconciler) getCredentialSpec(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CredentialSpecGVK)
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return u, nil
}

// olderClaim reports a conflict when an older GmsaAccount generates a
// credspec of the same name: the older one keeps it.
func (r *GmsaAccountReconciler) olderClaim(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, name string) (*account.Problem, error) {
	list := &gmsav1alpha1.GmsaAccountList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{indexCredentialSpecName: name}); err != nil {
		return nil, fmt.Errorf("list GmsaAccounts: %w", err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == acct.UID || account.ModeOf(other) == account.ModeExisting || !other.DeletionTimestamp.IsZero() {
			continue
		}
		if older(other, acct) {
			return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonCredentialSpecConflict,
				Message: fmt.Sprintf("GMSACredentialSpec %q is claimed by the older GmsaAccount %q; it is left to that account. Choose another credentialSpecName", name, other.Name)}, nil
		}
	}
	return nil, nil
}

func older(a, b *gmsav1alpha1.GmsaAccount) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func controlledBy(obj metav1.Object, acct *gmsav1alpha1.GmsaAccount) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == acct.UID
}

func describeOwner(obj metav1.Object) string {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return fmt.Sprintf("belongs to %s %q", ref.Kind, ref.Name)
	}
	if m := managerOf(obj); m != "" {
		return fmt.Sprintf("was made by %q, not by this GmsaAccount", m)
	}
	return "was not made by this GmsaAccount"
}

// managerOf names the field manager that created an object, if known.
func managerOf(obj metav1.Object) string {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != "" {
			return mf.Manager
		}
	}
	return ""
}

// revoke deletes the account's ClusterRole, so that its RoleBindings grant
// nothing while the account is stalled.
func (r *GmsaAccountReconciler) revoke(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *changeLog) error {
	cr := &rbacv1.ClusterRole{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: account.ClusterRoleName(acct)}, cr)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || !controlledBy(cr, acct) {
		return err
	}
	if err := r.deleteOwned(ctx, cr); err != nil {
		return fmt.Errorf("revoke ClusterRole %q: %w", cr.Name, err)
	}
	cr.SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind("ClusterRole"))
	changes.deleted = append(changes.deleted, refTo(cr))
	return nil
}

// deleteStaleCredentialSpecs removes credspecs this account generated
// under a name it no longer uses.
func (r *GmsaAccountReconciler) deleteStaleCredentialSpecs(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *changeLog) error {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(CredentialSpecGVK.GroupVersion().WithKind(credspeccrd.Kind + "List"))
	if err := r.Client.List(ctx, list, client.MatchingFields{indexAccount: acct.Name}); err != nil {
		return fmt.Errorf("list credspecs: %w", err)
	}
	// The credspec of the current name is never stale, even when the
	// account now only references it.
	keep := account.CredentialSpecName(acct)
	for i := range list.Items {
		cs := &list.Items[i]
		if cs.GetName() == keep || !controlledBy(cs, acct) {
			continue
		}
		if err := r.deleteOwned(ctx, cs); err != nil {
			return fmt.Errorf("delete stale credspec %q: %w", cs.GetName(), err)
		}
		changes.deleted = append(changes.deleted, refTo(cs))
	}
	return nil
}

func (r *GmsaAccountReconciler) deleteOwned(ctx context.Context, obj client.Object) error {
	uid := obj.GetUID()
	err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// ensure makes one generated object as desired. It reads the object from
// the cache; when it is not there it creates it, so that an object someone
// else made under the same name (invisible to the label-restricted cache)
// makes the create fail and is left alone. An object of this account that
// differs from the desired one is put back with server-side apply. A
// conflict is returned as a Problem; it never writes to a foreign object.
func (r *GmsaAccountReconciler) ensure(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, desired, current client.Object,
	repair func(current, desired client.Object) bool, changes *changeLog) (*account.Problem, error) {
	kind := desired.GetObjectKind().GroupVersionKind().Kind
	key := client.ObjectKeyFromObject(desired)
	id := objectID{kind: kind, key: key}
	err := r.Client.Get(ctx, key, current)
	if apierrors.IsNotFound(err) {
		if _, known := r.foreignObjects.Load(id); known {
			err = r.APIReader.Get(ctx, key, current)
		} else {
			err = apierrors.NewNotFound(schema.GroupResource{}, key.Name)
		}
		if apierrors.IsNotFound(err) {
			err = r.Client.Create(ctx, desired.DeepCopyObject().(client.Object), client.FieldOwner(gmsav1alpha1.FieldManager))
			if err == nil {
				r.foreignObjects.Delete(id)
				changes.created = append(changes.created, refTo(desired))
				return nil, nil
			}
			if !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("create %s %s: %w", kind, key, err)
			}
			// Not in the cache but in the cluster: someone else's, or ours
			// and the cache is behind.
			err = r.APIReader.Get(ctx, key, current)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", kind, key, err)
	}
	if !controlledBy(current, acct) {
		r.foreignObjects.Store(id, struct{}{})
		return r.foreign(kind, current), nil
	}
	if !repair(current, desired) {
		return nil, nil
	}
	// An update carries the resourceVersion that was read: if the object
	// was replaced meanwhile (by someone else, perhaps), it fails with a
	// conflict and is looked at again, never overwritten.
	if err := r.Client.Update(ctx, current, client.FieldOwner(gmsav1alpha1.FieldManager)); err != nil {
		return nil, fmt.Errorf("update %s %s: %w", kind, key, err)
	}
	changes.updated = append(changes.updated, refTo(desired))
	return nil, nil
}

// repairClusterRole puts the desired rules and labels into current and
// says whether anything changed.
func repairClusterRole(current, desired client.Object) bool {
	cur, want := current.(*rbacv1.ClusterRole), desired.(*rbacv1.ClusterRole)
	changed := mergeLabels(cur, want.Labels)
	if !equality.Semantic.DeepEqual(cur.Rules, want.Rules) || cur.AggregationRule != nil {
		cur.Rules, cur.AggregationRule = want.Rules, nil
		changed = true
	}
	return changed
}

// repairRoleBinding puts the desired subjects and labels into current and
// says whether anything changed.
func repairRoleBinding(current, desired client.Object) bool {
	cur, want := current.(*rbacv1.RoleBinding), desired.(*rbacv1.RoleBinding)
	changed := mergeLabels(cur, want.Labels)
	if !equality.Semantic.DeepEqual(cur.Subjects, want.Subjects) {
		cur.Subjects = want.Subjects
		changed = true
	}
	return changed
}

// repairCredentialSpec replaces the credspec content wholly (so that keys
// no longer wanted disappear) and the labels, and says whether anything
// changed.
func repairCredentialSpec(current, desired client.Object) bool {
	cur, want := current.(*unstructured.Unstructured), desired.(*unstructured.Unstructured)
	changed := mergeLabels(cur, want.GetLabels())
	a, _ := json.Marshal(cur.Object["credspec"])
	b, _ := json.Marshal(want.Object["credspec"])
	if !bytes.Equal(a, b) {
		cur.Object["credspec"] = want.Object["credspec"]
		changed = true
	}
	return changed
}

// mergeLabels sets the wanted labels on obj, keeping any others.
func mergeLabels(obj metav1.Object, want map[string]string) bool {
	labels := obj.GetLabels()
	changed := false
	for k, v := range want {
		if labels[k] != v {
			if labels == nil {
				labels = map[string]string{}
			}
			labels[k] = v
			changed = true
		}
	}
	if changed {
		obj.SetLabels(labels)
	}
	return changed
}

func (r *GmsaAccountReconciler) foreign(kind string, obj client.Object) *account.Problem {
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonRBACConflict,
		Message: fmt.Sprintf("%s %q already exists and %s; it is left unchanged. Delete or rename it so the operator can create its own", kind, name, describeOwner(obj))}
}

// changeLog collects what one reconcile created, repaired and deleted, so
// that it is reported in at most three Events.
type changeLog struct {
	created, updated, deleted []*corev1.ObjectReference
}

func refTo(obj client.Object) *corev1.ObjectReference {
	gvk := obj.GetObjectKind().GroupVersionKind()
	return &corev1.ObjectReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

func (c *changeLog) merge(o *changeLog) {
	c.created = append(c.created, o.created...)
	c.updated = append(c.updated, o.updated...)
	c.deleted = append(c.deleted, o.deleted...)
}

// record emits one Event per kind of change. The first object changed is
// the Event's related object, so that Events of different reconciles are
// not folded into one series.
func (c *changeLog) record(rec recorder.EventRecorder, acct *gmsav1alpha1.GmsaAccount) {
	emit := func(refs []*corev1.ObjectReference, reason, action, verb string) {
		if len(refs) == 0 {
			return
		}
		parts := make([]string, 0, len(refs))
		for _, r := range refs {
			name := r.Name
			if r.Namespace != "" {
				name = r.Namespace + "/" + name
			}
			parts = append(parts, fmt.Sprintf("%s %q", r.Kind, name))
		}
		rec.Eventf(acct, refs[0], corev1.EventTypeNormal, reason, action, "%s %s", verb, strings.Join(parts, ", "))
	}
	emit(c.created, "Created", "Create", "Created")
	emit(c.updated, "Updated", "Update", "Put back to the desired state:")
	emit(c.deleted, "Deleted", "Delete", "Deleted, no longer wanted:")
}

// reconcileRoleBindings binds the ClusterRole in every listed namespace that
// exists, and deletes the bindings of namespaces no longer listed.
func (r *GmsaAccountReconciler) reconcileRoleBindings(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *changeLog) (bound []rbacv1.Subject, pending []string, problem *account.Problem, err error) {
	subjects := account.Subjects(acct)
	namespaces := account.Namespaces(subjects)
	// Namespaces are independent: bind them in parallel, so that the
	// latency of a reconcile does not grow with their number.
	type result struct {
		pending bool
		problem *account.Problem
		changes changeLog
		err     error
	}
	results := make([]result, len(namespaces))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, ns := range namespaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res := &results[i]
			exists, err := r.namespaceUsable(ctx, ns)
			if err != nil || !exists {
				res.pending, res.err = !exists, err
				return
			}
			res.problem, res.err = r.reconcileRoleBinding(ctx, acct, ns, subjects[ns], &res.changes)
			if res.err != nil {
				res.err = fmt.Errorf("RoleBinding %s/%s: %w", ns, account.RoleBindingName(acct), res.err)
			}
		}()
	}
	wg.Wait()
	var (
		conflicts []string
		errs      []error
	)
	for i, res := range results {
		changes.merge(&res.changes)
		switch {
		case res.err != nil:
			errs = append(errs, res.err)
		case res.pending:
			pending = append(pending, namespaces[i])
		case res.problem != nil:
			conflicts = append(conflicts, res.problem.Message)
		default:
			bound = append(bound, subjects[namespaces[i]]...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return bound, pending, nil, err
	}
	if err := r.deleteStaleRoleBindings(ctx, acct, subjects, changes); err != nil {
		return bound, pending, nil, err
	}
	if len(conflicts) > 0 {
		problem = &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonRBACConflict, Message: strings.Join(conflicts, "; ")}
	}
	return bound, pending, problem, nil
}

func (r *GmsaAccountReconciler) namespaceUsable(ctx context.Context, name string) (bool, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return ns.DeletionTimestamp.IsZero(), nil
}

func (r *GmsaAccountReconciler) reconcileRoleBinding(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, ns string, subjects []rbacv1.Subject, changes *changeLog) (*account.Problem, error) {
	desired := account.DesiredRoleBinding(acct, ns, subjects)
	current := &rbacv1.RoleBinding{}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), current); err == nil && controlledBy(current, acct) && current.RoleRef != desired.RoleRef {
		// roleRef is immutable: replace the binding.
		if err := r.deleteOwned(ctx, current); err != nil {
			return nil, err
		}
	}
	return r.ensure(ctx, acct, desired, &rbacv1.RoleBinding{}, repairRoleBinding, changes)
}

func (r *GmsaAccountReconciler) deleteStaleRoleBindings(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, subjects map[string][]rbacv1.Subject, changes *changeLog) error {
	list := &rbacv1.RoleBindingList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{indexAccount: acct.Name}); err != nil {
		return fmt.Errorf("list RoleBindings: %w", err)
	}
	for i := range list.Items {
		rb := &list.Items[i]
		if _, wanted := subjects[rb.Namespace]; wanted || !controlledBy(rb, acct) {
			continue
		}
		if err := r.deleteOwned(ctx, rb); err != nil {
			return fmt.Errorf("delete RoleBinding %s/%s: %w", rb.Namespace, rb.Name, err)
		}
		rb.SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind("RoleBinding"))
		changes.deleted = append(changes.deleted, refTo(rb))
	}
	return nil
}
