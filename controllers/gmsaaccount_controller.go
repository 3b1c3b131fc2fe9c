// Package controllers holds the reconcilers of gmsa-operator. Each is thin:
// read, compute the desired state with the pure packages under internal/,
// apply it with server-side apply, report status once.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
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
	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/credspec"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/metrics"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
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
// +kubebuilder:rbac:groups=windows.k8s.io,resources=gmsacredentialspecs,verbs=get;list;watch;create;patch;delete;use
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;rolebindings,verbs=get;list;watch;create;patch;delete
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
	// NamespaceParallelism is how many RoleBindings of one account are
	// reconciled at once; 0 means 4.
	NamespaceParallelism int
	// PolicyAPI: the API server serves admission policies, so a GmsaStack
	// may run in Policy mode; an account is then Ready only once its
	// credspec is published to the policies.
	PolicyAPI bool

	applier *reconcilekit.Applier
}

// SetupWithManager registers the reconciler, its indexes and its watches.
func (r *GmsaAccountReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.applier = &reconcilekit.Applier{Client: r.Client, APIReader: r.APIReader, MetadataOnly: MetadataOnlyKinds}
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
	b := ctrl.NewControllerManagedBy(mgr)
	if r.PolicyAPI {
		// What Policy mode publishes: the accounts whose credspec entry
		// changed, not every account of a large index.
		b = b.Watches(&gmsav1alpha1.GmsaCredSpecSet{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.enqueueChanged(ctx, q, nil, e.Object)
			},
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.enqueueChanged(ctx, q, e.ObjectOld, e.ObjectNew)
			},
		})
	}
	return b.
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

// enqueueChanged queues the accounts of the credspecs whose entry in a
// GmsaCredSpecSet was added or changed.
func (r *GmsaAccountReconciler) enqueueChanged(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], before, after client.Object) {
	var old map[string]string
	if b, ok := before.(*gmsav1alpha1.GmsaCredSpecSet); ok {
		old = b.Data
	}
	now, ok := after.(*gmsav1alpha1.GmsaCredSpecSet)
	if !ok {
		return
	}
	for name, v := range now.Data {
		if prev, had := old[name]; !had || prev != v {
			for _, req := range r.accountsByIndex(ctx, indexCredentialSpecName, name) {
				q.Add(req)
			}
		}
	}
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
	logger := log.FromContext(ctx)
	acct := &gmsav1alpha1.GmsaAccount{}
	if err := r.Client.Get(ctx, req.NamespacedName, acct); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.DeleteAccount(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !acct.DeletionTimestamp.IsZero() {
		// Everything it generated carries its owner reference: the garbage
		// collector removes it.
		logger.V(1).Info("being deleted; the garbage collector removes what it generated")
		return ctrl.Result{}, nil
	}

	changes := &reconcilekit.Changes{}
	outcome, err := r.reconcile(ctx, acct, changes)
	changes.Record(r.Recorder, acct)
	if errors.Is(err, reconcilekit.ErrCacheLag) {
		// An object made a moment ago is not cached yet: normal, and no
		// reason to report the account as failing.
		logger.V(1).Info("requeue: the cache is behind", "reason", err.Error())
		return ctrl.Result{RequeueAfter: CacheLagRequeue}, nil
	}
	if err != nil {
		outcome.Problem = &reconcilekit.Step{Progress: reconcilekit.Failed, Reason: gmsav1alpha1.ReasonReconcileError, Message: err.Error()}
	}
	if perr := r.writeStatus(ctx, acct, outcome); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
	}
	if err == nil && outcome.Problem != nil && outcome.Problem.Reason == gmsav1alpha1.ReasonRBACConflict {
		// The foreign object is invisible to the label-restricted cache:
		// its deletion brings no event, so look again later.
		logger.V(1).Info("requeue: a foreign RBAC object blocks the account", "after", time.Minute)
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	return ctrl.Result{}, err
}

func (r *GmsaAccountReconciler) writeStatus(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, o account.Outcome) error {
	next := account.Status(acct, o, metav1.Now())
	metrics.SetAccountStatus(acct.Name, next.Conditions)
	return reconcilekit.WriteStatus(ctx, r.Client, r.Recorder, acct, &acct.Status, next,
		func(s *gmsav1alpha1.GmsaAccountStatus) []metav1.Condition { return s.Conditions })
}

// reconcile runs the steps in order. A step that finds a problem a person
// must solve, or something to wait for, returns it in the outcome; an API
// error is returned as error.
func (r *GmsaAccountReconciler) reconcile(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *reconcilekit.Changes) (account.Outcome, error) {
	o := account.Outcome{CredentialSpecName: account.CredentialSpecName(acct)}

	problem, err := r.reconcileCredentialSpec(ctx, acct, changes)
	if err != nil {
		return o, fmt.Errorf("credspec %q: %w", o.CredentialSpecName, err)
	}
	if problem != nil && problem.Progress == reconcilekit.Blocked {
		// Never grant use of a credspec that is not this account's: take
		// back a grant made before the conflict arose.
		log.FromContext(ctx).V(1).Info("credspec blocked; revoking the ClusterRole", "reason", problem.Reason)
		o.Problem = problem
		return o, r.revoke(ctx, acct, changes)
	}
	if err := r.deleteStaleCredentialSpecs(ctx, acct, changes); err != nil {
		return o, err
	}

	res, err := r.applier.Apply(ctx, account.DesiredClusterRole(acct))
	if p := rbacConflict(err); p != nil {
		o.Problem = p
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("ClusterRole %q: %w", account.ClusterRoleName(acct), err)
	}
	changes.Applied(res, account.DesiredClusterRole(acct))
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
	default:
		o.Problem, err = r.publication(ctx, o.CredentialSpecName)
	}
	return o, err
}

