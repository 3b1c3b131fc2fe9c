package controllers

import (
	"bytes"
	"context"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
)

// stackRun is one reconcile of one stack.
type stackRun struct {
	r       *GmsaStackReconciler
	s       *gmsav1alpha1.GmsaStack
	changes *reconcilekit.Changes
	cfg     stack.Config
	o       stack.Outcome
	// bundle and caID of the SelfSigned certificate material.
	bundle []byte
	caID   string
}

type stepFunc func(context.Context) (reconcilekit.Step, time.Duration, error)

// reconcile runs the steps in order; a step that is not Done stops the
// ones after it.
func (run *stackRun) reconcile(ctx context.Context) (stack.Outcome, time.Duration, error) {
	logger := log.FromContext(ctx)
	cfg, err := stack.Resolve(run.s, run.r.OperatorImage)
	if err != nil {
		logger.V(1).Info("invalid spec", "error", err.Error())
		run.o.Steps = append(run.o.Steps, reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonInvalidSpec, Message: err.Error()})
		return run.o, 0, nil
	}
	run.cfg = cfg
	run.o.Namespace, run.o.Image = cfg.Namespace, cfg.Image

	steps := []struct {
		name string
		fn   stepFunc
	}{
		{"crd", run.crd}, {"base", run.base}, {"certificates", run.certificates},
		{"deployment", run.deployment}, {"admission", run.admission}, {"prune", run.prune},
	}
	var requeue time.Duration
	soonest := func(after time.Duration) {
		if after > 0 && (requeue == 0 || after < requeue) {
			requeue = after
		}
	}
	for i, step := range steps {
		st, after, err := step.fn(ctx)
		if err != nil {
			f, ok := reconcilekit.IsForeign(err)
			if !ok {
				return run.o, 0, fmt.Errorf("%s: %w", step.name, err)
			}
			st = reconcilekit.Step{Condition: st.Condition, Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonObjectConflict, Message: f.Error()}
		}
		logger.V(1).Info("step", "step", step.name, "progress", st.Progress.String(), "reason", st.Reason)
		run.o.Steps = append(run.o.Steps, st)
		soonest(after)
		if st.Progress == reconcilekit.Done || st.Continue {
			continue
		}
		if st.Condition == gmsav1alpha1.ConditionWebhookAvailable {
			m, v, err := run.webhookConfigs(ctx)
			if err != nil {
				return run.o, 0, err
			}
			if m == nil || v == nil {
				run.o.Steps = append(run.o.Steps, reconcilekit.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured, Progress: reconcilekit.Waiting,
					Reason: gmsav1alpha1.ReasonWaitingForWebhook, Message: "the webhook configurations are created once the webhook Deployment is Available, so that no pod is sent to a webhook that does not answer"})
			}
		}
		// A stack stopped before its certificates (a conflict in an
		// earlier step) still renews the certificate its running webhook
		// serves, so that it does not expire unnoticed.
		if i < 2 && run.cfg.CertSource == gmsav1alpha1.CertificateSourceSelfSigned {
			installed, err := run.installed(ctx)
			if err != nil {
				return run.o, 0, err
			}
			if installed {
				logger.V(1).Info("stopped before the certificates step; renewing the running webhook's certificate anyway", "step", step.name)
				cst, after, err := run.certificates(ctx)
				if err != nil {
					return run.o, 0, fmt.Errorf("renew the serving certificate: %w", err)
				}
				run.o.Steps = append(run.o.Steps, cst)
				soonest(after)
			}
		}
		break
	}
	return run.o, requeue, nil
}

