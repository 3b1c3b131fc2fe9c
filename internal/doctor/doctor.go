// Package doctor walks the whole gMSA chain for one pod, pod manifest or
// service account, the way admission will see it, and says for each link
// whether it holds and, when it does not, how to fix it: the GmsaStack, the
// admission path (webhook or policies), the namespace exclusions, each named
// credspec, the GmsaAccount that makes it, the service account's right to
// `use` it, user-given content, the webhook certificate and the pod's
// placement on Windows nodes. For a running pod it prints the Windows-side
// checks to run inside the container.
//
// It only reads (and asks the API server LocalSubjectAccessReviews). It
// never prints credspec content, and never lists service accounts of other
// namespaces than the target's.
package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/account"
	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
)

// Status is the outcome of one check.
type Status string

const (
	// Pass: the link holds.
	Pass Status = "pass"
	// Fail: admission refuses the pod, or the pod would run without its
	// gMSA, until this is fixed.
	Fail Status = "fail"
	// Warn: it works today, but will not for long (a certificate close to
	// expiry) or is not managed by the operator.
	Warn Status = "warn"
	// Skip: the check does not apply (Policy mode has no certificate, a
	// service account has no node placement).
	Skip Status = "skip"
)

// CertificateWarning is how close to its expiry the webhook's serving
// certificate makes the certificate check warn.
const CertificateWarning = 7 * 24 * time.Hour

// Check is one line of the report.
type Check struct {
	// Name is the check, such as `credspec "webapp1" exists`.
	Name string `json:"name"`
	// Status is pass, fail, warn or skip.
	Status Status `json:"status"`
	// Message says what was found.
	Message string `json:"message"`
	// Fix says what to do, for fail and warn.
	Fix string `json:"fix,omitempty"`
}

// Report is the doctor's answer.
type Report struct {
	Target Target  `json:"target"`
	Checks []Check `json:"checks"`
	// Commands are the Windows-side checks to run in a running pod.
	Commands []string `json:"commands,omitempty"`
	// OK is true when no check failed or warned.
	OK bool `json:"ok"`
}

