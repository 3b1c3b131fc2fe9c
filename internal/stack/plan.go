package stack

import (
	"bytes"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

// Snapshot is what the GmsaStack controller read, once, at the start of a
// reconcile. A nil object is one that does not exist (or, for the Namespace,
// is not the stack's to change: see NamespaceOwned).
type Snapshot struct {
	CRD *apiextensionsv1.CustomResourceDefinition
	// Namespace is the stack's namespace as metadata; NamespaceOwned says
	// whether the stack made it.
	Namespace *metav1.PartialObjectMetadata
	// Mutating and Validating are the live webhook configurations.
	Mutating   *admissionregistrationv1.MutatingWebhookConfiguration
	Validating *admissionregistrationv1.ValidatingWebhookConfiguration
	// CASecret and TLSSecret are the stack's Secrets in its namespace.
	CASecret, TLSSecret *corev1.Secret
	// Deployment is the webhook Deployment in the stack's namespace.
	Deployment *appsv1.Deployment
	// CertManager: cert-manager's CRDs were installed when the manager
	// started.
	CertManager bool
	// IssuerMissing: the cert-manager issuer the spec names was looked up
	// and does not exist.
	IssuerMissing bool
	// IssuerNotReady is, when the issuer the spec names exists and is not
	// Ready, why (its Ready condition's reason and message).
	IssuerNotReady string
	// OtherSource is the certificate source whose material the stack made
	// in its namespace, when it is not the one the spec asks for ("" when
	// there is none): a switch of a running stack.
	OtherSource gmsav1alpha1.CertificateSource
	// Stale are the stack's objects outside its namespace (after a move):
	// whole namespaces it made there, or its objects one by one.
	Stale []client.Object

	// PolicyAPI: the API server serves admissionregistration.k8s.io/v1
	// MutatingAdmissionPolicy (found when the operator started).
	PolicyAPI bool
	// Policies are the live Policy mode policies and bindings of the
	// stack; Index and Shards its live parameter objects.
	Policies []client.Object
	Index    *gmsav1alpha1.GmsaCredSpecSet
	Shards   []*gmsav1alpha1.GmsaCredSpecSet
	// CredSpecs are every GMSACredentialSpec of the cluster as Policy mode
	// publishes them (read in Policy mode only).
	CredSpecs map[string]Published
	// CredSpecCount is how many GMSACredentialSpecs exist (read only when
	// the spec asks for Auto and the API server serves admission policies).
	CredSpecCount int

	// Endpoints are what the EndpointSlices of the webhook Service say
	// (read in Webhook mode only).
	Endpoints Endpoints

	// WebhookObjects are the stack's Webhook mode objects in its namespace
	// and cluster-wide (ServiceAccount, Service, Deployment,
	// PodDisruptionBudget, Secrets, cert-manager objects, ClusterRole and
	// ClusterRoleBinding), but not the webhook configurations: what Policy
	// mode removes once the webhook is retired.
	WebhookObjects []client.Object
}

// ModeInputs are what ResolveMode needs besides the spec of s.
func (snap Snapshot) ModeInputs(s *gmsav1alpha1.GmsaStack) ModeInputs {
	in := ModeInputs{PolicyAPI: snap.PolicyAPI, CredSpecs: snap.CredSpecCount}
	if s.Status.Admission != nil {
		in.Current = s.Status.Admission.Mode
	}
	return in
}

// Endpoints sum up the EndpointSlices of the webhook Service.
type Endpoints struct {
	// Ready counts the ready endpoints with an address.
	Ready int
	// ChangedAt is the latest endpoints.kubernetes.io/last-change-trigger-time
	// of the slices: when the change they publish (a pod becoming ready)
	// happened. Zero when no slice says.
	ChangedAt time.Time
}

// RouteSettle is how long after its EndpointSlices list a ready endpoint a
// new webhook is first registered: the time kube-proxy takes to route the
// Service (its iptables and nftables modes sync at most once a second by
// default). Without it, a real node refused gMSA pods for 0.1-0.5 s after
// the stack said Ready ("connection refused": a Service without routed
// endpoints).
const RouteSettle = 2 * time.Second

// Action is one write of a plan.
type Action struct {
	// Step is the index, in Plan.Steps, of the step the write belongs to.
	Step int
	// Object is the desired object (Apply) or the live one (Delete).
	Object client.Object
	// Delete deletes Object (if it is the stack's) instead of applying it.
	Delete bool
	// Adopt takes over an object another installer made.
	Adopt bool
	// ForeignOK: someone else's object under that name is used as it is.
	ForeignOK bool
	// Retire names the namespace whose webhook the write stops calling:
	// record its retirement first.
	Retire string
	// Always: applied even when a write of an earlier step found a
	// conflict (the serving certificate of a running webhook is renewed
	// whatever blocks the rest).
	Always bool
	// Note says why, for the change recorder.
	Note string
}

// Plan is what one reconcile of a GmsaStack does: the writes, in order, the
// step conditions as they are once the writes succeeded, and when to look
// again.
type Plan struct {
	Steps   []reconcilekit.Step
	Actions []Action
	// RequeueAfter is when the plan changes by itself (a renewal due, a
	// teardown delay over, a CRD being established); 0 for never.
	RequeueAfter time.Duration
	// CertChanges says, for people, what the certificate material changed.
	CertChanges []string
	// NotAfter of the serving certificate; ReadyReplicas of the webhook.
	NotAfter      *metav1.Time
	ReadyReplicas int32
	// Mode is the admission mode in force and ModeReason why ("" when the
	// spec cannot be served).
	Mode       gmsav1alpha1.AdmissionMode
	ModeReason string
}

// CRDWait is how soon a stack waiting for its CRD to be Established looks
// again (the CRD's own events usually come first).
const CRDWait = 2 * time.Second

// NamespaceWait is how soon a stack waiting for its namespace to finish
// deleting looks again.
const NamespaceWait = 5 * time.Second

// IssuerWait is how soon a stack waiting for a cert-manager issuer looks
// again.
const IssuerWait = 30 * time.Second

// PlanStack decides, without touching the API server, what a reconcile of
// stack s (as cfg resolves it) does given what it read. The steps run in
// order: CRD, base objects, certificates, Deployment, webhook
// configurations, pruning; the first that is not Done stops the ones after
// it, except that a stack stopped before its certificates still renews the
// certificate its running webhook serves. Time-based waits (the teardown
// delay, renewals) come from persisted times and now, never from memory.
func PlanStack(s *gmsav1alpha1.GmsaStack, cfg Config, snap Snapshot, now time.Time) (Plan, error) {
	p := &planner{s: s, cfg: cfg, snap: snap, now: now}
	mode, why, servable := ResolveMode(cfg, snap.ModeInputs(s))
	p.plan.Mode, p.plan.ModeReason = mode, why
	if !servable {
		return p.unservable(why)
	}
	steps := []func() (reconcilekit.Step, error){p.crd, p.base, p.certificates, p.deployment, p.admission, p.prune}
	if snap.PolicyAPI {
		steps = append(steps, p.retirePolicies)
	}
	if mode == gmsav1alpha1.AdmissionModePolicy {
		steps = []func() (reconcilekit.Step, error){p.crd, p.policyBase, p.policies, p.retireWebhook, p.prune}
	}
	for i, step := range steps {
		st, err := step()
		if err != nil {
			return Plan{}, err
		}
		p.plan.Steps = append(p.plan.Steps, st)
		if st.Progress == reconcilekit.Done || st.Continue {
			continue
		}
		if mode == gmsav1alpha1.AdmissionModeWebhook && i == 3 && (snap.Mutating == nil || snap.Validating == nil) { // the Deployment is not Available
			p.plan.Steps = append(p.plan.Steps, reconcilekit.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured, Progress: reconcilekit.Waiting,
				Reason: gmsav1alpha1.ReasonWaitingForWebhook, Message: "the webhook configurations are created once the webhook Deployment is Available, so that no pod is sent to a webhook that does not answer"})
		}
		if mode == gmsav1alpha1.AdmissionModeWebhook && i < 2 && cfg.CertSource == gmsav1alpha1.CertificateSourceSelfSigned && snap.TLSSecret != nil {
			// Installed before: keep the running webhook's certificate
			// from expiring unnoticed.
			st, err := p.certificates()
			if err != nil {
				return Plan{}, err
			}
			p.plan.Steps = append(p.plan.Steps, st)
		}
		break
	}
	return p.plan, nil
}

