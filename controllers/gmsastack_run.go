package controllers

import (
	"context"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/metrics"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
)

// One reconcile of the active GmsaStack: read once into a snapshot, plan
// purely (stack.PlanStack), apply the plan through the reconcile kit.

// run reconciles s and returns what to report and when to look again.
func (r *GmsaStackReconciler) run(ctx context.Context, s *gmsav1alpha1.GmsaStack, changes *reconcilekit.Changes) (stack.Outcome, stack.Plan, error) {
	logger := log.FromContext(ctx)
	cfg, err := stack.Resolve(s, r.OperatorImage)
	if err != nil {
		logger.V(1).Info("invalid spec", "error", err.Error())
		return stack.Outcome{Steps: []reconcilekit.Step{{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonInvalidSpec, Message: err.Error()}}}, stack.Plan{}, nil
	}
	o := stack.Outcome{Namespace: cfg.Namespace, Image: cfg.Image}
	snap, err := r.read(ctx, s, cfg)
	if err != nil {
		return o, stack.Plan{}, err
	}
	plan, err := stack.PlanStack(s, cfg, snap, r.now())
	if err != nil {
		return o, plan, err
	}
	for i, st := range plan.Steps {
		logger.V(1).Info("planned step", "index", i, "condition", st.Condition, "progress", st.Progress.String(), "reason", st.Reason)
	}
	for _, c := range plan.CertChanges {
		changes.Add("Certificate", s, c)
	}
	steps, err := r.apply(ctx, s, plan, changes)
	if err == nil {
		// What the Secrets hold now; after a failed write, what was
		// recorded before stands.
		metrics.SetStackCertificates(s.Name, stack.CertificateExpiries(cfg, snap, plan))
	}
	o.Steps, o.NotAfter, o.ReadyReplicas = steps, plan.NotAfter, plan.ReadyReplicas
	o.Mode, o.ModeReason = plan.Mode, plan.ModeReason
	return o, plan, err
}

// apply carries out the plan's writes in order. Someone else's object under
// a wanted name blocks its step (ObjectConflict) and the writes of the steps
// after it, except those marked Always; the steps after it are then not
// reported. It returns the steps to report.
func (r *GmsaStackReconciler) apply(ctx context.Context, s *gmsav1alpha1.GmsaStack, plan stack.Plan, changes *reconcilekit.Changes) ([]reconcilekit.Step, error) {
	steps := plan.Steps
	blocked := -1
	ranAnyway := map[int]bool{}
	for _, act := range plan.Actions {
		if blocked >= 0 && act.Step > blocked {
			if !act.Always {
				continue
			}
			ranAnyway[act.Step] = true
		}
		if act.Retire != "" {
			if err := r.retire(ctx, s, act.Retire); err != nil {
				return steps, err
			}
		}
		if act.Delete {
			deleted, err := reconcilekit.DeleteOwned(ctx, r.Client, act.Object, s.UID)
			if err != nil {
				return steps, err
			}
			if deleted {
				changes.Add(reconcilekit.ReasonDeleted, act.Object, act.Note)
			}
			continue
		}
		var opts []reconcilekit.ApplyOption
		if act.Adopt {
			log.FromContext(ctx).V(1).Info("adopting an object another installer made, as the spec says", "object", reconcilekit.Describe(act.Object))
			opts = append(opts, reconcilekit.Adopt())
		}
		res, err := r.applier.Apply(ctx, act.Object, opts...)
		if f, foreign := reconcilekit.IsForeign(err); foreign {
			if act.ForeignOK {
				log.FromContext(ctx).V(1).Info("using an object someone else made as it is", "object", reconcilekit.Describe(act.Object))
				continue
			}
			if blocked < 0 || act.Step < blocked {
				steps[act.Step] = reconcilekit.Step{Condition: steps[act.Step].Condition, Progress: reconcilekit.Blocked,
					Reason: gmsav1alpha1.ReasonObjectConflict, Message: f.Error()}
				blocked = act.Step
			}
			continue
		}
		if err != nil {
			return steps, err
		}
		changes.Applied(res, act.Object)
	}
	if blocked >= 0 {
		kept := steps[:blocked+1]
		// A step whose writes ran anyway (a certificate renewal) is reported.
		for i := blocked + 1; i < len(steps); i++ {
			if ranAnyway[i] {
				kept = append(kept, steps[i])
			}
		}
		steps = kept
	}
	return steps, nil
}