// Doctor runs the checks with a client of the user's identity.
type Doctor struct {
	// Client reads the cluster; its scheme must know the built-in kinds
	// and gmsa.io/v1alpha1.
	Client client.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run examines the target and returns one check per link of the chain, in
// the order admission meets them.
func (d *Doctor) Run(ctx context.Context, t Target) Report {
	r := &run{Doctor: d, ctx: ctx, t: t}
	r.stackChecks()
	r.namespaceCheck()
	if len(t.Uses) == 0 {
		r.add(Check{Name: "gMSA requested", Status: Fail,
			Message: "the pod sets no gmsaCredentialSpecName at pod level or in any container",
			Fix:     "set spec.securityContext.windowsOptions.gmsaCredentialSpecName: <credspec name>"})
	}
	specs := r.credSpecs()
	for _, name := range t.Names() {
		cs := r.credSpecCheck(name, specs)
		r.accountCheck(name, cs)
		r.useCheck(name)
		r.contentChecks(name, cs)
	}
	for _, u := range t.Uses {
		if u.CredSpec == "" {
			r.add(Check{Name: "content of " + u.Holder + " has a name", Status: Fail,
				Message: "gmsaCredentialSpec is set without gmsaCredentialSpecName; admission refuses it",
				Fix:     "set gmsaCredentialSpecName and remove gmsaCredentialSpec (admission fills it in)"})
		}
	}
	r.windowsCheck()
	r.commands(specs)
	rep := Report{Target: t, Checks: r.checks, Commands: r.cmds, OK: true}
	for _, c := range r.checks {
		if c.Status == Fail || c.Status == Warn {
			rep.OK = false
		}
	}
	return rep
}

type run struct {
	*Doctor
	ctx    context.Context
	t      Target
	checks []Check
	cmds   []string

	stack *gmsav1alpha1.GmsaStack
	mode  gmsav1alpha1.AdmissionMode
	cfg   stack.Config
	// meant maps a missing credspec name to the existing one that differs
	// only in case.
	meant map[string]string
}

func (r *run) add(c Check) { r.checks = append(r.checks, c) }

func (r *run) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// troubleshooting is the place in docs/troubleshooting.md that explains a
// condition reason.
func troubleshooting(reason string) string {
	return "docs/troubleshooting.md#" + strings.ToLower(reason)
}

func (r *run) stackChecks() {
	const installed, ready, serving, certificate = "GmsaStack installed", "GmsaStack Ready", "admission path serving", "webhook certificate valid"
	list := &gmsav1alpha1.GmsaStackList{}
	if err := r.Client.List(r.ctx, list); err != nil {
		msg := fmt.Sprintf("cannot list GmsaStacks: %v", err)
		fix := "install gmsa-operator (README, Install), then apply a GmsaStack"
		if apierrors.IsForbidden(err) {
			fix = "ask for `get`/`list` on gmsastacks.gmsa.io"
		}
		r.add(Check{Name: installed, Status: Fail, Message: msg, Fix: fix})
		return
	}
	if len(list.Items) == 0 {
		r.add(Check{Name: installed, Status: Fail, Message: "no GmsaStack in the cluster: nothing admits gMSA pods",
			Fix: "kubectl apply -f config/samples/gmsa_v1alpha1_gmsastack.yaml && kubectl wait gmsastack/default --for=condition=Ready"})
		return
	}
	// The active stack: the oldest one that is not a stalled duplicate.
	slices.SortFunc(list.Items, func(a, b gmsav1alpha1.GmsaStack) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	s := &list.Items[0]
	for i := range list.Items {
		if c := meta.FindStatusCondition(list.Items[i].Status.Conditions, gmsav1alpha1.ConditionStalled); c == nil || c.Reason != gmsav1alpha1.ReasonDuplicateStack {
			s = &list.Items[i]
			break
		}
	}
	r.stack = s
	r.mode = gmsav1alpha1.AdmissionModeWebhook
	if s.Status.Admission != nil && s.Status.Admission.Mode != "" {
		r.mode = s.Status.Admission.Mode
	}
	// The exclusions and names as the operator renders them; the image
	// does not matter here.
	r.cfg, _ = stack.Resolve(s, "doctor")
	if s.Status.Namespace != "" {
		r.cfg.Namespace = s.Status.Namespace
	}
	r.add(Check{Name: installed, Status: Pass, Message: fmt.Sprintf("GmsaStack %q, admission mode %s, namespace %s", s.Name, r.mode, r.cfg.Namespace)})

	if c := meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue && s.Status.ObservedGeneration == s.Generation {
		r.add(Check{Name: ready, Status: Pass, Message: "Ready"})
	} else {
		msg, fix := "no Ready condition yet: the operator has not reconciled it (is the operator running?)", "kubectl -n gmsa-operator-system get pods"
		switch {
		case c != nil && c.Status == metav1.ConditionTrue:
			msg = fmt.Sprintf("the status describes generation %d, the spec is at %d: the operator has not finished with the latest change", s.Status.ObservedGeneration, s.Generation)
			fix = fmt.Sprintf("wait: kubectl wait gmsastack/%s --for=condition=Ready; if it lasts, read the operator's log", s.Name)
		case c != nil:
			msg = fmt.Sprintf("Ready=%s, reason %s: %s", c.Status, c.Reason, c.Message)
			fix = fmt.Sprintf("kubectl describe gmsastack %s; see %s", s.Name, troubleshooting(c.Reason))
		}
		r.add(Check{Name: ready, Status: Fail, Message: msg, Fix: fix})
	}

	if r.mode == gmsav1alpha1.AdmissionModePolicy {
		r.add(r.policyServing(serving))
		r.add(Check{Name: certificate, Status: Skip, Message: "not applicable in Policy mode (no webhook)"})
		return
	}
	r.add(r.webhookServing(serving))
	r.add(r.certificate(certificate))
}

func (r *run) webhookServing(name string) Check {
	ns := r.cfg.Namespace
	slices := &discoveryv1.EndpointSliceList{}
	if err := r.Client.List(r.ctx, slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: stack.WebhookName}); err != nil {
		return Check{Name: name, Status: Fail, Message: fmt.Sprintf("cannot list the webhook's EndpointSlices: %v", err)}
	}
	ready := 0
	for _, sl := range slices.Items {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready += len(ep.Addresses)
			}
		}
	}
	if ready == 0 {
		return Check{Name: name, Status: Fail,
			Message: fmt.Sprintf("Service %s/%s has no ready endpoint: no webhook replica can answer, gMSA pods are refused (failurePolicy Fail) or run without their gMSA (Ignore)", ns, stack.WebhookName),
			Fix:     fmt.Sprintf("kubectl -n %s get pods,endpointslices -l app.kubernetes.io/name=%s; see %s", ns, stack.WebhookName, troubleshooting(gmsav1alpha1.ReasonDeploymentUnavailable))}
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	var missing []string
	if err := r.Client.Get(r.ctx, client.ObjectKey{Name: stack.WebhookName}, mwc); err != nil {
		missing = append(missing, fmt.Sprintf("MutatingWebhookConfiguration %s: %v", stack.WebhookName, errText(err)))
	} else {
		for _, w := range mwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				missing = append(missing, fmt.Sprintf("MutatingWebhookConfiguration %s: webhook %s has no caBundle", stack.WebhookName, w.Name))
			}
		}
	}
	if err := r.Client.Get(r.ctx, client.ObjectKey{Name: stack.WebhookName}, vwc); err != nil {
		missing = append(missing, fmt.Sprintf("ValidatingWebhookConfiguration %s: %v", stack.WebhookName, errText(err)))
	} else {
		for _, w := range vwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				missing = append(missing, fmt.Sprintf("ValidatingWebhookConfiguration %s: webhook %s has no caBundle", stack.WebhookName, w.Name))
			}
		}
	}
	if len(missing) > 0 {
		return Check{Name: name, Status: Fail, Message: strings.Join(missing, "; "),
			Fix: fmt.Sprintf("see %s and %s", troubleshooting(gmsav1alpha1.ReasonWaitingForWebhook), troubleshooting(gmsav1alpha1.ReasonWaitingForCAInjection))}
	}
	return Check{Name: name, Status: Pass, Message: fmt.Sprintf("%d ready webhook endpoint(s); webhook configurations registered with a caBundle", ready)}
}

