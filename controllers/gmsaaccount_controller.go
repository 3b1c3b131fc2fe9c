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

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
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
)

// The GmsaAccount controller's permissions. It may grant `use` of credspecs
// only because it holds `use` itself (RBAC escalation prevention); it never
// uses a credspec.
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsaaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsaaccounts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsaaccounts/finalizers,verbs=update
// +kubebuilder:rbac:groups=windows.k8s.io,resources=gmsacredentialspecs,verbs=get;list;watch;create;update;patch;delete;use
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;rolebindings,verbs=get;list;watch;create;update;patch;delete
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
	return ctrl.NewControllerManagedBy(mgr).
		Named("gmsaaccount").
		For(&gmsav1alpha1.GmsaAccount{}).
		Owns(&rbacv1.ClusterRole{}).
		Owns(&rbacv1.RoleBinding{}).
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

	outcome, err := r.reconcile(ctx, acct)
	if err != nil {
		outcome.Problem = &account.Problem{Reason: gmsav1alpha1.ReasonReconcileError, Message: err.Error(), Kind: account.Transient}
	}
	if perr := r.writeStatus(ctx, acct, outcome); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
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
	if err := r.Client.Status().Patch(ctx, acct, patch); err != nil {
		return fmt.Errorf("write status: %w", client.IgnoreNotFound(err))
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
func (r *GmsaAccountReconciler) reconcile(ctx context.Context, acct *gmsav1alpha1.GmsaAccount) (account.Outcome, error) {
	o := account.Outcome{CredentialSpecName: account.CredentialSpecName(acct)}

	problem, err := r.reconcileCredentialSpec(ctx, acct)
	if err != nil {
		return o, fmt.Errorf("credspec %q: %w", o.CredentialSpecName, err)
	}
	if problem != nil && problem.Kind == account.Stalled {
		// Never grant use of a credspec that is not this account's.
		o.Problem = problem
		return o, nil
	}
	if err := r.deleteStaleCredentialSpecs(ctx, acct); err != nil {
		return o, err
	}

	rbacProblem, err := r.reconcileClusterRole(ctx, acct)
	if err != nil {
		return o, fmt.Errorf("ClusterRole %q: %w", account.ClusterRoleName(acct), err)
	}
	if rbacProblem != nil {
		o.Problem = rbacProblem
		return o, nil
	}
	o.ClusterRoleName = account.ClusterRoleName(acct)

	bound, pending, rbProblem, err := r.reconcileRoleBindings(ctx, acct)
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
func (r *GmsaAccountReconciler) reconcileCredentialSpec(ctx context.Context, acct *gmsav1alpha1.GmsaAccount) (*account.Problem, error) {
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
		return p, err
	}
	if current != nil && !controlledBy(current, acct) {
		return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonCredentialSpecConflict,
			Message: fmt.Sprintf("GMSACredentialSpec %q already exists and %s; it is left unchanged. Grant its use with credentialSpec.existing, or choose another credentialSpecName", name, describeOwner(current))}, nil
	}
	desired, err := account.DesiredCredentialSpec(acct)
	if err != nil {
		return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonInvalidCredentialSpec, Message: err.Error()}, nil
	}
	if current != nil && credSpecUpToDate(current, desired) {
		return nil, nil
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired), client.FieldOwner(gmsav1alpha1.FieldManager), client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	r.recordWrite(acct, current == nil, ref(account.CredentialSpecAPIVersion, credspeccrd.Kind, "", name))
	return nil, nil
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

