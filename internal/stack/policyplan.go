package stack

import (
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

// ResolveMode is the admission mode in force for what the spec asks and
// whether the API server serves admission policies, and why; servable is
// false when the spec asks for Policy and the API server cannot run it.
func ResolveMode(cfg Config, in ModeInputs) (mode gmsav1alpha1.AdmissionMode, why string, servable bool) {
	const served = "admissionregistration.k8s.io/v1 MutatingAdmissionPolicy"
	policyAPI := in.PolicyAPI
	switch {
	case cfg.AdmissionMode == gmsav1alpha1.AdmissionModeWebhook:
		return gmsav1alpha1.AdmissionModeWebhook, "spec.admission.mode is Webhook", true
	case cfg.AdmissionMode == gmsav1alpha1.AdmissionModePolicy && policyAPI:
		return gmsav1alpha1.AdmissionModePolicy, "spec.admission.mode is Policy", true
	case cfg.AdmissionMode == gmsav1alpha1.AdmissionModePolicy:
		return gmsav1alpha1.AdmissionModePolicy, fmt.Sprintf("spec.admission.mode is Policy, but the API server does not serve %s (Kubernetes 1.36 and later do); use mode Webhook or Auto", served), false
	case cfg.RandomHostname:
		return gmsav1alpha1.AdmissionModeWebhook, "spec.admission.mode is Auto, and webhook.randomHostname needs the webhook", true
	case policyAPI && in.CredSpecs > AutoPolicyMaxCredSpecs:
		return gmsav1alpha1.AdmissionModeWebhook, fmt.Sprintf("spec.admission.mode is Auto, and %d GMSACredentialSpecs exist, more than %d: Policy mode would make every pod creation slower than the webhook does (docs/admission-modes.md); Auto picks Policy again at %d or fewer",
			in.CredSpecs, AutoPolicyMaxCredSpecs, AutoPolicyResumeCredSpecs), true
	case policyAPI && in.Current == gmsav1alpha1.AdmissionModeWebhook && in.CredSpecs > AutoPolicyResumeCredSpecs:
		return gmsav1alpha1.AdmissionModeWebhook, fmt.Sprintf("spec.admission.mode is Auto, and %d GMSACredentialSpecs exist: Auto keeps Webhook mode until there are %d or fewer (it leaves Policy mode above %d), so that a count near the limit does not switch modes back and forth",
			in.CredSpecs, AutoPolicyResumeCredSpecs, AutoPolicyMaxCredSpecs), true
	case policyAPI:
		return gmsav1alpha1.AdmissionModePolicy, fmt.Sprintf("spec.admission.mode is Auto, and the API server serves %s", served), true
	default:
		return gmsav1alpha1.AdmissionModeWebhook, fmt.Sprintf("spec.admission.mode is Auto, and the API server does not serve %s (Kubernetes before 1.36)", served), true
	}
}

// ModeInputs are what ResolveMode decides on besides the spec.
type ModeInputs struct {
	// PolicyAPI: the API server serves admissionregistration.k8s.io/v1
	// MutatingAdmissionPolicy.
	PolicyAPI bool
	// CredSpecs is how many GMSACredentialSpecs exist (counted for Auto
	// only).
	CredSpecs int
	// Current is the mode in force (status.admission.mode), "" before the
	// first.
	Current gmsav1alpha1.AdmissionMode
}

// AutoPolicyMaxCredSpecs is the most GMSACredentialSpecs with which Auto
// picks Policy mode. kube-apiserver 1.37 converts each whole parameter
// object into a CEL value for every policy evaluation: with 10 credspecs a
// pod creation cost 1.7-3.4x the baseline (Webhook mode 1.6-2.6x), with
// 3,000 20-100x, pods without gMSA included (make bench-admission). With 32
// it costs gMSA pods at most about 1.3x what Webhook mode does and other
// pods the same; with 100, 2-3.4x (docs/benchmarks.md).
const AutoPolicyMaxCredSpecs = 32

// AutoPolicyResumeCredSpecs: once Auto left Policy mode for the number of
// credspecs, it comes back only at this many or fewer.
const AutoPolicyResumeCredSpecs = 24

// unservable is the plan of a spec that asks for a mode the API server
// cannot run: nothing changes, and the stack is Stalled.
func (p *planner) unservable(why string) (Plan, error) {
	p.plan.Mode, p.plan.ModeReason = "", "" // the mode in force is left as it was
	st, err := p.crd()
	if err != nil {
		return Plan{}, err
	}
	p.plan.Steps = append(p.plan.Steps, st, reconcilekit.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured, Progress: reconcilekit.Blocked,
		Reason: gmsav1alpha1.ReasonPolicyNotServed, Message: why + "; nothing else was changed"})
	if st.Progress != reconcilekit.Done {
		p.plan.Steps = p.plan.Steps[:1]
	}
	return p.plan, nil
}