func (r *run) policyServing(name string) Check {
	objs := []client.Object{
		&admissionregistrationv1.MutatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
		&admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
		&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
		&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
		&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}},
		&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}},
	}
	var missing []string
	for _, o := range objs {
		if err := r.Client.Get(r.ctx, client.ObjectKeyFromObject(o), o); err != nil {
			missing = append(missing, fmt.Sprintf("%s %s: %s", kindOf(o), o.GetName(), errText(err)))
		}
	}
	if len(missing) > 0 {
		return Check{Name: name, Status: Fail, Message: strings.Join(missing, "; "),
			Fix: fmt.Sprintf("the operator recreates them within seconds; if not, kubectl describe gmsastack %s and read the operator's log", r.stack.Name)}
	}
	return Check{Name: name, Status: Pass, Message: "MutatingAdmissionPolicy and ValidatingAdmissionPolicies bound"}
}

func kindOf(o client.Object) string {
	t := fmt.Sprintf("%T", o)
	return t[strings.LastIndex(t, ".")+1:]
}

func errText(err error) string {
	if apierrors.IsNotFound(err) {
		return "missing"
	}
	return err.Error()
}

func (r *run) certificate(name string) Check {
	ns := r.cfg.Namespace
	secret := &corev1.Secret{}
	var notAfter time.Time
	source := fmt.Sprintf("Secret %s/%s", ns, stack.TLSSecretName)
	err := r.Client.Get(r.ctx, client.ObjectKey{Namespace: ns, Name: stack.TLSSecretName}, secret)
	switch {
	case err == nil:
		cert, perr := certs.ParseCertificate(secret.Data[stack.TLSCertKey])
		if perr != nil {
			return Check{Name: name, Status: Fail, Message: fmt.Sprintf("%s: %s: %v", source, stack.TLSCertKey, perr),
				Fix: "see " + troubleshooting(gmsav1alpha1.ReasonCertificatePending)}
		}
		notAfter = cert.NotAfter
	case apierrors.IsForbidden(err) && r.stack.Status.CertificateNotAfter != nil:
		// The GmsaStack's status carries the same date for users who may
		// not read Secrets in the stack's namespace.
		notAfter, source = r.stack.Status.CertificateNotAfter.Time, "GmsaStack status.certificateNotAfter"
	default:
		return Check{Name: name, Status: Fail, Message: fmt.Sprintf("%s: %s", source, errText(err)),
			Fix: "see " + troubleshooting(gmsav1alpha1.ReasonCertificatePending)}
	}
	left := notAfter.Sub(r.now())
	when := fmt.Sprintf("%s expires %s", source, notAfter.UTC().Format(time.RFC3339))
	switch {
	case left <= 0:
		return Check{Name: name, Status: Fail, Message: when + ": expired; the API server cannot call the webhook",
			Fix: "see " + troubleshooting(gmsav1alpha1.ReasonCertificatePending) + "; the operator renews it when running"}
	case left < CertificateWarning:
		return Check{Name: name, Status: Warn, Message: fmt.Sprintf("%s, in %s (less than 7 days)", when, left.Round(time.Minute)),
			Fix: fmt.Sprintf("check that the operator runs and renews it (spec.certificates.renewBefore); kubectl describe gmsastack %s", r.stack.Name)}
	}
	return Check{Name: name, Status: Pass, Message: fmt.Sprintf("%s, in %d days", when, int(left.Hours()/24))}
}