// publication says, when the cluster's GmsaStack admits pods in Policy
// mode, whether the credspec is published to the admission policies as it
// is now: its name in the index, its content in a shard. Until then pods
// naming it are refused, so the account waits.
func (r *GmsaAccountReconciler) publication(ctx context.Context, name string) (*reconcilekit.Step, error) {
	if !r.PolicyAPI {
		return nil, nil
	}
	stacks := &gmsav1alpha1.GmsaStackList{}
	if err := r.Client.List(ctx, stacks); err != nil {
		return nil, fmt.Errorf("list GmsaStacks: %w", err)
	}
	if len(stacks.Items) == 0 {
		return nil, nil
	}
	st := stacks.Items[reconcilekit.Oldest(stacks.Items)].Status
	if st.Admission == nil || st.Admission.Mode != gmsav1alpha1.AdmissionModePolicy || st.Namespace == "" {
		return nil, nil
	}
	cs, err := r.getCredentialSpec(ctx, name)
	if err != nil || cs == nil {
		return nil, err
	}
	content, err := admission.ContentOf(cs.Object)
	if err != nil {
		return nil, fmt.Errorf("credspec %q: %w", name, err)
	}
	sets := &gmsav1alpha1.GmsaCredSpecSetList{}
	if err := r.Client.List(ctx, sets, client.InNamespace(st.Namespace)); err != nil {
		return nil, fmt.Errorf("list GmsaCredSpecSets: %w", err)
	}
	indexed, stored := false, false
	for _, set := range sets.Items {
		switch {
		case set.Name == stack.PolicyIndexName:
			indexed = set.Data[name] != ""
		case set.Labels[stack.PolicyShardLabel] == "true" && set.Data[name] == content:
			stored = true
		}
	}
	if indexed && stored {
		return nil, nil
	}
	log.FromContext(ctx).V(1).Info("waiting for the credspec to be published to the admission policies", "credspec", name, "indexed", indexed, "stored", stored)
	return &reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonWaitingForPublication,
		Message: fmt.Sprintf("GMSACredentialSpec %q is not yet published to the admission policies (GmsaCredSpecSets in namespace %s); the GmsaStack publishes it within seconds, and pods naming it are refused until then", name, st.Namespace)}, nil
}

// rbacConflict turns a ForeignError into the account's RBACConflict
// problem; other errors (and nil) give nil.
func rbacConflict(err error) *reconcilekit.Step {
	f, ok := reconcilekit.IsForeign(err)
	if !ok {
		return nil
	}
	return &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonRBACConflict,
		Message: fmt.Sprintf("%s %q already exists and %s; it is left unchanged. Delete or rename it so the operator can create its own", f.GVK.Kind, name(f.Key), ownerPhrase(f.Owner))}
}

func name(key client.ObjectKey) string {
	if key.Namespace != "" {
		return key.Namespace + "/" + key.Name
	}
	return key.Name
}

