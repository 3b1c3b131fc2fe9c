package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
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
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=localsubjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;certificates,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=clusterissuers,verbs=get

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
	// Now is the clock; nil means time.Now.
	Now func() time.Time
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
	allStacks := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		list := &gmsav1alpha1.GmsaStackList{}
		if err := r.Client.List(ctx, list); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, s := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: s.Name}})
		}
		return reqs
	})
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
		Owns(&corev1.Namespace{}).
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
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&rbacv1.ClusterRole{}).
		Owns(&rbacv1.ClusterRoleBinding{}).
		Owns(&admissionregistrationv1.MutatingWebhookConfiguration{}).
		Owns(&admissionregistrationv1.ValidatingWebhookConfiguration{}).
		Watches(&apiextensionsv1.CustomResourceDefinition{}, allStacks)
	if r.CertManager {
		b = b.Owns(&cmapi.Certificate{}).Owns(&cmapi.Issuer{})
	}
	return b.Complete(r)
}

// Reconcile brings one GmsaStack's objects to the desired state and
// reports it in the status.
func (r *GmsaStackReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s := &gmsav1alpha1.GmsaStack{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	active, err := r.activeStack(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !s.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, s, active == s.Name)
	}
	if active != s.Name {
		o := stack.Outcome{Steps: []stack.Step{{Progress: stack.Blocked, Reason: gmsav1alpha1.ReasonDuplicateStack,
			Message: fmt.Sprintf("GmsaStack %q already manages the cluster's gMSA stack; there is one per cluster, and this one changes nothing: delete it", active)}}}
		return ctrl.Result{}, r.writeStatus(ctx, s, o)
	}
	if !controllerutil.ContainsFinalizer(s, StackFinalizer) {
		patch := client.MergeFrom(s.DeepCopy())
		controllerutil.AddFinalizer(s, StackFinalizer)
		if err := r.Client.Patch(ctx, s, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	run := &stackRun{r: r, s: s, changes: &stackChanges{}, a: &applier{client: r.Client, apiReader: r.APIReader, scheme: r.Client.Scheme()}}
	o, requeue, err := run.reconcile(ctx)
	run.changes.record(r.Recorder, s)
	if err != nil {
		o.Steps = append(o.Steps, stack.Step{Progress: stack.Failed, Reason: gmsav1alpha1.ReasonReconcileError, Message: err.Error()})
	}
	if serr := r.writeStatus(ctx, s, o); serr != nil {
		return ctrl.Result{}, errors.Join(err, serr)
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
	oldest := slices.MinFunc(list.Items, func(a, b gmsav1alpha1.GmsaStack) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return oldest.Name, nil
}

func (r *GmsaStackReconciler) writeStatus(ctx context.Context, s *gmsav1alpha1.GmsaStack, o stack.Outcome) error {
	next := stack.Status(s, o, metav1.NewTime(r.now()))
	if equality.Semantic.DeepEqual(s.Status, next) {
		return nil
	}
	if c := meta.FindStatusCondition(next.Conditions, gmsav1alpha1.ConditionStalled); c != nil {
		if old := meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionStalled); old == nil || old.Message != c.Message {
			r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, c.Reason, "Refuse", "%s", c.Message)
		}
	}
	patch := client.MergeFrom(s.DeepCopy())
	s.Status = next
	if err := r.Client.Status().Patch(ctx, s, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// finalize removes the webhook configurations first, and lets the rest go
// only once the API server no longer has them: no pod is ever sent to a
// webhook that is being removed. The CRD and every credspec stay.
func (r *GmsaStackReconciler) finalize(ctx context.Context, s *gmsav1alpha1.GmsaStack, active bool) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(s, StackFinalizer) {
		return ctrl.Result{}, nil
	}
	if active {
		deleted := false
		for _, obj := range []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
			&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
		} {
			d, err := r.deleteOwned(ctx, s, obj)
			if err != nil {
				return ctrl.Result{}, err
			}
			deleted = deleted || d
		}
		if deleted {
			r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, gmsav1alpha1.ReasonDeleting, "Delete",
				"removed the webhook configurations; the webhook Deployment, Service and Secrets go next; the GMSACredentialSpec CRD and every credspec stay")
			// Give every API server time to drop the configurations
			// before the webhook they called goes away.
			return ctrl.Result{RequeueAfter: teardownDelay}, nil
		}
	}
	patch := client.MergeFrom(s.DeepCopy())
	controllerutil.RemoveFinalizer(s, StackFinalizer)
	if err := r.Client.Patch(ctx, s, patch); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// teardownDelay is how long the API servers get to see that webhook
// configurations were removed or repointed before the webhook they called is
// removed.
const teardownDelay = 5 * time.Second

// deleteOwned deletes obj if the API server has it and it belongs to s, and
// reports whether it did.
func (r *GmsaStackReconciler) deleteOwned(ctx context.Context, s *gmsav1alpha1.GmsaStack, obj client.Object) (bool, error) {
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, s) {
		return false, nil
	}
	uid := obj.GetUID()
	if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("delete %T %s: %w", obj, obj.GetName(), err)
	}
	return true, nil
}