type planner struct {
	s    *gmsav1alpha1.GmsaStack
	cfg  Config
	snap Snapshot
	now  time.Time
	plan Plan
	// bundle and caID of the SelfSigned certificate material.
	bundle []byte
	caID   string
	// retiring: this pass switches the configurations away from a webhook.
	retiring bool
}

// step is the index the next step gets.
func (p *planner) step() int { return len(p.plan.Steps) }

func (p *planner) own(obj client.Object) client.Object {
	ref := metav1.NewControllerRef(p.s, gmsav1alpha1.GroupVersion.WithKind("GmsaStack"))
	obj.SetOwnerReferences([]metav1.OwnerReference{*ref})
	return obj
}

func (p *planner) apply(obj client.Object, a Action) {
	a.Step, a.Object = p.step(), p.own(obj)
	p.plan.Actions = append(p.plan.Actions, a)
}

func (p *planner) requeue(after time.Duration) {
	if after > 0 && (p.plan.RequeueAfter == 0 || after < p.plan.RequeueAfter) {
		p.plan.RequeueAfter = after
	}
}

// crd installs or upgrades the GMSACredentialSpec CRD as the policy says. It
// never deletes it and never gives it an owner reference.
func (p *planner) crd() (reconcilekit.Step, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionCRDEstablished}
	desired, err := p.cfg.CRD()
	if err != nil {
		return step, err
	}
	live := p.snap.CRD
	ours := live != nil && live.Labels[gmsav1alpha1.LabelManagedBy] == gmsav1alpha1.ManagedByValue
	switch {
	case p.cfg.CRDPolicy == gmsav1alpha1.CRDPolicyExternal:
		if live == nil {
			step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonCRDNotInstalled
			step.Message = fmt.Sprintf("credentialSpecCRD.policy is External and CRD %s is not installed; install it, or set the policy to Manage", credspeccrd.Name)
			return step, nil
		}
	case live != nil && !ours && p.cfg.CRDPolicy == gmsav1alpha1.CRDPolicyManage:
		by := live.Labels[gmsav1alpha1.LabelManagedBy]
		if by == "" {
			by = "another installer"
		}
		if !credspeccrd.Established(live) {
			step.Progress, step.Reason = reconcilekit.Blocked, gmsav1alpha1.ReasonCRDOwnedElsewhere
			step.Message = fmt.Sprintf("CRD %s was installed by %s and is not Established; it is left alone: fix it there, or set spec.credentialSpecCRD.policy to Adopt", credspeccrd.Name, by)
			return step, nil
		}
		step.Reason = gmsav1alpha1.ReasonCRDOwnedElsewhere
		step.Message = fmt.Sprintf("CRD %s is Established; it was installed by %s and is left alone (set spec.credentialSpecCRD.policy to Adopt to let the operator upgrade it)", credspeccrd.Name, by)
		return step, nil
	case ours && credspeccrd.Revision(live) > credspeccrd.Revision(desired):
		// A newer operator installed it; never downgrade.
	default:
		// Absent, the operator's own, or another installer's that the
		// policy says to adopt. A CRD someone installs in between is
		// reported by the applier as a conflict, never overwritten.
		p.plan.Actions = append(p.plan.Actions, Action{Step: p.step(), Object: desired,
			Adopt: live != nil && !ours && p.cfg.CRDPolicy == gmsav1alpha1.CRDPolicyAdopt})
	}
	if live == nil || !credspeccrd.Established(live) {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonProgressing
		step.Message = fmt.Sprintf("waiting for CRD %s to be Established", credspeccrd.Name)
		p.requeue(CRDWait)
		return step, nil
	}
	step.Reason, step.Message = gmsav1alpha1.ReasonSucceeded, fmt.Sprintf("CRD %s is installed and Established", credspeccrd.Name)
	return step, nil
}