// policyBase makes the namespace the parameter objects live in.
func (p *planner) policyBase() (reconcilekit.Step, error) {
	if ns := p.snap.Namespace; ns != nil && !ns.DeletionTimestamp.IsZero() {
		p.requeue(NamespaceWait)
		return reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonProgressing,
			Message: fmt.Sprintf("namespace %s is being deleted; the stack is installed again once it is gone", p.cfg.Namespace)}, nil
	}
	p.apply(p.cfg.NamespaceObject(), Action{ForeignOK: true})
	return reconcilekit.Step{}, nil
}

// policies publishes the credspecs in the parameter objects and installs
// the admission policies and their bindings. Names leave the index before
// their content leaves the shards, and content enters the shards before its
// name enters the index; shards of an older layout go once the new ones
// are written.
func (p *planner) policies() (reconcilekit.Step, error) {
	step := reconcilekit.Step{Condition: gmsav1alpha1.ConditionAdmissionConfigured}
	index, shards, err := p.cfg.PolicyParams(p.snap.CredSpecs)
	if err != nil {
		step.Progress, step.Reason, step.Message = reconcilekit.Blocked, gmsav1alpha1.ReasonInvalidSpec, err.Error()
		return step, nil
	}
	if live := p.snap.Index; live != nil {
		kept := map[string]string{}
		for name, v := range live.Data {
			if _, ok := index.Data[name]; ok {
				kept[name] = v
			}
		}
		if len(kept) < len(live.Data) {
			first := index.DeepCopy()
			first.Data = kept
			p.apply(first, Action{Note: "credspecs were deleted: their names leave the index first"})
		}
	}
	wanted := map[string]bool{}
	for _, s := range shards {
		wanted[s.Name] = true
		p.apply(s, Action{})
	}
	p.apply(index, Action{})
	// Shards of an older layout go once every API server has the new ones:
	// TeardownDelay after the newest of them was made.
	var newestShard []client.Object
	for _, s := range p.snap.Shards {
		if wanted[s.Name] {
			newestShard = append(newestShard, s)
		}
	}
	layoutSince := newest(newestShard, len(shards), p.now)
	for _, s := range p.snap.Shards {
		if wanted[s.Name] {
			continue
		}
		if wait := layoutSince.Add(TeardownDelay).Sub(p.now); wait > 0 {
			p.requeue(wait)
			// Meanwhile it keeps only what is still true: a credspec
			// changed or deleted since leaves it.
			kept := map[string]string{}
			for name, content := range s.Data {
				if p.snap.CredSpecs[name].Content == content {
					kept[name] = content
				}
			}
			if len(kept) < len(s.Data) {
				stale := p.cfg.credSpecSet(s.Name, map[string]string{PolicyShardLabel: "true"})
				stale.Data = kept
				p.apply(stale, Action{Note: "an older layout keeps only current contents"})
			}
			continue
		}
		p.plan.Actions = append(p.plan.Actions, Action{Step: p.step(), Object: s, Delete: true, Note: "the credspecs are spread over a new number of parameter objects"})
	}
	m, mb, vs, vbs := p.cfg.PolicyObjects()
	// Bindings that read another namespace's parameters (the stack moved)
	// switch to this one's; the old ones are kept for TeardownDelay, as a
	// retired webhook is.
	retire := ""
	if old := p.boundNamespace(); old != "" && old != p.cfg.Namespace {
		retire = old
		p.retiring = true
	}
	for _, v := range vs {
		p.apply(v, Action{})
	}
	p.apply(m, Action{})
	for _, b := range vbs {
		p.apply(b, Action{Retire: retire})
		retire = ""
	}
	p.apply(mb, Action{})
	step.Reason = gmsav1alpha1.ReasonSucceeded
	step.Message = fmt.Sprintf("MutatingAdmissionPolicy %s and ValidatingAdmissionPolicies %s and %s fill in and check pods that mention gMSA, in the API server (failurePolicy %s); "+
		"%d credspecs are published in GmsaCredSpecSets %s and %s* of namespace %s (%d of them)",
		PolicyName, PolicyName, ContentPolicyName, p.cfg.FailurePolicy, len(p.snap.CredSpecs), PolicyIndexName, PolicyShardPrefix, p.cfg.Namespace, len(shards))
	return step, nil
}

// boundNamespace is the namespace whose parameters the live mutating
// binding reads ("" when there is none).
func (p *planner) boundNamespace() string {
	for _, o := range p.snap.Policies {
		if b, ok := o.(*admissionregistrationv1.MutatingAdmissionPolicyBinding); ok && b.Spec.ParamRef != nil {
			return b.Spec.ParamRef.Namespace
		}
	}
	return ""
}