// stackRun is one reconcile of one stack.
type stackRun struct {
	r       *GmsaStackReconciler
	s       *gmsav1alpha1.GmsaStack
	a       *applier
	changes *stackChanges
	cfg     stack.Config
	o       stack.Outcome
	// bundle and caID of the SelfSigned certificate material.
	bundle []byte
	caID   string
	// configsChanged: this pass wrote a webhook configuration.
	configsChanged bool
}

// stackChanges collects what a reconcile changed, for Events: one Event per
// kind of change.
type stackChanges struct {
	reasons []string
	notes   map[string][]string
}

func (c *stackChanges) add(reason, note string) {
	if c.notes == nil {
		c.notes = map[string][]string{}
	}
	if _, ok := c.notes[reason]; !ok {
		c.reasons = append(c.reasons, reason)
	}
	c.notes[reason] = append(c.notes[reason], note)
}

func (c *stackChanges) record(rec recorder.EventRecorder, s *gmsav1alpha1.GmsaStack) {
	for _, reason := range c.reasons {
		rec.Eventf(s, nil, corev1.EventTypeNormal, reason, reason, "%s", strings.Join(c.notes[reason], "; "))
	}
}

// reconcile runs the steps in order; a step that is not Done stops the
// ones after it.
func (run *stackRun) reconcile(ctx context.Context) (stack.Outcome, time.Duration, error) {
	cfg, err := stack.Resolve(run.s, run.r.OperatorImage)
	if err != nil {
		run.o.Steps = append(run.o.Steps, stack.Step{Progress: stack.Blocked, Reason: gmsav1alpha1.ReasonInvalidSpec, Message: err.Error()})
		return run.o, 0, nil
	}
	run.cfg = cfg
	run.o.Namespace, run.o.Image = cfg.Namespace, cfg.Image

	steps := []func(context.Context) (stack.Step, time.Duration, error){
		run.crd, run.base, run.certificates, run.deployment, run.admission, run.prune,
	}
	var requeue time.Duration
	for i, step := range steps {
		st, after, err := step(ctx)
		if err != nil {
			var foreign *errForeign
			if !errors.As(err, &foreign) {
				return run.o, 0, err
			}
			st = stack.Step{Condition: st.Condition, Progress: stack.Blocked, Reason: gmsav1alpha1.ReasonObjectConflict, Message: foreign.Error()}
		}
		run.o.Steps = append(run.o.Steps, st)
		if after > 0 && (requeue == 0 || after < requeue) {
			requeue = after
		}
		if st.Progress != stack.Done && !st.Continue {
			if st.Condition == gmsav1alpha1.ConditionWebhookAvailable {
				if m, v, err := run.webhookConfigs(ctx); err == nil && (m == nil || v == nil) {
					run.o.Steps = append(run.o.Steps, stack.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured, Progress: stack.Waiting,
						Reason: gmsav1alpha1.ReasonWaitingForWebhook, Message: "the webhook configurations are created once the webhook Deployment is Available, so that no pod is sent to a webhook that does not answer"})
				}
			}
			// A stack stopped before its certificates (a conflict in an
			// earlier step) still renews the certificate its running
			// webhook serves, so that it does not expire unnoticed.
			if i < 2 && run.cfg.CertSource == gmsav1alpha1.CertificateSourceSelfSigned && run.installed(ctx) {
				if cst, after, err := run.certificates(ctx); err == nil {
					run.o.Steps = append(run.o.Steps, cst)
					if after > 0 && (requeue == 0 || after < requeue) {
						requeue = after
					}
				}
			}
			break
		}
	}
	return run.o, requeue, nil
}