// base makes the namespace (unless someone else made it), the
// ServiceAccount, the webhook's RBAC, the Service and the
// PodDisruptionBudget.
func (p *planner) base() (reconcilekit.Step, error) {
	step := reconcilekit.Step{}
	if ns := p.snap.Namespace; ns != nil && !ns.DeletionTimestamp.IsZero() {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonProgressing
		step.Message = fmt.Sprintf("namespace %s is being deleted; the stack is installed again once it is gone", p.cfg.Namespace)
		p.requeue(NamespaceWait)
		return step, nil
	}
	p.apply(p.cfg.NamespaceObject(), Action{ForeignOK: true})
	// The webhook the configurations call keeps its RBAC, and so does a
	// retired one API servers may still call.
	keep := []string{calledNamespace(p.snap.Mutating), Retiring(p.s.Status.RetiredWebhook, p.now)}
	for _, obj := range []client.Object{
		p.cfg.ServiceAccount(), p.cfg.ClusterRole(), p.cfg.ClusterRoleBinding(keep...), p.cfg.Service(), p.cfg.PodDisruptionBudget(),
	} {
		p.apply(obj, Action{})
	}
	return step, nil
}

// certificates makes the serving certificate: its own CA and certificate
// (SelfSigned) or cert-manager's Issuers and Certificate (CertManager).
func (p *planner) certificates() (reconcilekit.Step, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionCertificateReady}
	if from := p.snap.OtherSource; from != "" {
		step.Progress, step.Reason = reconcilekit.Blocked, gmsav1alpha1.ReasonInvalidSpec
		step.Message = fmt.Sprintf("spec.certificates.source: switching a running stack from %s to %s is not supported (both would write Secret %s and caBundle); "+
			"set it back to %s, or delete this GmsaStack and create it again with %s (its webhook configurations are removed first, so gMSA pods are refused until it is Ready again)",
			from, p.cfg.CertSource, TLSSecretName, from, p.cfg.CertSource)
		return step, nil
	}
	if p.cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager {
		return p.certManager(step), nil
	}
	var published []byte
	calls := callsNamespace(p.snap.Mutating, p.snap.Validating, p.cfg.Namespace)
	if calls {
		published = publishedBundle(p.snap.Mutating, p.snap.Validating)
	}
	var caData, tlsData map[string][]byte
	if p.snap.CASecret != nil {
		caData = p.snap.CASecret.Data
	}
	if p.snap.TLSSecret != nil {
		tlsData = p.snap.TLSSecret.Data
	}
	cp, err := PlanCertificates(CertInput{
		CA: caData, TLS: tlsData, DNSNames: p.cfg.DNSNames(),
		Duration: p.cfg.Duration, RenewBefore: p.cfg.RenewBefore, Now: p.now,
		PublishedBundle: published,
		RolledOut:       rolledOut(p.snap.Deployment, CAID(caData[CACertKey])),
	})
	if err != nil {
		return step, err
	}
	p.plan.CertChanges = append(p.plan.CertChanges, cp.Changes...)
	p.bundle, p.caID = cp.Bundle, cp.CAID
	// Order matters for a rollover: the CA Secret, then the caBundle of
	// existing webhook configurations, and only then the serving
	// certificate the pods load. Configurations that still call another
	// namespace's webhook (the stack is moving) are switched by the
	// admission step, service and bundle together, once the new Deployment
	// is Available.
	always := Action{Always: p.snap.TLSSecret != nil}
	p.apply(p.cfg.Secret(CASecretName, corev1.SecretTypeOpaque, cp.CA), always)
	if calls {
		m, v := p.cfg.WebhookConfigurations(cp.Bundle)
		p.apply(m, always)
		p.apply(v, always)
	}
	p.apply(p.cfg.Secret(TLSSecretName, corev1.SecretTypeTLS, cp.TLS), always)
	notAfter := metav1.NewTime(cp.NotAfter)
	p.plan.NotAfter = &notAfter
	p.requeue(cp.RequeueAfter)
	step.Reason = gmsav1alpha1.ReasonSucceeded
	step.Message = fmt.Sprintf("serving certificate for %s valid until %s, renewed %s before", p.cfg.DNSNames()[0], cp.NotAfter.UTC().Format(time.RFC3339), p.cfg.RenewBefore)
	return step, nil
}