func (r *run) namespaceCheck() {
	const name = "namespace not excluded"
	ns := r.t.Namespace
	check := Check{Name: name}
	if r.stack == nil {
		r.add(Check{Name: name, Status: Skip, Message: "no GmsaStack, no exclusions to compare with"})
		return
	}
	// What the API server uses: the live webhook configuration's or policy
	// binding's namespaceSelector; what the operator would render otherwise.
	var sel *metav1.LabelSelector
	if r.mode == gmsav1alpha1.AdmissionModePolicy {
		b := &admissionregistrationv1.MutatingAdmissionPolicyBinding{}
		if err := r.Client.Get(r.ctx, client.ObjectKey{Name: stack.PolicyName}, b); err == nil && b.Spec.MatchResources != nil {
			sel = b.Spec.MatchResources.NamespaceSelector
		}
	} else {
		m := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := r.Client.Get(r.ctx, client.ObjectKey{Name: stack.WebhookName}, m); err == nil && len(m.Webhooks) > 0 {
			sel = m.Webhooks[0].NamespaceSelector
		}
	}
	if sel == nil {
		var extra []metav1.LabelSelectorRequirement
		if r.cfg.ExtraExclusion != nil {
			extra = append(extra, *r.cfg.ExtraExclusion)
		}
		sel = stack.NamespaceSelector(r.cfg.Namespace, extra...)
	}
	nsObj := &corev1.Namespace{}
	lbls := map[string]string{corev1.LabelMetadataName: ns}
	note := ""
	if err := r.Client.Get(r.ctx, client.ObjectKey{Name: ns}, nsObj); err == nil {
		lbls = nsObj.Labels
	} else if apierrors.IsNotFound(err) {
		note = " (it does not exist yet)"
	} else {
		r.add(Check{Name: name, Status: Fail, Message: fmt.Sprintf("cannot read namespace %s: %v", ns, err)})
		return
	}
	set := labels.Set(lbls)
	for _, req := range sel.MatchExpressions {
		s, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req}})
		if err != nil || s.Matches(set) {
			continue
		}
		check.Status = Fail
		switch req.Key {
		case corev1.LabelMetadataName:
			check.Message = fmt.Sprintf("namespace %s is never checked by gMSA admission (the stack's own namespace and kube-system are excluded): pods there run without their gMSA", ns)
			check.Fix = "run gMSA pods in another namespace"
		case stack.DisabledLabel:
			check.Message = fmt.Sprintf("namespace %s is labelled %s=%s: gMSA admission skips it, pods there run without their gMSA", ns, stack.DisabledLabel, lbls[stack.DisabledLabel])
			check.Fix = fmt.Sprintf("kubectl label namespace %s %s-", ns, stack.DisabledLabel)
		default:
			check.Message = fmt.Sprintf("namespace %s is excluded by the GmsaStack's spec.webhook.namespaceSelector (label %s): gMSA admission skips it", ns, req.Key)
			check.Fix = fmt.Sprintf("change the namespace's label %s, or spec.webhook.namespaceSelector of GmsaStack %s", req.Key, r.stack.Name)
		}
		r.add(check)
		return
	}
	if s, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: sel.MatchLabels}); err == nil && !s.Matches(set) {
		r.add(Check{Name: name, Status: Fail, Message: fmt.Sprintf("namespace %s does not match the admission namespaceSelector", ns),
			Fix: fmt.Sprintf("check spec.webhook.namespaceSelector of GmsaStack %s", r.stack.Name)})
		return
	}
	r.add(Check{Name: name, Status: Pass, Message: fmt.Sprintf("namespace %s%s is checked by gMSA admission", ns, note)})
}