// installed reports whether the stack's serving certificate exists (the
// webhook was installed before).
func (run *stackRun) installed(ctx context.Context) bool {
	return run.r.Client.Get(ctx, client.ObjectKey{Namespace: run.cfg.Namespace, Name: stack.TLSSecretName}, &corev1.Secret{}) == nil
}

func (run *stackRun) own(obj client.Object) client.Object {
	ref := metav1.NewControllerRef(run.s, gmsav1alpha1.GroupVersion.WithKind("GmsaStack"))
	obj.SetOwnerReferences([]metav1.OwnerReference{*ref})
	return obj
}

// ensure applies obj (owned by the stack) and logs a change.
func (run *stackRun) ensure(ctx context.Context, obj client.Object) error {
	changed, err := run.a.ensure(ctx, run.own(obj))
	if changed {
		run.changes.add("Applied", describe(obj))
	}
	return err
}

func describe(obj client.Object) string {
	kind := fmt.Sprintf("%T", obj)
	if i := strings.LastIndex(kind, "."); i >= 0 {
		kind = kind[i+1:]
	}
	if obj.GetNamespace() != "" {
		return kind + " " + obj.GetNamespace() + "/" + obj.GetName()
	}
	return kind + " " + obj.GetName()
}

// crd installs or upgrades the GMSACredentialSpec CRD as the policy says.
// It never deletes it and never gives it an owner reference.
func (run *stackRun) crd(ctx context.Context) (stack.Step, time.Duration, error) {
	step := stack.Step{Condition: gmsav1alpha1.ConditionCRDEstablished}
	desired, err := run.cfg.CRD()
	if err != nil {
		return step, 0, err
	}
	live := &apiextensionsv1.CustomResourceDefinition{}
	err = run.r.Client.Get(ctx, client.ObjectKey{Name: credspeccrd.Name}, live)
	if err != nil && !apierrors.IsNotFound(err) {
		return step, 0, fmt.Errorf("read CRD %s: %w", credspeccrd.Name, err)
	}
	exists := err == nil
	ours := exists && live.Labels[gmsav1alpha1.LabelManagedBy] == gmsav1alpha1.ManagedByValue
	switch {
	case run.cfg.CRDPolicy == gmsav1alpha1.CRDPolicyExternal:
		if !exists {
			step.Progress, step.Reason = stack.Waiting, gmsav1alpha1.ReasonCRDNotInstalled
			step.Message = fmt.Sprintf("credentialSpecCRD.policy is External and CRD %s is not installed; install it, or set the policy to Manage", credspeccrd.Name)
			return step, 0, nil
		}
	case exists && !ours && run.cfg.CRDPolicy == gmsav1alpha1.CRDPolicyManage:
		by := live.Labels[gmsav1alpha1.LabelManagedBy]
		if by == "" {
			by = "another installer"
		}
		if !credspeccrd.Established(live) {
			step.Progress, step.Reason = stack.Blocked, gmsav1alpha1.ReasonCRDOwnedElsewhere
			step.Message = fmt.Sprintf("CRD %s was installed by %s and is not Established; it is left alone: fix it there, or set spec.credentialSpecCRD.policy to Adopt", credspeccrd.Name, by)
			return step, 0, nil
		}
		step.Progress, step.Reason = stack.Done, gmsav1alpha1.ReasonCRDOwnedElsewhere
		step.Message = fmt.Sprintf("CRD %s is Established; it was installed by %s and is left alone (set spec.credentialSpecCRD.policy to Adopt to let the operator upgrade it)", credspeccrd.Name, by)
		return step, 0, nil
	case exists && ours && credspeccrd.Revision(live) > credspeccrd.Revision(desired):
		// A newer operator installed it; never downgrade.
	default:
		changed, err := run.a.ensure(ctx, desired)
		if err != nil {
			var foreign *errForeign
			if !errors.As(err, &foreign) {
				return step, 0, err
			}
		}
		if changed {
			verb := "installed"
			if exists {
				verb = "upgraded"
			}
			run.changes.add("Applied", "CRD "+credspeccrd.Name+" ("+verb+")")
			if err := run.r.Client.Get(ctx, client.ObjectKey{Name: credspeccrd.Name}, live); client.IgnoreNotFound(err) != nil {
				return step, 0, err
			}
		}
	}
	if !credspeccrd.Established(live) {
		step.Progress, step.Reason = stack.Waiting, gmsav1alpha1.ReasonProgressing
		step.Message = fmt.Sprintf("waiting for CRD %s to be Established", credspeccrd.Name)
		return step, 2 * time.Second, nil
	}
	step.Reason, step.Message = gmsav1alpha1.ReasonSucceeded, fmt.Sprintf("CRD %s is installed and Established", credspeccrd.Name)
	return step, 0, nil
}