// certManager makes the cert-manager objects and waits for the Secret
// cert-manager writes.
func (p *planner) certManager(step reconcilekit.Step) reconcilekit.Step {
	if !p.snap.CertManager {
		step.Progress, step.Reason = reconcilekit.Blocked, gmsav1alpha1.ReasonCertManagerNotInstalled
		step.Message = "certificates.source is CertManager, but cert-manager's CRDs (certificates.cert-manager.io, issuers.cert-manager.io) were not installed when the operator started: install cert-manager and restart the operator, or use source SelfSigned"
		return step
	}
	if ref, _ := p.cfg.CertManagerIssuerRef(); p.snap.IssuerMissing {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonIssuerNotFound
		where := "namespace " + p.cfg.Namespace
		if ref.Kind == "ClusterIssuer" {
			where = "the cluster"
		}
		step.Message = fmt.Sprintf("spec.certificates.certManager.issuerRef: %s %q does not exist in %s; create it, or remove issuerRef to let the operator make a self-signed CA chain", ref.Kind, ref.Name, where)
		p.requeue(IssuerWait)
		return step
	}
	for _, obj := range p.cfg.CertManagerObjects() {
		p.apply(obj, Action{})
	}
	if p.snap.TLSSecret == nil || len(p.snap.TLSSecret.Data[TLSCertKey]) == 0 {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonCertificatePending
		step.Message = fmt.Sprintf("waiting for cert-manager to issue Certificate %s/%s into Secret %s (kubectl describe certificate -n %s %s)",
			p.cfg.Namespace, ServingCertificateName, TLSSecretName, p.cfg.Namespace, ServingCertificateName)
		if why := p.snap.IssuerNotReady; why != "" {
			ref, _ := p.cfg.CertManagerIssuerRef()
			step.Message = fmt.Sprintf("%s %q (spec.certificates.certManager.issuerRef) is not Ready: %s; cert-manager issues nothing until it is. ", ref.Kind, ref.Name, why) + step.Message
		}
		return step
	}
	step.Reason = gmsav1alpha1.ReasonSucceeded
	step.Message = "cert-manager issued the serving certificate; its cainjector fills caBundle"
	if c, err := certs.NotAfter(p.snap.TLSSecret.Data[TLSCertKey]); err == nil {
		t := metav1.NewTime(c)
		p.plan.NotAfter = &t
		step.Message = fmt.Sprintf("cert-manager issued the serving certificate, valid until %s; its cainjector fills caBundle", c.UTC().Format(time.RFC3339))
	}
	return step
}