// installed reports whether the stack's serving certificate exists (the
// webhook was installed before).
func (run *stackRun) installed(ctx context.Context) (bool, error) {
	err := run.r.Client.Get(ctx, client.ObjectKey{Namespace: run.cfg.Namespace, Name: stack.TLSSecretName}, &corev1.Secret{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (run *stackRun) own(obj client.Object) client.Object {
	ref := metav1.NewControllerRef(run.s, gmsav1alpha1.GroupVersion.WithKind("GmsaStack"))
	obj.SetOwnerReferences([]metav1.OwnerReference{*ref})
	return obj
}

// apply applies obj (owned by the stack) and records a change when it wrote.
func (run *stackRun) apply(ctx context.Context, obj client.Object, opts ...reconcilekit.ApplyOption) (reconcilekit.Result, error) {
	res, err := run.r.applier.Apply(ctx, run.own(obj), opts...)
	run.changes.Applied(res, obj)
	return res, err
}

// crd installs or upgrades the GMSACredentialSpec CRD as the policy says.
// It never deletes it and never gives it an owner reference.
func (run *stackRun) crd(ctx context.Context) (reconcilekit.Step, time.Duration, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionCRDEstablished}
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
			step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonCRDNotInstalled
			step.Message = fmt.Sprintf("credentialSpecCRD.policy is External and CRD %s is not installed; install it, or set the policy to Manage", credspeccrd.Name)
			return step, 0, nil
		}
	case exists && !ours && run.cfg.CRDPolicy == gmsav1alpha1.CRDPolicyManage:
		by := live.Labels[gmsav1alpha1.LabelManagedBy]
		if by == "" {
			by = "another installer"
		}
		if !credspeccrd.Established(live) {
			step.Progress, step.Reason = reconcilekit.Blocked, gmsav1alpha1.ReasonCRDOwnedElsewhere
			step.Message = fmt.Sprintf("CRD %s was installed by %s and is not Established; it is left alone: fix it there, or set spec.credentialSpecCRD.policy to Adopt", credspeccrd.Name, by)
			return step, 0, nil
		}
		step.Progress, step.Reason = reconcilekit.Done, gmsav1alpha1.ReasonCRDOwnedElsewhere
		step.Message = fmt.Sprintf("CRD %s is Established; it was installed by %s and is left alone (set spec.credentialSpecCRD.policy to Adopt to let the operator upgrade it)", credspeccrd.Name, by)
		return step, 0, nil
	case exists && ours && credspeccrd.Revision(live) > credspeccrd.Revision(desired):
		// A newer operator installed it; never downgrade.
	default:
		// Absent, the operator's own, or another installer's that the
		// policy says to adopt. A CRD someone installs in between is
		// reported by the applier as a conflict, never overwritten.
		var opts []reconcilekit.ApplyOption
		if exists && !ours && run.cfg.CRDPolicy == gmsav1alpha1.CRDPolicyAdopt {
			log.FromContext(ctx).V(1).Info("adopting the CRD another installer made, as the policy says", "crd", credspeccrd.Name)
			opts = append(opts, reconcilekit.Adopt())
		}
		res, err := run.r.applier.Apply(ctx, desired, opts...)
		if err != nil {
			return step, 0, err
		}
		run.changes.Applied(res, desired)
		if res != reconcilekit.Unchanged {
			if err := run.r.Client.Get(ctx, client.ObjectKey{Name: credspeccrd.Name}, live); client.IgnoreNotFound(err) != nil {
				return step, 0, fmt.Errorf("read CRD %s: %w", credspeccrd.Name, err)
			}
		}
	}
	if !credspeccrd.Established(live) {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonProgressing
		step.Message = fmt.Sprintf("waiting for CRD %s to be Established", credspeccrd.Name)
		return step, 2 * time.Second, nil
	}
	step.Reason, step.Message = gmsav1alpha1.ReasonSucceeded, fmt.Sprintf("CRD %s is installed and Established", credspeccrd.Name)
	return step, 0, nil
}