// base makes the namespace (unless it exists), the ServiceAccount, the
// webhook's RBAC, the Service and the PodDisruptionBudget.
func (run *stackRun) base(ctx context.Context) (stack.Step, time.Duration, error) {
	step := stack.Step{}
	ns := &corev1.Namespace{}
	switch err := run.r.Client.Get(ctx, client.ObjectKey{Name: run.cfg.Namespace}, ns); {
	case apierrors.IsNotFound(err):
		if err := run.ensure(ctx, run.cfg.NamespaceObject()); err != nil {
			return step, 0, err
		}
	case err != nil:
		return step, 0, fmt.Errorf("read namespace %s: %w", run.cfg.Namespace, err)
	case !ns.DeletionTimestamp.IsZero():
		step.Progress, step.Reason = stack.Waiting, gmsav1alpha1.ReasonProgressing
		step.Message = fmt.Sprintf("namespace %s is being deleted; the stack is installed again once it is gone", run.cfg.Namespace)
		return step, 5 * time.Second, nil
	case metav1.IsControlledBy(ns, run.s):
		if err := run.ensure(ctx, run.cfg.NamespaceObject()); err != nil {
			return step, 0, err
		}
	}
	m, v, err := run.webhookConfigs(ctx)
	if err != nil {
		return step, 0, err
	}
	for _, obj := range []client.Object{
		run.cfg.ServiceAccount(), run.cfg.ClusterRole(), run.cfg.ClusterRoleBinding(calledNamespace(m, v)), run.cfg.Service(), run.cfg.PodDisruptionBudget(),
	} {
		if err := run.ensure(ctx, obj); err != nil {
			return step, 0, err
		}
	}
	return step, 0, nil
}

// webhookConfigs reads the live webhook configurations from the cache; nil
// when missing.
func (run *stackRun) webhookConfigs(ctx context.Context) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	key := client.ObjectKey{Name: stack.WebhookName}
	if err := run.r.Client.Get(ctx, key, m); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, nil, err
		}
		m = nil
	}
	if err := run.r.Client.Get(ctx, key, v); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, nil, err
		}
		v = nil
	}
	return m, v, nil
}

// callsNamespace reports whether the existing webhook configurations call
// the webhook Service of namespace (false when there are none).
func callsNamespace(m *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration, namespace string) bool {
	calls := func(cc admissionregistrationv1.WebhookClientConfig) bool {
		return cc.Service != nil && cc.Service.Namespace == namespace
	}
	switch {
	case m == nil && v == nil:
		return false
	case m != nil && (len(m.Webhooks) == 0 || !calls(m.Webhooks[0].ClientConfig)):
		return false
	case v != nil && (len(v.Webhooks) == 0 || !calls(v.Webhooks[0].ClientConfig)):
		return false
	}
	return true
}

// calledNamespace is the namespace whose webhook the existing mutating
// configuration calls ("" when there is none).
func calledNamespace(m *admissionregistrationv1.MutatingWebhookConfiguration, _ *admissionregistrationv1.ValidatingWebhookConfiguration) string {
	if m == nil || len(m.Webhooks) == 0 || m.Webhooks[0].ClientConfig.Service == nil {
		return ""
	}
	return m.Webhooks[0].ClientConfig.Service.Namespace
}

// publishedBundle is the caBundle both webhook configurations carry.
func publishedBundle(m *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration) []byte {
	if m == nil || v == nil || len(m.Webhooks) == 0 || len(v.Webhooks) == 0 {
		return nil
	}
	if !bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle) {
		return nil
	}
	return m.Webhooks[0].ClientConfig.CABundle
}