// retireWebhook removes the webhook configurations of a stack switched to
// Policy mode once the policies have been in place for TeardownDelay (every
// API server has loaded them by then), and retires the webhook they called.
func (p *planner) retireWebhook() (reconcilekit.Step, error) {
	if p.snap.Mutating == nil && p.snap.Validating == nil {
		return reconcilekit.Step{}, nil
	}
	since := newest(p.snap.Policies, 6, p.now)
	if wait := since.Add(TeardownDelay).Sub(p.now); wait > 0 {
		p.requeue(wait)
		return reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonSwitchingMode,
			Message: fmt.Sprintf("switching to Policy mode: the admission policies serve since %s; the webhook configurations are removed %s later, once every API server has loaded them",
				since.UTC().Format(time.RFC3339), TeardownDelay)}, nil
	}
	retire := calledNamespace(p.snap.Mutating)
	var configs []client.Object
	if p.snap.Mutating != nil {
		configs = append(configs, p.snap.Mutating)
	}
	if p.snap.Validating != nil {
		configs = append(configs, p.snap.Validating)
	}
	for _, obj := range configs {
		p.plan.Actions = append(p.plan.Actions, Action{Step: p.step(), Object: obj, Delete: true, Retire: retire, Note: "Policy mode: the admission policies serve"})
		retire = "" // recorded once
	}
	p.retiring = true
	p.requeue(TeardownDelay)
	return reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonSwitchingMode,
		Message: fmt.Sprintf("switching to Policy mode: the webhook configurations are removed; the webhook goes %s later", TeardownDelay)}, nil
}

// retirePolicies removes the admission policies, their bindings and the
// parameter objects of a stack switched to Webhook mode, once the webhook
// configurations have been in place for TeardownDelay.
func (p *planner) retirePolicies() (reconcilekit.Step, error) {
	if len(p.snap.Policies) == 0 && p.snap.Index == nil && len(p.snap.Shards) == 0 {
		return reconcilekit.Step{}, nil
	}
	var configs []client.Object
	if p.snap.Mutating != nil {
		configs = append(configs, p.snap.Mutating)
	}
	if p.snap.Validating != nil {
		configs = append(configs, p.snap.Validating)
	}
	since := newest(configs, 2, p.now)
	if wait := since.Add(TeardownDelay).Sub(p.now); wait > 0 {
		p.requeue(wait)
		return reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonSwitchingMode,
			Message: fmt.Sprintf("switching to Webhook mode: the webhook serves since %s; the admission policies are removed %s later, once every API server calls it",
				since.UTC().Format(time.RFC3339), TeardownDelay)}, nil
	}
	// Bindings and policies first. Each API server drops them from its own
	// watch a little later; a binding it still holds whose parameters are
	// gone would refuse gMSA pods. So the parameter objects go
	// TeardownDelay after the policies, a time recorded on the index first.
	var policies []client.Object
	for _, obj := range p.snap.Policies {
		if k := obj.GetObjectKind().GroupVersionKind().Kind; k == "MutatingAdmissionPolicyBinding" || k == "ValidatingAdmissionPolicyBinding" {
			policies = append([]client.Object{obj}, policies...)
		} else {
			policies = append(policies, obj)
		}
	}
	retiredAt := p.now
	if p.snap.Index != nil {
		if t, err := time.Parse(time.RFC3339Nano, p.snap.Index.Annotations[PolicyRetiredAnnotation]); err == nil {
			retiredAt = t
		} else {
			index := p.cfg.credSpecSet(PolicyIndexName, nil)
			index.Data = p.snap.Index.Data
			index.Annotations = map[string]string{PolicyRetiredAnnotation: p.now.UTC().Format(time.RFC3339Nano)}
			p.apply(index, Action{Note: "Webhook mode: the parameter objects go " + TeardownDelay.String() + " after the policies"})
		}
	}
	for _, obj := range policies {
		p.plan.Actions = append(p.plan.Actions, Action{Step: p.step(), Object: obj, Delete: true, Note: "Webhook mode: the webhook serves"})
	}
	if wait := retiredAt.Add(TeardownDelay).Sub(p.now); len(policies) > 0 || wait > 0 {
		p.requeue(max(wait, time.Second))
		return reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonSwitchingMode,
			Message: fmt.Sprintf("switching to Webhook mode: the admission policies are removed; their parameter objects go %s later", TeardownDelay)}, nil
	}
	var params []client.Object
	if p.snap.Index != nil {
		params = append(params, p.snap.Index)
	}
	for _, s := range p.snap.Shards {
		params = append(params, s)
	}
	for _, obj := range params {
		p.plan.Actions = append(p.plan.Actions, Action{Step: p.step(), Object: obj, Delete: true, Note: "Webhook mode: the admission policies are gone"})
	}
	return reconcilekit.Step{}, nil
}

// PolicyRetiredAnnotation on the credspec index records when the admission
// policies were removed (the stack switched to Webhook mode): the parameter
// objects go TeardownDelay later.
const PolicyRetiredAnnotation = "gmsa.io/policies-retired-at"

// newest is the latest creation time of objs, or now when fewer than want
// exist (the missing ones are being created).
func newest(objs []client.Object, want int, now time.Time) time.Time {
	if len(objs) < want {
		return now
	}
	var t metav1.Time
	for _, o := range objs {
		if c := o.GetCreationTimestamp(); t.Before(&c) {
			t = c
		}
	}
	return t.Time
}