// deployment runs the webhook and reports its availability.
func (p *planner) deployment() (reconcilekit.Step, error) {
	p.apply(p.cfg.Deployment(p.caID), Action{})
	dep := p.snap.Deployment
	if dep == nil {
		dep = &appsv1.Deployment{}
	}
	p.plan.ReadyReplicas = dep.Status.ReadyReplicas
	step := p.cfg.DeploymentStep(dep)
	if step.Progress != reconcilekit.Done || !p.firstRegistration() {
		return step, nil
	}
	// The configurations will call this Service for the first time: wait
	// until something routes it (a running webhook keeps its endpoints
	// through rollouts: maxUnavailable 0 and the PodDisruptionBudget).
	svc := fmt.Sprintf("%s/%s", p.cfg.Namespace, WebhookName)
	ep := p.snap.Endpoints
	if ep.Ready == 0 {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonWaitingForEndpoints
		step.Message = fmt.Sprintf("the webhook Deployment is Available; waiting for the EndpointSlices of Service %s to list a ready endpoint before any pod is sent to it (kubectl -n %s get endpointslices -l kubernetes.io/service-name=%s)",
			svc, p.cfg.Namespace, WebhookName)
		return step, nil
	}
	if wait := ep.ChangedAt.Add(RouteSettle).Sub(p.now); wait > 0 {
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonWaitingForEndpoints
		step.Message = fmt.Sprintf("Service %s has %d ready endpoints since %s; giving kube-proxy %s to route them before any pod is sent to it",
			svc, ep.Ready, ep.ChangedAt.UTC().Format(time.RFC3339Nano), RouteSettle)
		p.requeue(wait)
		return step, nil
	}
	return step, nil
}

// firstRegistration: the webhook configurations do not call this stack's
// webhook yet (a new stack, a switch from Policy mode, a move to another
// namespace).
func (p *planner) firstRegistration() bool {
	return p.snap.Mutating == nil || p.snap.Validating == nil || calledNamespace(p.snap.Mutating) != p.cfg.Namespace
}