// credSpecs lists the cluster's credspecs by name; nil when they cannot be
// listed (the check of each name then says why).
func (r *run) credSpecs() map[string]*unstructured.Unstructured {
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion(credspeccrd.Group + "/v1")
	list.SetKind(credspeccrd.Kind + "List")
	if err := r.Client.List(r.ctx, list); err != nil {
		return nil
	}
	out := make(map[string]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].GetName()] = &list.Items[i]
	}
	return out
}

func (r *run) credSpecCheck(name string, specs map[string]*unstructured.Unstructured) *unstructured.Unstructured {
	check := Check{Name: fmt.Sprintf("credspec %q exists", name)}
	if specs == nil {
		cs := &unstructured.Unstructured{}
		cs.SetAPIVersion(credspeccrd.Group + "/v1")
		cs.SetKind(credspeccrd.Kind)
		err := r.Client.Get(r.ctx, client.ObjectKey{Name: name}, cs)
		if err != nil && !apierrors.IsNotFound(err) {
			check.Status, check.Message = Fail, fmt.Sprintf("cannot read GMSACredentialSpec %s: %v", name, err)
			r.add(check)
			return nil
		}
		specs = map[string]*unstructured.Unstructured{}
		if err == nil {
			specs[name] = cs
		}
	}
	cs, ok := specs[name]
	if !ok {
		check.Status = Fail
		check.Message = fmt.Sprintf("no GMSACredentialSpec %q: admission refuses the pod with \"cred spec %s does not exist\"", name, name)
		var similar []string
		for other := range specs {
			if strings.EqualFold(other, name) {
				similar = append(similar, other)
			}
		}
		slices.Sort(similar)
		if len(similar) > 0 {
			check.Message += fmt.Sprintf("; did you mean %s (names are case-sensitive)", strings.Join(similar, " or "))
			check.Fix = fmt.Sprintf("set gmsaCredentialSpecName: %s", similar[0])
			if r.meant == nil {
				r.meant = map[string]string{}
			}
			r.meant[name] = similar[0]
		} else {
			check.Fix = fmt.Sprintf("create it with a GmsaAccount (docs/user-guide.md), or correct the name (kubectl get gmsacredentialspecs)")
		}
		r.add(check)
		return nil
	}
	content, err := admission.ContentOf(cs.Object)
	if err != nil || content == "" {
		check.Status = Fail
		check.Message = fmt.Sprintf("GMSACredentialSpec %q has no usable credspec field: admission refuses the pod", name)
		check.Fix = "see " + troubleshooting(gmsav1alpha1.ReasonInvalidCredentialSpec)
		r.add(check)
		return cs
	}
	check.Status, check.Message = Pass, fmt.Sprintf("GMSACredentialSpec %q found", name)
	r.add(check)
	return cs
}

// accountFor finds the GmsaAccount that makes (label gmsa.io/account) or
// grants (credentialSpec.existing) the credspec.
func (r *run) accountFor(name string, cs *unstructured.Unstructured) (*gmsav1alpha1.GmsaAccount, error) {
	if cs != nil {
		if owner := cs.GetLabels()[gmsav1alpha1.LabelAccount]; owner != "" && cs.GetLabels()[gmsav1alpha1.LabelManagedBy] == gmsav1alpha1.ManagedByValue {
			a := &gmsav1alpha1.GmsaAccount{}
			if err := r.Client.Get(r.ctx, client.ObjectKey{Name: owner}, a); err == nil {
				return a, nil
			} else if !apierrors.IsNotFound(err) {
				return nil, err
			}
		}
	}
	list := &gmsav1alpha1.GmsaAccountList{}
	if err := r.Client.List(r.ctx, list); err != nil {
		return nil, err
	}
	var found *gmsav1alpha1.GmsaAccount
	for i := range list.Items {
		a := &list.Items[i]
		if account.CredentialSpecName(a) != name {
			continue
		}
		// Two accounts may want one name: the one whose status says it has
		// it (the older), else the oldest.
		if a.Status.CredentialSpecName == name {
			return a, nil
		}
		if found == nil || a.CreationTimestamp.Before(&found.CreationTimestamp) {
			found = a
		}
	}
	return found, nil
}