// ownerPhrase completes "X already exists and ...".
func ownerPhrase(owner string) string {
	if owner == "" {
		return "was not made by this GmsaAccount"
	}
	return owner + ", not this GmsaAccount"
}

// reconcileCredentialSpec makes sure the generated or raw credspec exists
// as desired, or that the referenced one exists and is usable.
func (r *GmsaAccountReconciler) reconcileCredentialSpec(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *reconcilekit.Changes) (*reconcilekit.Step, error) {
	logger := log.FromContext(ctx)
	name := account.CredentialSpecName(acct)
	current, err := r.getCredentialSpec(ctx, name)
	if err != nil {
		return nil, err
	}

	if account.ModeOf(acct) == account.ModeExisting {
		if current == nil {
			logger.V(1).Info("waiting for the referenced credspec", "credspec", name)
			return &reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonCredentialSpecNotFound,
				Message: fmt.Sprintf("GMSACredentialSpec %q does not exist; the account becomes Ready as soon as it is created", name)}, nil
		}
		content, _, _ := unstructured.NestedMap(current.Object, "credspec")
		if err := credspec.Check(content); err != nil {
			logger.V(1).Info("the referenced credspec cannot be used", "credspec", name, "error", err.Error())
			return &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonInvalidCredentialSpec,
				Message: fmt.Sprintf("GMSACredentialSpec %q cannot be used: %v", name, err)}, nil
		}
		return nil, nil
	}

	if p, err := r.olderClaim(ctx, acct, name); err != nil || p != nil {
		if err == nil && current != nil && controlledBy(current, acct) {
			// The older account gets the name: give up the credspec.
			logger.V(1).Info("an older account claims the credspec name; giving it up", "credspec", name)
			deleted, derr := reconcilekit.DeleteOwned(ctx, r.Client, current, acct.UID)
			if deleted {
				changes.Add(reconcilekit.ReasonDeleted, current, "")
			}
			err = derr
		}
		return p, err
	}
	desired, err := account.DesiredCredentialSpec(acct)
	if err != nil {
		return &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonInvalidCredentialSpec, Message: err.Error()}, nil
	}
	res, err := r.applier.Apply(ctx, desired)
	if f, ok := reconcilekit.IsForeign(err); ok {
		return &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonCredentialSpecConflict,
			Message: fmt.Sprintf("GMSACredentialSpec %q already exists and %s; it is left unchanged. Grant its use with credentialSpec.existing, or choose another credentialSpecName", name, ownerPhrase(f.Owner))}, nil
	}
	if err != nil {
		return nil, err
	}
	changes.Applied(res, desired)
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
func (r *GmsaAccountReconciler) olderClaim(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, name string) (*reconcilekit.Step, error) {
	list := &gmsav1alpha1.GmsaAccountList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{indexCredentialSpecName: name}); err != nil {
		return nil, fmt.Errorf("list GmsaAccounts: %w", err)
	}
	claims := slices.DeleteFunc(list.Items, func(other gmsav1alpha1.GmsaAccount) bool {
		return account.ModeOf(&other) == account.ModeExisting || !other.DeletionTimestamp.IsZero()
	})
	if i := reconcilekit.Oldest(claims); i >= 0 && claims[i].UID != acct.UID {
		return &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonCredentialSpecConflict,
			Message: fmt.Sprintf("GMSACredentialSpec %q is claimed by the older GmsaAccount %q; it is left to that account. Choose another credentialSpecName", name, claims[i].Name)}, nil
	}
	return nil, nil
}

func controlledBy(obj metav1.Object, acct *gmsav1alpha1.GmsaAccount) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == acct.UID
}

// revoke deletes the account's ClusterRole, so that its RoleBindings grant
// nothing while the account is stalled.
func (r *GmsaAccountReconciler) revoke(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *reconcilekit.Changes) error {
	cr := &rbacv1.ClusterRole{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: account.ClusterRoleName(acct)}, cr)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read ClusterRole %q: %w", account.ClusterRoleName(acct), err)
	}
	deleted, err := reconcilekit.DeleteOwned(ctx, r.Client, cr, acct.UID)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if deleted {
		cr.SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind("ClusterRole"))
		changes.Add(reconcilekit.ReasonDeleted, cr, "")
	}
	return nil
}

