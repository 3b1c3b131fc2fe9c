package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/metrics"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
)

// StackFinalizer holds a GmsaStack until its webhook configurations are
// gone, so that nothing is ever sent to a webhook that no longer runs.
const StackFinalizer = "gmsa.io/stack-cleanup"

// The GmsaStack controller's permissions. It holds the webhook's own
// permissions (read credspecs, create localsubjectaccessreviews) because
// RBAC lets it grant only what it has.
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsastacks,verbs=list;watch;patch
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsastacks/status,verbs=patch
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsastacks/finalizers,verbs=update
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts;services;secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingadmissionpolicies;mutatingadmissionpolicybindings;validatingadmissionpolicies;validatingadmissionpolicybindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=gmsa.io,resources=gmsacredspecsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=localsubjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;certificates,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=clusterissuers,verbs=list;watch

// GmsaStackReconciler installs, for the cluster's one GmsaStack, the
// GMSACredentialSpec CRD, the webhook with its certificate, and its
// registration with the API server, in that order.
type GmsaStackReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server, to tell an absent object from
	// someone else's.
	APIReader client.Reader
	// Recorder records Kubernetes Events on the GmsaStack.
	Recorder recorder.EventRecorder
	// OperatorImage is the operator's own image, the default webhook image.
	OperatorImage string
	// CertManager is true when cert-manager's CRDs were installed when the
	// manager started (its kinds are then watched).
	CertManager bool
	// PolicyAPI is true when the API server served
	// admissionregistration.k8s.io/v1 MutatingAdmissionPolicy when the
	// manager started (the policy kinds are then watched, and Auto means
	// Policy).
	PolicyAPI bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	applier    *reconcilekit.Applier
	controller controller.Controller
	toStacks   handler.EventHandler
}

func (r *GmsaStackReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the controller and its watches: the stacks
// themselves, everything they own, and the GMSACredentialSpec CRD.
func (r *GmsaStackReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.applier = &reconcilekit.Applier{Client: r.Client, APIReader: r.APIReader, MetadataOnly: MetadataOnlyKinds}
	allStacks := handler.EnqueueRequestsFromMapFunc(r.allStacks)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("gmsastack").
		// Not on its own status writes.
		For(&gmsav1alpha1.GmsaStack{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.GetGeneration() != n.GetGeneration() || !o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
				!slices.Equal(o.GetFinalizers(), n.GetFinalizers())
		}})).
		// A stack's deletion lets a waiting duplicate take over.
		Watches(&gmsav1alpha1.GmsaStack{}, allStacks, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
			UpdateFunc: func(event.UpdateEvent) bool { return false },
		})).
		// Namespaces are cached once, as metadata, for both controllers.
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &gmsav1alpha1.GmsaStack{}, handler.OnlyControllerOwner())).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.Service{}).
		// Secrets by label: cert-manager writes the serving certificate's.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if name, ok := o.GetLabels()[gmsav1alpha1.LabelStack]; ok {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
			}
			return nil
		})).
		Owns(&appsv1.Deployment{}).
		// The webhook Service's endpoints: a new webhook is registered
		// once they are ready (the cache holds only those slices).
		Watches(&discoveryv1.EndpointSlice{}, allStacks).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&rbacv1.ClusterRole{}).
		Owns(&rbacv1.ClusterRoleBinding{}).
		Owns(&admissionregistrationv1.MutatingWebhookConfiguration{}).
		Owns(&admissionregistrationv1.ValidatingWebhookConfiguration{}).
		Watches(&apiextensionsv1.CustomResourceDefinition{}, allStacks)
	if r.PolicyAPI {
		b = b.Owns(&admissionregistrationv1.MutatingAdmissionPolicy{}).
			Owns(&admissionregistrationv1.MutatingAdmissionPolicyBinding{}).
			Owns(&admissionregistrationv1.ValidatingAdmissionPolicy{}).
			Owns(&admissionregistrationv1.ValidatingAdmissionPolicyBinding{}).
			Owns(&gmsav1alpha1.GmsaCredSpecSet{})
	}
	if r.CertManager {
		// Issuers of every kind, the user's too: the one the spec names may
		// appear or become Ready at any time.
		b = b.Owns(&cmapi.Certificate{}).
			Watches(&cmapi.Issuer{}, allStacks).
			Watches(&cmapi.ClusterIssuer{}, allStacks)
	}
	c, err := b.Build(r)
	r.controller, r.toStacks = c, allStacks
	return err
}