// admission registers the webhook configurations once the Deployment is
// Available (the step runs only then), and keeps them as desired. When they
// call another namespace's webhook now (the stack moves), that webhook is
// retired first: kept, with its RBAC, for the teardown delay.
func (p *planner) admission() (reconcilekit.Step, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured}
	var bundle []byte
	if p.cfg.CertSource != gmsav1alpha1.CertificateSourceCertManager {
		bundle = p.bundle
	}
	retire := ""
	if called := calledNamespace(p.snap.Mutating); called != "" && called != p.cfg.Namespace {
		retire = called
		p.retiring = true
	}
	m, v := p.cfg.WebhookConfigurations(bundle)
	p.apply(m, Action{Retire: retire})
	p.apply(v, Action{})
	if p.cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager && !p.caInjected() {
		// cainjector fills caBundle after the configurations exist (or
		// after a new CA): until both trust the serving certificate, the
		// API server cannot call the webhook, so the stack is not Ready.
		step.Progress, step.Reason = reconcilekit.Waiting, gmsav1alpha1.ReasonWaitingForCAInjection
		step.Message = fmt.Sprintf("waiting for cert-manager's cainjector to put the CA that signed Secret %s/%s into the caBundle of both webhook configurations (annotation cert-manager.io/inject-ca-from); until then the API server cannot call the webhook. Is cainjector running?",
			p.cfg.Namespace, TLSSecretName)
		return step, nil
	}
	step.Reason = gmsav1alpha1.ReasonSucceeded
	step.Message = fmt.Sprintf("MutatingWebhookConfiguration and ValidatingWebhookConfiguration %s send pods that mention gMSA to %s.%s.svc (failurePolicy %s, timeout %ds)",
		WebhookName, WebhookName, p.cfg.Namespace, p.cfg.FailurePolicy, p.cfg.TimeoutSeconds)
	return step, nil
}

// caInjected reports whether the caBundle of both live webhook
// configurations trusts the serving certificate cert-manager issued.
func (p *planner) caInjected() bool {
	if p.snap.TLSSecret == nil || p.snap.Mutating == nil || p.snap.Validating == nil ||
		len(p.snap.Mutating.Webhooks) == 0 || len(p.snap.Validating.Webhooks) == 0 {
		return false
	}
	leaf, err := certs.ParseCertificate(p.snap.TLSSecret.Data[TLSCertKey])
	if err != nil {
		return false
	}
	trusts := func(bundle []byte) bool {
		cas, err := certs.ParseCertificates(bundle)
		if err != nil {
			return false
		}
		for _, ca := range cas {
			if signedBy(leaf, ca) {
				return true
			}
		}
		return false
	}
	for _, w := range p.snap.Mutating.Webhooks {
		if !trusts(w.ClientConfig.CABundle) {
			return false
		}
	}
	for _, w := range p.snap.Validating.Webhooks {
		if !trusts(w.ClientConfig.CABundle) {
			return false
		}
	}
	return true
}

// prune removes what the stack made outside its namespace (it moved), once
// the webhook configurations call the new namespace (the step runs only
// then) and the retired webhook's teardown delay is over.
func (p *planner) prune() (reconcilekit.Step, error) {
	gone := p.snap.Stale
	if p.plan.Mode == gmsav1alpha1.AdmissionModePolicy {
		gone = append(gone, p.snap.WebhookObjects...)
	}
	wait := RetirementWait(p.s.Status.RetiredWebhook, p.now)
	if p.retiring { // retired by this very pass
		wait = TeardownDelay
	}
	if wait > 0 {
		p.requeue(wait)
		if p.plan.Mode == gmsav1alpha1.AdmissionModePolicy && len(p.snap.WebhookObjects) > 0 {
			return reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonSwitchingMode,
				Message: fmt.Sprintf("switching to Policy mode: the webhook configurations are removed; the webhook goes %s after that", TeardownDelay)}, nil
		}
		return reconcilekit.Step{}, nil
	}
	for _, obj := range gone {
		p.plan.Actions = append(p.plan.Actions, Action{Step: p.step(), Object: obj, Delete: true, Note: "no longer in the stack's namespace or mode"})
	}
	return reconcilekit.Step{}, nil
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
func calledNamespace(m *admissionregistrationv1.MutatingWebhookConfiguration) string {
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

// rolledOut reports whether every replica of the Deployment runs the pod
// template of the given CA, and no pod of an older template is still
// shutting down: a terminating pod keeps serving its old certificate until
// it exits, so the CA that signed it must stay trusted until then
// (status.terminatingReplicas, Kubernetes 1.35 and later; older API servers
// do not report it).
func rolledOut(dep *appsv1.Deployment, caID string) bool {
	if dep == nil || caID == "" || dep.Spec.Template.Annotations[CAIDAnnotation] != caID {
		return false
	}
	st := dep.Status
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	terminating := st.TerminatingReplicas != nil && *st.TerminatingReplicas > 0
	return st.ObservedGeneration >= dep.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want && !terminating
}