// deleteStaleCredentialSpecs removes credspecs this account generated
// under a name it no longer uses.
func (r *GmsaAccountReconciler) deleteStaleCredentialSpecs(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *reconcilekit.Changes) error {
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
		if cs.GetName() == keep {
			continue
		}
		deleted, err := reconcilekit.DeleteOwned(ctx, r.Client, cs, acct.UID)
		if err != nil {
			return fmt.Errorf("delete stale credspec: %w", err)
		}
		if deleted {
			changes.Add(reconcilekit.ReasonDeleted, cs, "")
		}
	}
	return nil
}

// reconcileRoleBindings binds the ClusterRole in every listed namespace that
// exists, and deletes the bindings of namespaces no longer listed.
// Namespaces are independent: they are bound in parallel (at most
// NamespaceParallelism at once), so that the latency of a reconcile does not
// grow with their number; the first error cancels the rest.
func (r *GmsaAccountReconciler) reconcileRoleBindings(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, changes *reconcilekit.Changes) (bound []rbacv1.Subject, pending []string, problem *reconcilekit.Step, err error) {
	subjects := account.Subjects(acct)
	namespaces := account.Namespaces(subjects)
	type result struct {
		pending  bool
		conflict *reconcilekit.Step
	}
	results := make([]result, len(namespaces))
	g, gctx := errgroup.WithContext(ctx)
	limit := r.NamespaceParallelism
	if limit <= 0 {
		limit = 4
	}
	g.SetLimit(limit)
	for i, ns := range namespaces {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			exists, err := r.namespaceUsable(gctx, ns)
			if err != nil {
				return err
			}
			if !exists {
				log.FromContext(ctx).V(1).Info("namespace does not exist (yet); bound when it appears", "namespace", ns)
				results[i].pending = true
				return nil
			}
			conflict, err := r.reconcileRoleBinding(gctx, acct, ns, subjects[ns], changes)
			if err != nil {
				return fmt.Errorf("RoleBinding %s/%s: %w", ns, account.RoleBindingName(acct), err)
			}
			results[i].conflict = conflict
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, err
	}
	var conflicts []string
	for i, res := range results {
		switch {
		case res.pending:
			pending = append(pending, namespaces[i])
		case res.conflict != nil:
			conflicts = append(conflicts, res.conflict.Message)
		default:
			bound = append(bound, subjects[namespaces[i]]...)
		}
	}
	if err := r.deleteStaleRoleBindings(ctx, acct, subjects, changes); err != nil {
		return bound, pending, nil, err
	}
	if len(conflicts) > 0 {
		problem = &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonRBACConflict, Message: strings.Join(conflicts, "; ")}
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
		return false, fmt.Errorf("read namespace %s: %w", name, err)
	}
	return ns.DeletionTimestamp.IsZero(), nil
}

func (r *GmsaAccountReconciler) reconcileRoleBinding(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, ns string, subjects []rbacv1.Subject, changes *reconcilekit.Changes) (*reconcilekit.Step, error) {
	desired := account.DesiredRoleBinding(acct, ns, subjects)
	current := &rbacv1.RoleBinding{}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), current); err == nil && current.RoleRef != desired.RoleRef {
		// roleRef is immutable: replace the binding (DeleteOwned leaves
		// anyone else's alone; the apply below then reports it).
		log.FromContext(ctx).V(1).Info("roleRef changed; replacing the RoleBinding", "namespace", ns)
		if _, err := reconcilekit.DeleteOwned(ctx, r.Client, current, acct.UID); err != nil {
			return nil, err
		}
	} else if client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	res, err := r.applier.Apply(ctx, desired)
	if p := rbacConflict(err); p != nil {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	changes.Applied(res, desired)
	return nil, nil
}

func (r *GmsaAccountReconciler) deleteStaleRoleBindings(ctx context.Context, acct *gmsav1alpha1.GmsaAccount, subjects map[string][]rbacv1.Subject, changes *reconcilekit.Changes) error {
	list := &rbacv1.RoleBindingList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{indexAccount: acct.Name}); err != nil {
		return fmt.Errorf("list RoleBindings: %w", err)
	}
	for i := range list.Items {
		rb := &list.Items[i]
		if _, wanted := subjects[rb.Namespace]; wanted {
			continue
		}
		deleted, err := reconcilekit.DeleteOwned(ctx, r.Client, rb, acct.UID)
		if err != nil {
			return err
		}
		if deleted {
			rb.SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind("RoleBinding"))
			changes.Add(reconcilekit.ReasonDeleted, rb, "")
		}
	}
	return nil
}