// read takes the snapshot the plan works from: the live objects from the
// cache (the stack's own kinds are cached by label), an issuer from the API
// server (a user's issuer carries none of the operator's labels).
func (r *GmsaStackReconciler) read(ctx context.Context, s *gmsav1alpha1.GmsaStack, cfg stack.Config) (stack.Snapshot, error) {
	snap := stack.Snapshot{CertManager: r.CertManager}
	get := func(key client.ObjectKey, obj client.Object) (bool, error) {
		err := r.Client.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s %s: %w", reconcilekit.Describe(obj), key, err)
		}
		return true, nil
	}
	in := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: cfg.Namespace, Name: name} }

	crd := &apiextensionsv1.CustomResourceDefinition{}
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	ca, tls := &corev1.Secret{}, &corev1.Secret{}
	dep := &appsv1.Deployment{}
	for _, g := range []struct {
		key client.ObjectKey
		obj client.Object
		set func()
	}{
		{client.ObjectKey{Name: credspeccrd.Name}, crd, func() { snap.CRD = crd }},
		{client.ObjectKey{Name: cfg.Namespace}, ns, func() { snap.Namespace = ns }},
		{client.ObjectKey{Name: stack.WebhookName}, m, func() { snap.Mutating = m }},
		{client.ObjectKey{Name: stack.WebhookName}, v, func() { snap.Validating = v }},
		{in(stack.CASecretName), ca, func() { snap.CASecret = ca }},
		{in(stack.TLSSecretName), tls, func() { snap.TLSSecret = tls }},
		{in(stack.WebhookName), dep, func() { snap.Deployment = dep }},
	} {
		found, err := get(g.key, g.obj)
		if err != nil {
			return snap, err
		}
		if found {
			g.set()
		}
	}

	if err := r.readPolicies(ctx, s, cfg, &snap); err != nil {
		return snap, err
	}
	var err error
	if snap.OtherSource, err = r.otherSource(ctx, s, cfg); err != nil {
		return snap, err
	}
	if cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager && r.CertManager {
		// Only cert-manager's own issuer kinds can be looked up; an
		// external issuer (another group) is left to cert-manager to
		// report.
		// Issuers and ClusterIssuers are watched: one created or becoming
		// Ready reconciles the stack at once.
		if ref, own := cfg.CertManagerIssuerRef(); !own && ref.Group == "cert-manager.io" {
			var issuer client.Object
			var status *cmapi.IssuerStatus
			key := in(ref.Name)
			if ref.Kind == cmapi.ClusterIssuerKind {
				ci := &cmapi.ClusterIssuer{}
				issuer, status, key = ci, &ci.Status, client.ObjectKey{Name: ref.Name}
			} else {
				is := &cmapi.Issuer{}
				issuer, status = is, &is.Status
			}
			switch err := r.Client.Get(ctx, key, issuer); {
			case apierrors.IsNotFound(err):
				snap.IssuerMissing = true
			case err != nil:
				return snap, fmt.Errorf("read %s %s: %w", ref.Kind, key, err)
			default:
				snap.IssuerNotReady = issuerNotReady(status)
			}
		}
	}
	if snap.Endpoints, err = r.endpoints(ctx, cfg); err != nil {
		return snap, err
	}
	snap.Stale, err = r.stale(ctx, s, cfg)
	return snap, err
}

// endpoints sums up the EndpointSlices of the webhook Service (cached by
// their kubernetes.io/service-name label).
func (r *GmsaStackReconciler) endpoints(ctx context.Context, cfg stack.Config) (stack.Endpoints, error) {
	var ep stack.Endpoints
	slices := &discoveryv1.EndpointSliceList{}
	if err := r.Client.List(ctx, slices, client.InNamespace(cfg.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: stack.WebhookName}); err != nil {
		return ep, fmt.Errorf("read the EndpointSlices of Service %s/%s: %w", cfg.Namespace, stack.WebhookName, err)
	}
	for _, sl := range slices.Items {
		for _, e := range sl.Endpoints {
			// A nil ready condition means ready (discovery.k8s.io/v1).
			if len(e.Addresses) > 0 && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
				ep.Ready++
			}
		}
		if t, err := time.Parse(time.RFC3339Nano, sl.Annotations[corev1.EndpointsLastChangeTriggerTime]); err == nil && t.After(ep.ChangedAt) {
			ep.ChangedAt = t
		}
	}
	return ep, nil
}