func (r *run) accountCheck(name string, cs *unstructured.Unstructured) {
	check := Check{Name: fmt.Sprintf("GmsaAccount for %q Ready", name)}
	a, err := r.accountFor(name, cs)
	switch {
	case err != nil:
		check.Status, check.Message = Fail, fmt.Sprintf("cannot read GmsaAccounts: %v", err)
	case a == nil && cs != nil:
		check.Status = Warn
		check.Message = fmt.Sprintf("no GmsaAccount makes or grants %q: it was made by hand or by another tool, and so was any RBAC granting its use", name)
		check.Fix = "kubectl gmsa migrate > accounts.yaml, review, kubectl apply -f accounts.yaml (docs/user-guide.md, Migration)"
	case a == nil:
		check.Status = Fail
		check.Message = fmt.Sprintf("no GmsaAccount makes %q", name)
		check.Fix = "create a GmsaAccount for it (docs/user-guide.md)"
		if m := r.meant[name]; m != "" {
			check.Fix = fmt.Sprintf("set gmsaCredentialSpecName: %s (see above)", m)
		}
	default:
		c := meta.FindStatusCondition(a.Status.Conditions, gmsav1alpha1.ConditionReady)
		if c != nil && c.Status == metav1.ConditionTrue {
			check.Status, check.Message = Pass, fmt.Sprintf("GmsaAccount %q is Ready", a.Name)
		} else {
			check.Status = Fail
			check.Message = fmt.Sprintf("GmsaAccount %q is not Ready", a.Name)
			check.Fix = fmt.Sprintf("kubectl describe gmsaaccount %s", a.Name)
			if c != nil {
				check.Message += fmt.Sprintf(": reason %s: %s", c.Reason, c.Message)
				check.Fix += "; see " + troubleshooting(c.Reason)
			}
		}
	}
	r.add(check)
}

// UseReview is the question admission asks before it admits a pod of
// service account sa in namespace that names credspec name: a
// LocalSubjectAccessReview in the pod's namespace, for the service account's
// user and groups, verb use on gmsacredentialspecs.windows.k8s.io/name (as
// internal/webhook/cluster's SARAuthorizer and Policy mode's
// authorizer.serviceAccount(ns, sa) ask it).
func UseReview(namespace, sa, name string) *authorizationv1.LocalSubjectAccessReview {
	return &authorizationv1.LocalSubjectAccessReview{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace},
		Spec: authorizationv1.SubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: "use", Group: credspeccrd.Group, Version: "v1",
				Resource: credspeccrd.Resource, Name: name,
			},
			User:   "system:serviceaccount:" + namespace + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace},
		},
	}
}

func (r *run) useCheck(name string) {
	ns, sa := r.t.Namespace, r.t.ServiceAccount
	check := Check{Name: fmt.Sprintf("service account %s/%s may use %q", ns, sa, name)}
	review := UseReview(ns, sa, name)
	if err := r.Client.Create(r.ctx, review); err != nil {
		check.Status, check.Message = Fail, fmt.Sprintf("cannot ask the API server (LocalSubjectAccessReview in %s): %v", ns, err)
		if apierrors.IsForbidden(err) {
			check.Fix = fmt.Sprintf("ask for `create` on localsubjectaccessreviews in namespace %s (the admin role has it)", ns)
		}
		r.add(check)
		return
	}
	if review.Status.Allowed && !review.Status.Denied {
		check.Status, check.Message = Pass, "allowed (LocalSubjectAccessReview, as admission asks)"
		r.add(check)
		return
	}
	check.Status = Fail
	check.Message = fmt.Sprintf("denied; admission refuses the pod: service account %q is not authorized to `use` GMSA cred spec %q", sa, name)
	if m := r.meant[name]; m != "" {
		check.Fix = fmt.Sprintf("set gmsaCredentialSpecName: %s (see above)", m)
	} else if a, err := r.accountFor(name, nil); err == nil && a != nil {
		check.Fix = fmt.Sprintf("add {namespace: %s, name: %s} (or {namespace: %s} for all its service accounts) to spec.serviceAccounts of GmsaAccount %s", ns, sa, ns, a.Name)
	} else {
		check.Fix = fmt.Sprintf("grant it with a GmsaAccount listing {namespace: %s, name: %s} (docs/user-guide.md)", ns, sa)
	}
	r.add(check)
}