// certificates makes the serving certificate: its own CA and certificate
// (SelfSigned) or cert-manager's Issuers and Certificate (CertManager).
func (run *stackRun) certificates(ctx context.Context) (stack.Step, time.Duration, error) {
	if run.cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager {
		return run.certManager(ctx)
	}
	step := stack.Step{Condition: gmsav1alpha1.ConditionCertificateReady}
	if from, switching, err := run.sourceSwitch(ctx); err != nil || switching {
		return run.switchRefused(step, from), 0, err
	}
	key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: run.cfg.Namespace, Name: name} }
	caSecret, tlsSecret := &corev1.Secret{}, &corev1.Secret{}
	if err := run.r.Client.Get(ctx, key(stack.CASecretName), caSecret); client.IgnoreNotFound(err) != nil {
		return step, 0, err
	}
	if err := run.r.Client.Get(ctx, key(stack.TLSSecretName), tlsSecret); client.IgnoreNotFound(err) != nil {
		return step, 0, err
	}
	m, v, err := run.webhookConfigs(ctx)
	if err != nil {
		return step, 0, err
	}
	dep := &appsv1.Deployment{}
	if err := run.r.Client.Get(ctx, key(stack.WebhookName), dep); client.IgnoreNotFound(err) != nil {
		return step, 0, err
	}
	var published []byte
	if callsNamespace(m, v, run.cfg.Namespace) {
		published = publishedBundle(m, v)
	}
	plan, err := stack.PlanCertificates(stack.CertInput{
		CA: caSecret.Data, TLS: tlsSecret.Data, DNSNames: run.cfg.DNSNames(),
		Duration: run.cfg.Duration, RenewBefore: run.cfg.RenewBefore, Now: run.r.now(),
		PublishedBundle: published,
		RolledOut:       rolledOut(dep, stack.CAID(caSecret.Data[stack.CACertKey])),
	})
	if err != nil {
		return step, 0, err
	}
	for _, c := range plan.Changes {
		run.changes.add("Certificate", c)
	}
	// Order matters for a rollover: the CA Secret, then the caBundle of
	// existing webhook configurations, and only then the serving
	// certificate the pods load.
	if err := run.ensure(ctx, run.cfg.Secret(stack.CASecretName, corev1.SecretTypeOpaque, plan.CA)); err != nil {
		return step, 0, err
	}
	run.bundle, run.caID = plan.Bundle, plan.CAID
	// Existing configurations that call this namespace's webhook get the
	// new bundle first. Ones that still call another namespace's (the
	// stack is moving) are switched by the admission step, service and
	// bundle together, once the new Deployment is Available.
	if callsNamespace(m, v, run.cfg.Namespace) {
		if err := run.ensureWebhookConfigs(ctx); err != nil {
			return step, 0, err
		}
	}
	if err := run.ensure(ctx, run.cfg.Secret(stack.TLSSecretName, corev1.SecretTypeTLS, plan.TLS)); err != nil {
		return step, 0, err
	}
	notAfter := metav1.NewTime(plan.NotAfter)
	run.o.NotAfter = &notAfter
	step.Reason = gmsav1alpha1.ReasonSucceeded
	step.Message = fmt.Sprintf("serving certificate for %s valid until %s, renewed %s before", run.cfg.DNSNames()[0], plan.NotAfter.UTC().Format(time.RFC3339), run.cfg.RenewBefore)
	return step, plan.RequeueAfter, nil
}

// sourceSwitch reports whether the stack's namespace holds certificate
// material of the other source: cert-manager Certificates the stack made
// (now SelfSigned), or the operator's own CA Secret (now CertManager).
func (run *stackRun) sourceSwitch(ctx context.Context) (gmsav1alpha1.CertificateSource, bool, error) {
	if run.cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager {
		ca := &corev1.Secret{}
		err := run.r.Client.Get(ctx, client.ObjectKey{Namespace: run.cfg.Namespace, Name: stack.CASecretName}, ca)
		if err != nil {
			return "", false, client.IgnoreNotFound(err)
		}
		return gmsav1alpha1.CertificateSourceSelfSigned, ca.Type == corev1.SecretTypeOpaque && metav1.IsControlledBy(ca, run.s), nil
	}
	if !run.r.CertManager {
		return "", false, nil
	}
	list := &cmapi.CertificateList{}
	if err := run.r.Client.List(ctx, list, client.InNamespace(run.cfg.Namespace), client.MatchingLabels{gmsav1alpha1.LabelStack: run.s.Name}); err != nil {
		return "", false, err
	}
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], run.s) {
			return gmsav1alpha1.CertificateSourceCertManager, true, nil
		}
	}
	return "", false, nil
}