// readPolicies reads, where the API server serves admission policies, the
// stack's policies, bindings and parameter objects; in Policy mode also
// every credspec and what is left of Webhook mode.
func (r *GmsaStackReconciler) readPolicies(ctx context.Context, s *gmsav1alpha1.GmsaStack, cfg stack.Config, snap *stack.Snapshot) error {
	snap.PolicyAPI = r.PolicyAPI
	if !r.PolicyAPI {
		return nil
	}
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingAdmissionPolicy{}, &admissionregistrationv1.MutatingAdmissionPolicyBinding{},
		&admissionregistrationv1.ValidatingAdmissionPolicy{}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{},
	} {
		gvk, err := r.Client.GroupVersionKindFor(obj)
		if err != nil {
			return err
		}
		for _, name := range []string{stack.PolicyName, stack.ContentPolicyName} {
			if gvk.Kind == "MutatingAdmissionPolicy" || gvk.Kind == "MutatingAdmissionPolicyBinding" {
				if name != stack.PolicyName {
					continue
				}
			}
			o := obj.DeepCopyObject().(client.Object)
			err := r.Client.Get(ctx, client.ObjectKey{Name: name}, o)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read %s %s: %w", gvk.Kind, name, err)
			}
			if metav1.IsControlledBy(o, s) {
				o.GetObjectKind().SetGroupVersionKind(gvk)
				snap.Policies = append(snap.Policies, o)
			}
		}
	}
	cms := &gmsav1alpha1.GmsaCredSpecSetList{}
	if err := r.Client.List(ctx, cms, client.MatchingLabels{gmsav1alpha1.LabelStack: s.Name}); err != nil {
		return fmt.Errorf("list GmsaCredSpecSets: %w", err)
	}
	for i := range cms.Items {
		cm := &cms.Items[i]
		if !metav1.IsControlledBy(cm, s) {
			continue
		}
		cm.SetGroupVersionKind(gmsav1alpha1.GroupVersion.WithKind("GmsaCredSpecSet"))
		switch {
		case cm.Namespace == cfg.Namespace && cm.Name == stack.PolicyIndexName:
			snap.Index = cm
		case cm.Namespace == cfg.Namespace && cm.Labels[stack.PolicyShardLabel] == "true":
			snap.Shards = append(snap.Shards, cm)
		default: // in a namespace the stack left
			snap.Stale = append(snap.Stale, cm)
		}
	}
	// Auto decides on the number of credspecs; Policy mode publishes them.
	var specs *unstructured.UnstructuredList
	listSpecs := func() error {
		specs = &unstructured.UnstructuredList{}
		specs.SetGroupVersionKind(CredentialSpecGVK.GroupVersion().WithKind(CredentialSpecGVK.Kind + "List"))
		// Read only (counted, or their content encoded): the cache's own
		// objects, not a copy of each, as every credspec change comes here.
		if err := r.Client.List(ctx, specs, client.UnsafeDisableDeepCopy); err != nil && !meta.IsNoMatchError(err) {
			return fmt.Errorf("list GMSACredentialSpecs: %w", err)
		}
		return nil
	}
	if cfg.AdmissionMode != gmsav1alpha1.AdmissionModeWebhook && cfg.AdmissionMode != gmsav1alpha1.AdmissionModePolicy { // Auto
		if err := listSpecs(); err != nil {
			return err
		}
		snap.CredSpecCount = len(specs.Items)
	}
	if mode, _, ok := stack.ResolveMode(cfg, snap.ModeInputs(s)); !ok || mode != gmsav1alpha1.AdmissionModePolicy {
		return nil
	}
	if specs == nil {
		if err := listSpecs(); err != nil {
			return err
		}
	}
	snap.CredSpecs = make(map[string]stack.Published, len(specs.Items))
	for i := range specs.Items {
		u := &specs.Items[i]
		content, err := admission.ContentOf(u.Object)
		if err != nil {
			// Published without content: refused as the webhook refuses
			// a credspec it cannot read.
			log.FromContext(ctx).Info("credspec content cannot be published", "credspec", u.GetName(), "error", err.Error())
		}
		snap.CredSpecs[u.GetName()] = stack.Published{Content: content}
	}
	webhook, err := r.webhookObjects(ctx, s, cfg)
	snap.WebhookObjects = webhook
	return err
}