func (r *run) contentChecks(name string, cs *unstructured.Unstructured) {
	for _, u := range r.t.Uses {
		if u.CredSpec != name || u.Content == nil {
			continue
		}
		check := Check{Name: fmt.Sprintf("content of %s matches %q", u.Holder, name)}
		if cs == nil {
			check.Status, check.Message = Skip, "no credspec to compare with"
			r.add(check)
			continue
		}
		want, err := admission.ContentOf(cs.Object)
		if err != nil || want == "" {
			check.Status, check.Message = Skip, "the credspec has no usable content to compare with"
			r.add(check)
			continue
		}
		if same, _ := admission.SameJSON(*u.Content, want); same {
			check.Status, check.Message = Pass, "equal as JSON"
		} else if r.t.Running {
			check.Status = Fail
			check.Message = fmt.Sprintf("the pod runs with content that differs from GMSACredentialSpec %q today: the credspec changed after the pod was created", name)
			check.Fix = "recreate the pod to pick up the current credspec"
		} else {
			check.Status = Fail
			check.Message = fmt.Sprintf("gmsaCredentialSpec differs from GMSACredentialSpec %q: admission refuses the pod", name)
			check.Fix = "remove gmsaCredentialSpec from the manifest: admission fills it in from the name"
		}
		r.add(check)
	}
}

// windowsCheck: a gMSA pod on a Linux node starts without any gMSA, so it
// must be pinned to Windows nodes.
func (r *run) windowsCheck() {
	const name = "runs on Windows nodes only"
	spec := r.t.spec
	if spec == nil {
		r.add(Check{Name: name, Status: Skip, Message: "not applicable to a service account"})
		return
	}
	if spec.NodeSelector[corev1.LabelOSStable] == "windows" {
		r.add(Check{Name: name, Status: Pass, Message: "nodeSelector kubernetes.io/os: windows"})
		return
	}
	if requiresWindows(spec.Affinity) {
		r.add(Check{Name: name, Status: Pass, Message: "required node affinity kubernetes.io/os In [windows]"})
		return
	}
	message := "neither nodeSelector nor required node affinity restricts the pod to Windows nodes: on a Linux node it would start without any gMSA"
	if rc := spec.RuntimeClassName; rc != nil && *rc != "" {
		obj := &nodev1.RuntimeClass{}
		err := r.Client.Get(r.ctx, client.ObjectKey{Name: *rc}, obj)
		if err == nil && obj.Scheduling != nil && obj.Scheduling.NodeSelector[corev1.LabelOSStable] == "windows" {
			r.add(Check{Name: name, Status: Pass, Message: fmt.Sprintf("RuntimeClass %s schedules on kubernetes.io/os: windows", *rc)})
			return
		}
		why := "does not schedule on kubernetes.io/os: windows"
		if err != nil {
			why = "could not be read: " + err.Error()
		}
		message = fmt.Sprintf("RuntimeClass %s %s, and %s", *rc, why, message)
	}
	r.add(Check{Name: name, Status: Fail, Message: message,
		Fix: "add spec.nodeSelector: {kubernetes.io/os: windows}"})
}

func requiresWindows(a *corev1.Affinity) bool {
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return false
	}
	// Terms are ORed: every one of them must pin Windows.
	for _, t := range terms {
		pinned := false
		for _, e := range t.MatchExpressions {
			if e.Key == corev1.LabelOSStable && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) > 0 && !slices.ContainsFunc(e.Values, func(v string) bool { return v != "windows" }) {
				pinned = true
			}
		}
		if !pinned {
			return false
		}
	}
	return true
}

// commands are the Windows-side checks of a running pod, one set per
// container that runs under a gMSA, with the domain of its credspec.
func (r *run) commands(specs map[string]*unstructured.Unstructured) {
	if r.t.spec == nil || !r.t.Running {
		return
	}
	podName := ""
	for _, u := range r.t.Uses {
		if u.CredSpec != "" && u.Holder == "pod" {
			podName = u.CredSpec
		}
	}
	for _, c := range r.t.spec.Containers {
		name := podName
		for _, u := range r.t.Uses {
			if u.Holder == "container "+c.Name && u.CredSpec != "" {
				name = u.CredSpec
			}
		}
		if name == "" {
			continue
		}
		domain := "<domain>"
		if cs := specs[name]; cs != nil {
			if d, ok, _ := unstructured.NestedString(cs.Object, "credspec", "DomainJoinConfig", "DnsName"); ok && d != "" {
				domain = d
			}
		}
		exec := fmt.Sprintf("kubectl exec -n %s %s -c %s -- ", r.t.Namespace, r.t.Pod, c.Name)
		r.cmds = append(r.cmds,
			exec+"nltest /sc_verify:"+domain,
			exec+"nltest /parentdomain",
			exec+"klist get krbtgt")
	}
}