func credSpecUpToDate(current, desired *unstructured.Unstructured) bool {
	if !hasLabels(current.GetLabels(), desired.GetLabels()) {
		return false
	}
	if ref := metav1.GetControllerOf(current); ref == nil || ref.UID != desired.GetOwnerReferences()[0].UID {
		return false
	}
	a, _ := json.Marshal(current.Object["credspec"])
	b, _ := json.Marshal(desired.Object["credspec"])
	return bytes.Equal(a, b)
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// deleteStaleCredentialSpecs removes credspecs this account generated
// under a name it no longer uses.
func (r *GmsaAccountReconciler) deleteStaleCredentialSpecs(ctx context.Context, acct *gmsav1alpha1.GmsaAccount) error {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(CredentialSpecGVK.GroupVersion().WithKind(credspeccrd.Kind + "List"))
	if err := r.Client.List(ctx, list, client.MatchingLabels{gmsav1alpha1.LabelAccount: acct.Name}); err != nil {
		return fmt.Errorf("list credspecs: %w", err)
	}
	keep := ""
	if account.ModeOf(acct) != account.ModeExisting {
		keep = account.CredentialSpecName(acct)
	}
	for i := range list.Items {
		cs := &list.Items[i]
		if cs.GetName() == keep || !controlledBy(cs, acct) {
			continue
		}
		if err := r.deleteOwned(ctx, cs); err != nil {
			return fmt.Errorf("delete stale credspec %q: %w", cs.GetName(), err)
		}
		r.Recorder.Eventf(acct, cs, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted GMSACredentialSpec %q, no longer used", cs.GetName())
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

// reconcileClusterRole makes sure the ClusterRole allowing `use` of the
// credspec exists as desired.
func (r *GmsaAccountReconciler) reconcileClusterRole(ctx context.Context, acct *gmsav1alpha1.GmsaAccount) (*account.Problem, error) {
	desired := account.DesiredClusterRole(acct)
	current := &rbacv1.ClusterRole{}
	found, err := r.getOwnedOrForeign(ctx, client.ObjectKey{Name: *desired.Name}, current)
	if err != nil {
		return nil, err
	}
	if found {
		if !controlledBy(current, acct) {
			return r.foreign(acct, "ClusterRole", current), nil
		}
		extracted, err := rbacv1ac.ExtractClusterRole(current, gmsav1alpha1.FieldManager)
		if err != nil {
			return nil, err
		}
		if equality.Semantic.DeepEqual(extracted, desired) {
			return nil, nil
		}
	}
	if err := r.Client.Apply(ctx, desired, client.FieldOwner(gmsav1alpha1.FieldManager), client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	r.recordWrite(acct, !found, ref("rbac.authorization.k8s.io/v1", "ClusterRole", "", *desired.Name))
	return nil, nil
}

// getOwnedOrForeign reads an object from the label-restricted cache and,
// when it is not there, from the API server, so that an object someone
// else made under the same name is seen and left alone.
func (r *GmsaAccountReconciler) getOwnedOrForeign(ctx context.Context, key client.ObjectKey, obj client.Object) (bool, error) {
	err := r.Client.Get(ctx, key, obj)
	if err == nil {
		return true, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, err
	}
	err = r.APIReader.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (r *GmsaAccountReconciler) foreign(acct *gmsav1alpha1.GmsaAccount, kind string, obj client.Object) *account.Problem {
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return &account.Problem{Kind: account.Stalled, Reason: gmsav1alpha1.ReasonRBACConflict,
		Message: fmt.Sprintf("%s %q already exists and %s; it is left unchanged. Delete or rename it so the operator can create its own", kind, name, describeOwner(obj))}
}

// recordWrite records an Event on the account for an object it created or
// repaired. The object is the Event's related object, so that events about
// different objects are not folded into one series.
func (r *GmsaAccountReconciler) recordWrite(acct *gmsav1alpha1.GmsaAccount, created bool, related *corev1.ObjectReference) {
	name := related.Name
	if related.Namespace != "" {
		name = related.Namespace + "/" + name
	}
	if created {
		r.Recorder.Eventf(acct, related, corev1.EventTypeNormal, "Created", "Create", "Created %s %q", related.Kind, name)
		return
	}
	r.Recorder.Eventf(acct, related, corev1.EventTypeNormal, "Updated", "Update", "Updated %s %q to the desired state", related.Kind, name)
}

func ref(apiVersion, kind, namespace, name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name}
}

// reconcileRoleBindings binds the ClusterRole in every listed namespace that
// exists, and deletes the bindings of namespaces no longer listed.
func (r *GmsaAccountReconciler) reconcileRoleBindings(ctx context.Context, acct *gmsav1alpha1.GmsaAccount) (bound []rbacv1.Subject, pending []string, problem *account.Problem, err error) {
	subjects := account.Subjects(acct)
	var conflicts []string
	for _, ns := range account.Namespaces(subjects) {
		exists, err := r.namespaceUsable(ctx, ns)
		if err != nil {
			return bound, pending, nil, err
		}
		if !exists {
			pending = append(pending, ns)
			continue
		}
		p, err := r.reconcileRoleBinding(ctx, acct, ns, subjects[ns])
		if err != nil {
			return bound, pending, nil, fmt.Errorf("RoleBinding %s/%s: %w", ns, account.RoleBindingName(acct), err)
		}
		if p != nil {
			conflicts = append(conflicts, p.Message)
			continue
		}
		bound = append(bound, subjects[ns]...)
	}
	if err := r.deleteStaleRoleBindings(ctx, acct, subjects); err != nil {
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

func (r *GmsaAccountReconciler) reconcileRoleBinding(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, ns string, subjects []rbacv1.Subject) (*account.Problem, error) {
	desired := account.DesiredRoleBinding(acct, ns, subjects)
	current := &rbacv1.RoleBinding{}
	found, err := r.getOwnedOrForeign(ctx, client.ObjectKey{Namespace: ns, Name: *desired.Name}, current)
	if err != nil {
		return nil, err
	}
	if found {
		if !controlledBy(current, acct) {
			return r.foreign(acct, "RoleBinding", current), nil
		}
		if current.RoleRef.Name != *desired.RoleRef.Name || current.RoleRef.Kind != *desired.RoleRef.Kind {
			// roleRef is immutable: replace the binding.
			if err := r.deleteOwned(ctx, current); err != nil {
				return nil, err
			}
			found = false
		} else {
			extracted, err := rbacv1ac.ExtractRoleBinding(current, gmsav1alpha1.FieldManager)
			if err != nil {
				return nil, err
			}
			if equality.Semantic.DeepEqual(extracted, desired) {
				return nil, nil
			}
		}
	}
	if err := r.Client.Apply(ctx, desired, client.FieldOwner(gmsav1alpha1.FieldManager), client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	r.recordWrite(acct, !found, ref("rbac.authorization.k8s.io/v1", "RoleBinding", ns, *desired.Name))
	return nil, nil
}

func (r *GmsaAccountReconciler) deleteStaleRoleBindings(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, subjects map[string][]rbacv1.Subject) error {
	list := &rbacv1.RoleBindingList{}
	if err := r.Client.List(ctx, list, client.MatchingLabels{gmsav1alpha1.LabelAccount: acct.Name}); err != nil {
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
		r.Recorder.Eventf(acct, ref("rbac.authorization.k8s.io/v1", "RoleBinding", rb.Namespace, rb.Name), corev1.EventTypeNormal, "Deleted", "Delete", "Deleted RoleBinding %s/%s: namespace no longer listed", rb.Namespace, rb.Name)
	}
	return nil
}