// webhookObjects lists the stack's Webhook mode objects in its namespace
// and cluster-wide (not the webhook configurations).
func (r *GmsaStackReconciler) webhookObjects(ctx context.Context, s *gmsav1alpha1.GmsaStack, cfg stack.Config) ([]client.Object, error) {
	mine := client.MatchingLabels{gmsav1alpha1.LabelStack: s.Name}
	lists := []client.ObjectList{
		&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.SecretList{}, &corev1.ServiceAccountList{}, &policyv1.PodDisruptionBudgetList{},
		&rbacv1.ClusterRoleList{}, &rbacv1.ClusterRoleBindingList{},
	}
	if r.CertManager {
		lists = append(lists, &cmapi.CertificateList{}, &cmapi.IssuerList{})
	}
	var objs []client.Object
	for _, l := range lists {
		if err := r.Client.List(ctx, l, mine); err != nil {
			return nil, fmt.Errorf("list %T: %w", l, err)
		}
		if err := meta.EachListItem(l, func(o runtime.Object) error {
			obj := o.(client.Object)
			if (obj.GetNamespace() == cfg.Namespace || obj.GetNamespace() == "") && metav1.IsControlledBy(obj, s) {
				gvk, err := r.Client.GroupVersionKindFor(obj)
				if err != nil {
					return err
				}
				obj.GetObjectKind().SetGroupVersionKind(gvk)
				objs = append(objs, obj)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// otherSource says which certificate source's material the stack made in
// its namespace, when it is not the one the spec asks for: cert-manager
// Certificates (now SelfSigned), or the operator's own CA Secret (now
// CertManager).
func (r *GmsaStackReconciler) otherSource(ctx context.Context, s *gmsav1alpha1.GmsaStack, cfg stack.Config) (gmsav1alpha1.CertificateSource, error) {
	if cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager {
		ca := &corev1.Secret{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: stack.CASecretName}, ca)
		if err != nil {
			return "", client.IgnoreNotFound(err)
		}
		if ca.Type == corev1.SecretTypeOpaque && metav1.IsControlledBy(ca, s) {
			return gmsav1alpha1.CertificateSourceSelfSigned, nil
		}
		return "", nil
	}
	if !r.CertManager {
		return "", nil
	}
	list := &cmapi.CertificateList{}
	if err := r.Client.List(ctx, list, client.InNamespace(cfg.Namespace), client.MatchingLabels{gmsav1alpha1.LabelStack: s.Name}); err != nil {
		return "", fmt.Errorf("list Certificates: %w", err)
	}
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], s) {
			return gmsav1alpha1.CertificateSourceCertManager, nil
		}
	}
	return "", nil
}

// stale lists what the stack made outside its namespace (it moved): a
// namespace it made goes as a whole; in one it did not make, its objects go
// one by one.
func (r *GmsaStackReconciler) stale(ctx context.Context, s *gmsav1alpha1.GmsaStack, cfg stack.Config) ([]client.Object, error) {
	mine := client.MatchingLabels{gmsav1alpha1.LabelStack: s.Name}
	namespaces := &metav1.PartialObjectMetadataList{}
	namespaces.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.Client.List(ctx, namespaces, mine); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	owned := map[string]bool{}
	var stale []client.Object
	for i := range namespaces.Items {
		if ns := &namespaces.Items[i]; ns.Name != cfg.Namespace && metav1.IsControlledBy(ns, s) {
			owned[ns.Name] = true
			if ns.DeletionTimestamp.IsZero() {
				ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
				stale = append(stale, ns)
			}
		}
	}
	lists := []client.ObjectList{
		&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.SecretList{}, &corev1.ServiceAccountList{}, &policyv1.PodDisruptionBudgetList{},
	}
	if r.CertManager {
		lists = append(lists, &cmapi.CertificateList{}, &cmapi.IssuerList{})
	}
	for _, l := range lists {
		if err := r.Client.List(ctx, l, mine); err != nil {
			return nil, fmt.Errorf("list %T: %w", l, err)
		}
		if err := meta.EachListItem(l, func(o runtime.Object) error {
			if obj := o.(client.Object); obj.GetNamespace() != cfg.Namespace && !owned[obj.GetNamespace()] && metav1.IsControlledBy(obj, s) {
				stale = append(stale, obj)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return stale, nil
}

// issuerNotReady says why an issuer is not Ready ("" when it is).
func issuerNotReady(st *cmapi.IssuerStatus) string {
	for _, c := range st.Conditions {
		if c.Type == cmapi.IssuerConditionReady {
			if c.Status == cmmeta.ConditionTrue {
				return ""
			}
			return fmt.Sprintf("%s: %s", c.Reason, c.Message)
		}
	}
	return "it has no Ready condition yet"
}