// allStacks maps an event to every GmsaStack. A cache that fails to list
// them is logged: the event is then not acted on.
func (r *GmsaStackReconciler) allStacks(ctx context.Context, o client.Object) []reconcile.Request {
	list := &gmsav1alpha1.GmsaStackList{}
	if err := r.Client.List(ctx, list); err != nil {
		log.FromContext(ctx).Error(err, "list GmsaStacks for an event; it is not acted on", "object", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, s := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: s.Name}})
	}
	return reqs
}

// WatchCredSpecs makes every GMSACredentialSpec's change reconcile the
// stack, which publishes them in Policy mode. It is called once the
// GMSACredentialSpec CRD is Established (the stack may be what installs
// it).
func (r *GmsaStackReconciler) WatchCredSpecs(mgr ctrl.Manager) error {
	if !r.PolicyAPI {
		return nil
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CredentialSpecGVK)
	return r.controller.Watch(source.Kind(mgr.GetCache(), client.Object(u), r.toStacks))
}

// Reconcile brings one GmsaStack's objects to the desired state and
// reports it in the status.
func (r *GmsaStackReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	s := &gmsav1alpha1.GmsaStack{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.DeleteStack(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	active, err := r.activeStack(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !s.DeletionTimestamp.IsZero() {
		logger.V(1).Info("being deleted", "active", active == s.Name)
		return r.finalize(ctx, s, active == s.Name)
	}
	if active != s.Name {
		logger.V(1).Info("another GmsaStack manages the cluster's stack; this one changes nothing", "active", active)
		o := stack.Outcome{Steps: []reconcilekit.Step{{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonDuplicateStack,
			Message: fmt.Sprintf("GmsaStack %q already manages the cluster's gMSA stack; there is one per cluster, and this one changes nothing: delete it", active)}}}
		return ctrl.Result{}, r.writeStatus(ctx, s, o)
	}
	if !controllerutil.ContainsFinalizer(s, StackFinalizer) {
		patch := client.MergeFrom(s.DeepCopy())
		controllerutil.AddFinalizer(s, StackFinalizer)
		if err := r.Client.Patch(ctx, s, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		logger.Info("added the finalizer", "finalizer", StackFinalizer)
	}

	changes := &reconcilekit.Changes{}
	o, plan, err := r.run(ctx, s, changes)
	changes.Record(r.Recorder, s)
	requeue := plan.RequeueAfter
	if errors.Is(err, reconcilekit.ErrCacheLag) {
		// An object made a moment ago is not cached yet: normal, and no
		// reason to report the stack as failing.
		logger.V(1).Info("requeue: the cache is behind", "reason", err.Error())
		return ctrl.Result{RequeueAfter: CacheLagRequeue}, nil
	}
	if err != nil {
		o.Steps = append(o.Steps, reconcilekit.Step{Progress: reconcilekit.Failed, Reason: gmsav1alpha1.ReasonReconcileError, Message: err.Error()})
	}
	if serr := r.writeStatus(ctx, s, o); serr != nil {
		return ctrl.Result{}, errors.Join(err, serr)
	}
	if requeue > 0 {
		logger.V(1).Info("requeue", "after", requeue)
	}
	return ctrl.Result{RequeueAfter: requeue}, err
}

// activeStack is the oldest GmsaStack (by creation, then name): the one that
// manages the cluster's stack. The others wait.
func (r *GmsaStackReconciler) activeStack(ctx context.Context) (string, error) {
	list := &gmsav1alpha1.GmsaStackList{}
	if err := r.Client.List(ctx, list); err != nil {
		return "", fmt.Errorf("list GmsaStacks: %w", err)
	}
	if len(list.Items) == 0 {
		return "", nil
	}
	return list.Items[reconcilekit.Oldest(list.Items)].Name, nil
}

func (r *GmsaStackReconciler) writeStatus(ctx context.Context, s *gmsav1alpha1.GmsaStack, o stack.Outcome) error {
	next := stack.Status(s, o, metav1.NewTime(r.now()))
	metrics.SetStackStatus(s.Name, next.Conditions, o.Mode)
	return reconcilekit.WriteStatus(ctx, r.Client, r.Recorder, s, &s.Status, next,
		func(st *gmsav1alpha1.GmsaStackStatus) []metav1.Condition { return st.Conditions })
}

// retire records, before the webhook configurations stop calling the webhook
// of namespace (they are removed, or pointed elsewhere), that this happens
// now: that webhook is kept, with its RBAC, for stack.TeardownDelay from this
// time, whatever requeues the stack meanwhile. It is written first, so that
// a failure after it can only make the wait longer, never skip it.
func (r *GmsaStackReconciler) retire(ctx context.Context, s *gmsav1alpha1.GmsaStack, namespace string) error {
	patch := client.MergeFrom(s.DeepCopy())
	s.Status.RetiredWebhook = &gmsav1alpha1.RetiredWebhook{Namespace: namespace, Since: metav1.NewMicroTime(r.now())}
	if err := r.Client.Status().Patch(ctx, s, patch); err != nil {
		return fmt.Errorf("record the retired webhook: %w", err)
	}
	log.FromContext(ctx).Info("the webhook configurations stop calling a webhook; it is kept for the teardown delay",
		"namespace", namespace, "delay", stack.TeardownDelay)
	return nil
}

// finalize removes the webhook configurations first, and lets the rest go
// (through the garbage collector, once the finalizer is gone) only
// stack.TeardownDelay later, measured from the persisted time the
// configurations were removed: every API server has dropped them by then,
// so no pod is sent to a webhook that is being removed. The CRD and every
// credspec stay.
func (r *GmsaStackReconciler) finalize(ctx context.Context, s *gmsav1alpha1.GmsaStack, active bool) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	if !controllerutil.ContainsFinalizer(s, StackFinalizer) {
		return ctrl.Result{}, nil
	}
	if active {
		configs := []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
			&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
		}
		if r.PolicyAPI {
			// The bindings before their policies and parameter objects (the
			// garbage collector's order is none): a binding left without
			// its parameters would refuse gMSA pods.
			configs = append(configs,
				&admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
				&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
				&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}},
				&admissionregistrationv1.MutatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
				&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
				&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}},
			)
		}
		var present []client.Object
		for _, obj := range configs {
			err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			switch {
			case err == nil && metav1.IsControlledBy(obj, s):
				present = append(present, obj)
			case client.IgnoreNotFound(err) != nil:
				return ctrl.Result{}, fmt.Errorf("read %s: %w", reconcilekit.Describe(obj), err)
			}
		}
		if len(present) > 0 {
			if err := r.retire(ctx, s, s.Status.Namespace); err != nil {
				return ctrl.Result{}, err
			}
			changes := &reconcilekit.Changes{}
			for _, obj := range present {
				deleted, err := reconcilekit.DeleteOwned(ctx, r.Client, obj, s.UID)
				if err != nil {
					return ctrl.Result{}, err
				}
				if deleted {
					changes.Add(reconcilekit.ReasonDeleted, obj, "the stack is being deleted")
				}
			}
			changes.Record(r.Recorder, s)
			r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, gmsav1alpha1.ReasonDeleting, "Delete",
				"removed the webhook configurations and admission policy bindings; the rest goes %s later; the GMSACredentialSpec CRD and every credspec stay", stack.TeardownDelay)
		}
		if wait := stack.RetirementWait(s.Status.RetiredWebhook, r.now()); wait > 0 {
			logger.V(1).Info("keeping the webhook while API servers drop its configurations", "wait", wait)
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	patch := client.MergeFrom(s.DeepCopy())
	controllerutil.RemoveFinalizer(s, StackFinalizer)
	if err := r.Client.Patch(ctx, s, patch); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	logger.Info("removed the finalizer; the garbage collector removes the rest")
	return ctrl.Result{}, nil
}