func (run *stackRun) switchRefused(step stack.Step, from gmsav1alpha1.CertificateSource) stack.Step {
	step.Progress, step.Reason = stack.Blocked, gmsav1alpha1.ReasonInvalidSpec
	step.Message = fmt.Sprintf("spec.certificates.source: switching a running stack from %s to %s is not supported (both would write Secret %s and caBundle); "+
		"set it back to %s, or delete this GmsaStack and create it again with %s (its webhook configurations are removed first, so gMSA pods are refused until it is Ready again)",
		from, run.cfg.CertSource, stack.TLSSecretName, from, run.cfg.CertSource)
	return step
}

// rolledOut reports whether every replica of the Deployment runs the pod
// template of the given CA.
func rolledOut(dep *appsv1.Deployment, caID string) bool {
	if dep.Name == "" || caID == "" || dep.Spec.Template.Annotations[stack.CAIDAnnotation] != caID {
		return false
	}
	st := dep.Status
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	return st.ObservedGeneration >= dep.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want
}

// certManager makes the cert-manager objects and waits for the Secret
// cert-manager writes.
func (run *stackRun) certManager(ctx context.Context) (stack.Step, time.Duration, error) {
	step := stack.Step{Condition: gmsav1alpha1.ConditionCertificateReady}
	if from, switching, err := run.sourceSwitch(ctx); err != nil || switching {
		return run.switchRefused(step, from), 0, err
	}
	if !run.r.CertManager {
		step.Progress, step.Reason = stack.Blocked, gmsav1alpha1.ReasonCertManagerNotInstalled
		step.Message = "certificates.source is CertManager, but cert-manager's CRDs (certificates.cert-manager.io, issuers.cert-manager.io) were not installed when the operator started: install cert-manager and restart the operator, or use source SelfSigned"
		return step, 0, nil
	}
	// Only cert-manager's own issuer kinds can be looked up; an external
	// issuer (another group) is left to cert-manager to report.
	if ref, own := run.cfg.CertManagerIssuerRef(); !own && ref.Group == "cert-manager.io" {
		var issuer client.Object = &cmapi.Issuer{}
		key := client.ObjectKey{Namespace: run.cfg.Namespace, Name: ref.Name}
		if ref.Kind == cmapi.ClusterIssuerKind {
			issuer, key = &cmapi.ClusterIssuer{}, client.ObjectKey{Name: ref.Name}
		}
		if err := run.r.APIReader.Get(ctx, key, issuer); err != nil {
			if !apierrors.IsNotFound(err) {
				return step, 0, err
			}
			step.Progress, step.Reason = stack.Waiting, gmsav1alpha1.ReasonIssuerNotFound
			where := "namespace " + run.cfg.Namespace
			if ref.Kind == cmapi.ClusterIssuerKind {
				where = "the cluster"
			}
			step.Message = fmt.Sprintf("spec.certificates.certManager.issuerRef: %s %q does not exist in %s; create it, or remove issuerRef to let the operator make a self-signed CA chain", ref.Kind, ref.Name, where)
			return step, 30 * time.Second, nil
		}
	}
	for _, obj := range run.cfg.CertManagerObjects() {
		if err := run.ensure(ctx, obj); err != nil {
			return step, 0, err
		}
	}
	tlsSecret := &corev1.Secret{}
	err := run.r.Client.Get(ctx, client.ObjectKey{Namespace: run.cfg.Namespace, Name: stack.TLSSecretName}, tlsSecret)
	if client.IgnoreNotFound(err) != nil {
		return step, 0, err
	}
	if err != nil || len(tlsSecret.Data[stack.TLSCertKey]) == 0 {
		step.Progress, step.Reason = stack.Waiting, gmsav1alpha1.ReasonCertificatePending
		step.Message = fmt.Sprintf("waiting for cert-manager to issue Certificate %s/%s into Secret %s (kubectl describe certificate -n %s %s)",
			run.cfg.Namespace, stack.ServingCertificateName, stack.TLSSecretName, run.cfg.Namespace, stack.ServingCertificateName)
		return step, 0, nil
	}
	step.Reason = gmsav1alpha1.ReasonSucceeded
	step.Message = "cert-manager issued the serving certificate; its cainjector fills caBundle"
	if c, err := certs.NotAfter(tlsSecret.Data[stack.TLSCertKey]); err == nil {
		t := metav1.NewTime(c)
		run.o.NotAfter = &t
		step.Message = fmt.Sprintf("cert-manager issued the serving certificate, valid until %s; its cainjector fills caBundle", c.UTC().Format(time.RFC3339))
	}
	return step, 0, nil
}