// base makes the namespace (unless it exists), the ServiceAccount, the
// webhook's RBAC, the Service and the PodDisruptionBudget.
func (run *stackRun) base(ctx context.Context) (reconcilekit.Step, time.Duration, error) {
	step := reconcilekit.Step{}
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	err := run.r.Client.Get(ctx, client.ObjectKey{Name: run.cfg.Namespace}, ns)
	switch {
	case err != nil && !apierrors.IsNotFound(err):
		return step, 0, fmt.Errorf("read namespace %s: %w", run.cfg.Namespace, err)
	case err == nil && !ns.DeletionTimestamp.IsZero():
		log.FromContext(ctx).V(1).Info("waiting for the namespace to be deleted", "namespace", run.cfg.Namespace)
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonProgressing
		step.Message = fmt.Sprintf("namespace %s is being deleted; the stack is installed again once it is gone", run.cfg.Namespace)
		return step, 5 * time.Second, nil
	}
	// A namespace someone else made is used as it is: the applier reports
	// it as foreign and changes nothing.
	if _, err := run.apply(ctx, run.cfg.NamespaceObject()); err != nil {
		if _, foreign := reconcilekit.IsForeign(err); !foreign {
			return step, 0, err
		}
		log.FromContext(ctx).V(1).Info("installing into a namespace the stack did not make; it is left as it is", "namespace", run.cfg.Namespace)
	}
	m, v, err := run.webhookConfigs(ctx)
	if err != nil {
		return step, 0, err
	}
	// The webhook the configurations call keeps its RBAC, and so does a
	// retired one API servers may still call.
	keep := []string{calledNamespace(m, v), stack.Retiring(run.s.Status.RetiredWebhook, run.r.now())}
	for _, obj := range []client.Object{
		run.cfg.ServiceAccount(), run.cfg.ClusterRole(), run.cfg.ClusterRoleBinding(keep...), run.cfg.Service(), run.cfg.PodDisruptionBudget(),
	} {
		if _, err := run.apply(ctx, obj); err != nil {
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
func (run *stackRun) certificates(ctx context.Context) (reconcilekit.Step, time.Duration, error) {
	if run.cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager {
		return run.certManager(ctx)
	}
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionCertificateReady}
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
		run.changes.Add("Certificate", run.s, c)
	}
	// Order matters for a rollover: the CA Secret, then the caBundle of
	// existing webhook configurations, and only then the serving
	// certificate the pods load.
	if _, err := run.apply(ctx, run.cfg.Secret(stack.CASecretName, corev1.SecretTypeOpaque, plan.CA)); err != nil {
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
	if _, err := run.apply(ctx, run.cfg.Secret(stack.TLSSecretName, corev1.SecretTypeTLS, plan.TLS)); err != nil {
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

func (run *stackRun) switchRefused(step reconcilekit.Step, from gmsav1alpha1.CertificateSource) reconcilekit.Step {
	step.Progress, step.Reason = reconcilekit.Blocked, gmsav1alpha1.ReasonInvalidSpec
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
func (run *stackRun) certManager(ctx context.Context) (reconcilekit.Step, time.Duration, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionCertificateReady}
	if from, switching, err := run.sourceSwitch(ctx); err != nil || switching {
		return run.switchRefused(step, from), 0, err
	}
	if !run.r.CertManager {
		step.Progress, step.Reason = reconcilekit.Blocked, gmsav1alpha1.ReasonCertManagerNotInstalled
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
			step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonIssuerNotFound
			where := "namespace " + run.cfg.Namespace
			if ref.Kind == cmapi.ClusterIssuerKind {
				where = "the cluster"
			}
			step.Message = fmt.Sprintf("spec.certificates.certManager.issuerRef: %s %q does not exist in %s; create it, or remove issuerRef to let the operator make a self-signed CA chain", ref.Kind, ref.Name, where)
			return step, 30 * time.Second, nil
		}
	}
	for _, obj := range run.cfg.CertManagerObjects() {
		if _, err := run.apply(ctx, obj); err != nil {
			return step, 0, err
		}
	}
	tlsSecret := &corev1.Secret{}
	err := run.r.Client.Get(ctx, client.ObjectKey{Namespace: run.cfg.Namespace, Name: stack.TLSSecretName}, tlsSecret)
	if client.IgnoreNotFound(err) != nil {
		return step, 0, err
	}
	if err != nil || len(tlsSecret.Data[stack.TLSCertKey]) == 0 {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonCertificatePending
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
func (run *stackRun) deployment(ctx context.Context) (reconcilekit.Step, time.Duration, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionWebhookAvailable}
	if _, err := run.apply(ctx, run.cfg.Deployment(run.caID)); err != nil {
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
func (run *stackRun) admission(ctx context.Context) (reconcilekit.Step, time.Duration, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured}
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
// namespace (the step runs only then) and the retired webhook's teardown
// delay has passed: the old webhook, its Secrets, and the old namespace
// itself if the stack made it.
func (run *stackRun) prune(ctx context.Context) (reconcilekit.Step, time.Duration, error) {
	if wait := stack.RetirementWait(run.s.Status.RetiredWebhook, run.r.now()); wait > 0 {
		log.FromContext(ctx).V(1).Info("pruning later: API servers may still call the retired webhook", "namespace", run.s.Status.RetiredWebhook.Namespace, "wait", wait)
		return reconcilekit.Step{}, wait, nil
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
	namespaces := &metav1.PartialObjectMetadataList{}
	namespaces.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := run.r.Client.List(ctx, namespaces, mine); err != nil {
		return reconcilekit.Step{}, 0, fmt.Errorf("list namespaces: %w", err)
	}
	owned := map[string]bool{}
	var stale []client.Object
	for i := range namespaces.Items {
		if ns := &namespaces.Items[i]; ns.Name != run.cfg.Namespace && metav1.IsControlledBy(ns, run.s) {
			owned[ns.Name] = true
			if ns.DeletionTimestamp.IsZero() {
				ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
				stale = append(stale, ns)
			}
		}
	}
	for _, l := range lists {
		if err := run.r.Client.List(ctx, l, mine); err != nil {
			return reconcilekit.Step{}, 0, fmt.Errorf("list %T: %w", l, err)
		}
		if err := meta.EachListItem(l, func(o runtime.Object) error {
			if obj := o.(client.Object); obj.GetNamespace() != run.cfg.Namespace && !owned[obj.GetNamespace()] {
				stale = append(stale, obj)
			}
			return nil
		}); err != nil {
			return reconcilekit.Step{}, 0, err
		}
	}
	for _, obj := range stale {
		deleted, err := reconcilekit.DeleteOwned(ctx, run.r.Client, obj, run.s.UID)
		if err != nil {
			return reconcilekit.Step{}, 0, err
		}
		if deleted {
			run.changes.Add(reconcilekit.ReasonDeleted, obj, "no longer in the stack's namespace")
		}
	}
	return reconcilekit.Step{}, 0, nil
}

// ensureWebhookConfigs applies both webhook configurations. When they call
// another namespace's webhook now (the stack is moving), that webhook is
// retired first: it is kept, with its RBAC, for the teardown delay.
func (run *stackRun) ensureWebhookConfigs(ctx context.Context) error {
	var bundle []byte
	if run.cfg.CertSource != gmsav1alpha1.CertificateSourceCertManager {
		bundle = run.bundle
	}
	m, v, err := run.webhookConfigs(ctx)
	if err != nil {
		return err
	}
	if called := calledNamespace(m, v); called != "" && called != run.cfg.Namespace {
		if err := run.r.retire(ctx, run.s, called); err != nil {
			return err
		}
	}
	want, wantV := run.cfg.WebhookConfigurations(bundle)
	for _, obj := range []client.Object{want, wantV} {
		if _, err := run.apply(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}