// deployment runs the webhook and reports its availability.
func (run *stackRun) deployment(ctx context.Context) (stack.Step, time.Duration, error) {
	step := stack.Step{Condition: gmsav1alpha1.ConditionWebhookAvailable}
	if err := run.ensure(ctx, run.cfg.Deployment(run.caID)); err != nil {
		return step, 0, err
	}
	dep := &appsv1.Deployment{}
	if err := run.r.Client.Get(ctx, client.ObjectKey{Namespace: run.cfg.Namespace, Name: stack.WebhookName}, dep); client.IgnoreNotFound(err) != nil {
		return step, 0, err
	}
	run.o.ReadyReplicas = dep.Status.ReadyReplicas
	return run.cfg.DeploymentStep(dep), 0, nil
}

// admission registers the webhook configurations once the Deployment is
// Available (the step runs only then), and keeps them as desired.
func (run *stackRun) admission(ctx context.Context) (stack.Step, time.Duration, error) {
	step := stack.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured}
	if err := run.ensureWebhookConfigs(ctx); err != nil {
		return step, 0, err
	}
	step.Reason = gmsav1alpha1.ReasonSucceeded
	step.Message = fmt.Sprintf("MutatingWebhookConfiguration and ValidatingWebhookConfiguration %s send pods that mention gMSA to %s.%s.svc (failurePolicy %s, timeout %ds)",
		stack.WebhookName, stack.WebhookName, run.cfg.Namespace, run.cfg.FailurePolicy, run.cfg.TimeoutSeconds)
	return step, 0, nil
}

// prune removes what the stack made in a namespace it no longer uses (its
// spec.namespace changed), once the webhook configurations call the new
// namespace: the old webhook, its Secrets, and the old namespace itself if
// the stack made it.
func (run *stackRun) prune(ctx context.Context) (stack.Step, time.Duration, error) {
	if run.configsChanged {
		// The configurations were just repointed: prune on a later pass,
		// once the API servers call the new webhook.
		return stack.Step{}, teardownDelay, nil
	}
	mine := client.MatchingLabels{gmsav1alpha1.LabelStack: run.s.Name}
	lists := []client.ObjectList{
		&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.SecretList{}, &corev1.ServiceAccountList{}, &policyv1.PodDisruptionBudgetList{},
	}
	if run.r.CertManager {
		lists = append(lists, &cmapi.CertificateList{}, &cmapi.IssuerList{})
	}
	// A namespace the stack made goes as a whole; in one it did not make,
	// the stack's objects go one by one.
	namespaces := &corev1.NamespaceList{}
	if err := run.r.Client.List(ctx, namespaces, mine); err != nil {
		return stack.Step{}, 0, err
	}
	owned := map[string]bool{}
	var stale []client.Object
	for i := range namespaces.Items {
		if ns := &namespaces.Items[i]; ns.Name != run.cfg.Namespace && metav1.IsControlledBy(ns, run.s) {
			owned[ns.Name] = true
			if ns.DeletionTimestamp.IsZero() {
				stale = append(stale, ns)
			}
		}
	}
	for _, l := range lists {
		if err := run.r.Client.List(ctx, l, mine); err != nil {
			return stack.Step{}, 0, err
		}
		_ = meta.EachListItem(l, func(o runtime.Object) error {
			if obj := o.(client.Object); obj.GetNamespace() != run.cfg.Namespace && !owned[obj.GetNamespace()] && metav1.IsControlledBy(obj, run.s) {
				stale = append(stale, obj)
			}
			return nil
		})
	}
	for _, obj := range stale {
		if err := run.r.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return stack.Step{}, 0, fmt.Errorf("delete %s: %w", describe(obj), err)
		}
		run.changes.add("Deleted", describe(obj)+" (no longer in the stack's namespace)")
	}
	return stack.Step{}, 0, nil
}

func (run *stackRun) ensureWebhookConfigs(ctx context.Context) error {
	var bundle []byte
	if run.cfg.CertSource != gmsav1alpha1.CertificateSourceCertManager {
		bundle = run.bundle
	}
	m, v := run.cfg.WebhookConfigurations(bundle)
	for _, obj := range []client.Object{m, v} {
		changed, err := run.a.ensure(ctx, run.own(obj))
		if changed {
			run.changes.add("Applied", describe(obj))
			run.configsChanged = true
		}
		if err != nil {
			return err
		}
	}
	return nil
}
