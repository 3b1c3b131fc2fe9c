package stack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

func TestResolveMode(t *testing.T) {
	for _, tc := range []struct {
		asked          gmsav1alpha1.AdmissionMode
		randomHostname bool
		served         bool
		want           gmsav1alpha1.AdmissionMode
		servable       bool
		why            string
		credSpecs      int
		current        gmsav1alpha1.AdmissionMode
	}{
		{"", false, true, gmsav1alpha1.AdmissionModePolicy, true, "Auto, and the API server serves", 0, ""},
		{"", false, false, gmsav1alpha1.AdmissionModeWebhook, true, "does not serve admissionregistration.k8s.io/v1 MutatingAdmissionPolicy (Kubernetes before 1.36)", 0, ""},
		{"", true, true, gmsav1alpha1.AdmissionModeWebhook, true, "randomHostname needs the webhook", 0, ""},
		{gmsav1alpha1.AdmissionModeWebhook, false, true, gmsav1alpha1.AdmissionModeWebhook, true, "is Webhook", 0, ""},
		{gmsav1alpha1.AdmissionModePolicy, false, true, gmsav1alpha1.AdmissionModePolicy, true, "is Policy", 0, ""},
		{gmsav1alpha1.AdmissionModePolicy, false, false, gmsav1alpha1.AdmissionModePolicy, false, "use mode Webhook or Auto", 0, ""},
		// Auto and the number of credspecs, with hysteresis.
		{"", false, true, gmsav1alpha1.AdmissionModePolicy, true, "Auto, and the API server serves", AutoPolicyMaxCredSpecs, gmsav1alpha1.AdmissionModePolicy},
		{"", false, true, gmsav1alpha1.AdmissionModeWebhook, true, "33 GMSACredentialSpecs exist, more than 32", AutoPolicyMaxCredSpecs + 1, gmsav1alpha1.AdmissionModePolicy},
		{"", false, true, gmsav1alpha1.AdmissionModeWebhook, true, "Auto keeps Webhook mode until there are 24 or fewer", AutoPolicyResumeCredSpecs + 1, gmsav1alpha1.AdmissionModeWebhook},
		{"", false, true, gmsav1alpha1.AdmissionModePolicy, true, "Auto, and the API server serves", AutoPolicyResumeCredSpecs, gmsav1alpha1.AdmissionModeWebhook},
		{"", false, true, gmsav1alpha1.AdmissionModePolicy, true, "Auto, and the API server serves", AutoPolicyResumeCredSpecs + 1, ""},
		{gmsav1alpha1.AdmissionModePolicy, false, true, gmsav1alpha1.AdmissionModePolicy, true, "is Policy", 3000, gmsav1alpha1.AdmissionModePolicy},
	} {
		t.Run(fmt.Sprintf("%s/random=%v/served=%v/credspecs=%d/current=%s", tc.asked, tc.randomHostname, tc.served, tc.credSpecs, tc.current), func(t *testing.T) {
			s := planStack(gmsav1alpha1.GmsaStackSpec{Webhook: &gmsav1alpha1.WebhookSpec{RandomHostname: ptr.To(tc.randomHostname)}})
			if tc.asked != "" {
				s.Spec.Admission = &gmsav1alpha1.AdmissionSpec{Mode: tc.asked}
			}
			cfg, err := Resolve(s, "img")
			if err != nil {
				t.Fatal(err)
			}
			mode, why, servable := ResolveMode(cfg, ModeInputs{PolicyAPI: tc.served, CredSpecs: tc.credSpecs, Current: tc.current})
			if mode != tc.want || servable != tc.servable || !strings.Contains(why, tc.why) {
				t.Errorf("ResolveMode = %s %q %v, want %s (%q) %v", mode, why, servable, tc.want, tc.why, tc.servable)
			}
		})
	}
}

func TestPolicyParamsShardsByHashWithinTheBudget(t *testing.T) {
	cfg, err := Resolve(planStack(gmsav1alpha1.GmsaStackSpec{}), "img")
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]Published{"empty": {}}
	content := `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"contoso.com","Sid":"S-1-5-21-2126449477-2524075714-3094792973"}}` + strings.Repeat(" ", 100)
	for i := range 10000 {
		specs[fmt.Sprintf("svc-%05d", i)] = Published{Content: content}
	}
	index, shards, err := cfg.PolicyParams(specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(index.Data) != len(specs) || index.Data["empty"] != indexNoContent || index.Data["svc-00042"] != indexHasContent {
		t.Errorf("index: %d entries, empty=%q, svc-00042=%q", len(index.Data), index.Data["empty"], index.Data["svc-00042"])
	}
	n := len(shards)
	if n < 2 || n&(n-1) != 0 {
		t.Fatalf("%d shards, want a power of two above 1 for %d contents", n, len(specs))
	}
	seen := 0
	for i, s := range shards {
		if s.Name != ShardName(n, i) || s.Labels[PolicyShardLabel] != "true" || s.Namespace != cfg.Namespace {
			t.Errorf("shard %d: %s/%s labels %v", i, s.Namespace, s.Name, s.Labels)
		}
		size := 0
		for name, c := range s.Data {
			size += len(name) + len(c)
			if ShardOf(name, n) != i {
				t.Errorf("%s is in shard %d, its hash says %d", name, i, ShardOf(name, n))
			}
		}
		if size > ShardBudget {
			t.Errorf("shard %d holds %d bytes, over the budget %d", i, size, ShardBudget)
		}
		seen += len(s.Data)
	}
	if seen != len(specs)-1 {
		t.Errorf("the shards hold %d contents, want %d (every credspec with content, once)", seen, len(specs)-1)
	}
	// Half as many fit in fewer shards; one more does not move the others.
	_, fewer, err := cfg.PolicyParams(map[string]Published{"a": {Content: content}})
	if err != nil || len(fewer) != 1 {
		t.Errorf("one credspec: %d shards, %v", len(fewer), err)
	}
}

func TestPolicyParamsRefusesAnIndexOverItsBudget(t *testing.T) {
	cfg, err := Resolve(planStack(gmsav1alpha1.GmsaStackSpec{}), "img")
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]Published{}
	for i := range 4000 {
		specs[fmt.Sprintf("%0250d", i)] = Published{}
	}
	if _, _, err := cfg.PolicyParams(specs); err == nil || !strings.Contains(err.Error(), "use mode Webhook") {
		t.Errorf("PolicyParams over the index budget = %v, want a refusal that names mode Webhook", err)
	}
}

// policySnapshot is a stack in Policy mode whose objects all exist, the
// policies made at made.
func policySnapshot(t *testing.T, s *gmsav1alpha1.GmsaStack, cfg Config, made time.Time) Snapshot {
	t.Helper()
	snap := Snapshot{CRD: established(t, cfg), PolicyAPI: true, CredSpecs: map[string]Published{"webapp1": {Content: `{"a":1}`}}}
	index, shards, err := cfg.PolicyParams(snap.CredSpecs)
	if err != nil {
		t.Fatal(err)
	}
	snap.Index, snap.Shards = index, shards
	m, mb, vs, vbs := cfg.PolicyObjects()
	for _, o := range []client.Object{m, mb, vs[0], vs[1], vbs[0], vbs[1]} {
		o.SetCreationTimestamp(metav1.NewTime(made))
		o.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(s, gmsav1alpha1.GroupVersion.WithKind("GmsaStack"))})
		snap.Policies = append(snap.Policies, o)
	}
	return snap
}

func TestPlanSwitchToPolicyRemovesTheWebhookOnlyAfterThePoliciesServed(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModePolicy}})
	cfg, err := Resolve(s, "img")
	if err != nil {
		t.Fatal(err)
	}
	m, v := cfg.WebhookConfigurations([]byte("ca"))
	dep := available(cfg, "ca-id")

	// The policies were made 2 s ago: the webhook configurations stay.
	snap := policySnapshot(t, s, cfg, planNow.Add(-2*time.Second))
	snap.Mutating, snap.Validating, snap.WebhookObjects = m, v, []client.Object{dep}
	p, err := PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Actions {
		if a.Delete {
			t.Errorf("deletes %s before the policies served for %s", reconcilekit.Describe(a.Object), TeardownDelay)
		}
	}
	if last := p.Steps[len(p.Steps)-1]; last.Reason != gmsav1alpha1.ReasonSwitchingMode || p.RequeueAfter != 3*time.Second {
		t.Errorf("last step %+v, requeue %v; want SwitchingMode, 3s", last, p.RequeueAfter)
	}

	// 5 s after: the configurations go, and the webhook they called is
	// retired; the Deployment stays.
	p, err = PlanStack(s, cfg, snap, planNow.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(describe(p), "\n")
	if !strings.Contains(got, "retire gmsa-system, apply MutatingWebhookConfiguration gmsa-webhook") && !strings.Contains(got, "delete MutatingWebhookConfiguration gmsa-webhook") {
		t.Errorf("the mutating configuration is not removed:\n%s", got)
	}
	if strings.Contains(got, "Deployment") {
		t.Errorf("the Deployment goes in the same pass as the configurations:\n%s", got)
	}

	// The configurations are gone and the webhook was retired 1 s ago: it
	// stays for the rest of the teardown delay, then goes.
	snap.Mutating, snap.Validating = nil, nil
	s.Status.RetiredWebhook = &gmsav1alpha1.RetiredWebhook{Namespace: cfg.Namespace, Since: metav1.NewMicroTime(planNow.Add(3 * time.Second))}
	p, err = PlanStack(s, cfg, snap, planNow.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(describe(p), "\n"), "delete Deployment") || p.Steps[len(p.Steps)-1].Reason != gmsav1alpha1.ReasonSwitchingMode {
		t.Errorf("the retired webhook goes before its teardown delay: %v %v", describe(p), p.Steps)
	}
	p, err = PlanStack(s, cfg, snap, planNow.Add(9*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(describe(p), "\n"), "delete Deployment gmsa-system/gmsa-webhook") {
		t.Errorf("the retired webhook stays after its teardown delay: %v", describe(p))
	}
	if p.Mode != gmsav1alpha1.AdmissionModePolicy {
		t.Errorf("mode %s", p.Mode)
	}
}

func TestPlanSwitchToWebhookRemovesPoliciesThenTheirParameters(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModeWebhook}})
	cfg, err := Resolve(s, "img")
	if err != nil {
		t.Fatal(err)
	}
	snap := policySnapshot(t, s, cfg, planNow.Add(-time.Hour))
	snap.CredSpecs = nil
	m, v := cfg.WebhookConfigurations([]byte("ca"))
	m.SetCreationTimestamp(metav1.NewTime(planNow.Add(-2 * time.Second)))
	v.SetCreationTimestamp(metav1.NewTime(planNow.Add(-2 * time.Second)))
	snap.Mutating, snap.Validating = m, v
	policiesStay := func(p Plan) {
		t.Helper()
		for _, a := range p.Actions {
			if a.Delete {
				t.Errorf("deletes %s too early", reconcilekit.Describe(a.Object))
			}
		}
	}
	// The webhook serves for 2 s only: the policies stay. (The plan stops
	// earlier here, at the certificates: what matters is that nothing of
	// Policy mode is deleted.)
	p, err := planSwitchStep(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	policiesStay(p)
	// 5 s after: bindings first, then policies; the parameters stay, marked.
	p, err = planSwitchStep(s, cfg, snap, planNow.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := describe(p)
	want := []string{
		"apply GmsaCredSpecSet gmsa-system/gmsa-credspec-index",
		"delete ValidatingAdmissionPolicyBinding gmsa-content.windows.k8s.io",
		"delete ValidatingAdmissionPolicyBinding gmsa.windows.k8s.io",
		"delete MutatingAdmissionPolicyBinding gmsa.windows.k8s.io",
		"delete MutatingAdmissionPolicy gmsa.windows.k8s.io",
		"delete ValidatingAdmissionPolicy gmsa.windows.k8s.io",
		"delete ValidatingAdmissionPolicy gmsa-content.windows.k8s.io",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.Actions[0].Object.GetAnnotations()[PolicyRetiredAnnotation] == "" {
		t.Error("the index does not record when the policies were removed")
	}
	// The policies are gone, marked 2 s ago: the parameters wait; 5 s after
	// the mark they go.
	snap.Policies = nil
	snap.Index.Annotations = map[string]string{PolicyRetiredAnnotation: planNow.Add(3 * time.Second).Format(time.RFC3339Nano)}
	p, err = planSwitchStep(s, cfg, snap, planNow.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	policiesStay(p)
	p, err = planSwitchStep(s, cfg, snap, planNow.Add(8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(p); len(got) != 2 || got[0] != "delete GmsaCredSpecSet gmsa-system/gmsa-credspec-index" {
		t.Errorf("actions %v, want the index and the shard deleted", got)
	}
}

// planSwitchStep runs only the step that retires Policy mode objects.
func planSwitchStep(s *gmsav1alpha1.GmsaStack, cfg Config, snap Snapshot, now time.Time) (Plan, error) {
	p := &planner{s: s, cfg: cfg, snap: snap, now: now}
	st, err := p.retirePolicies()
	p.plan.Steps = append(p.plan.Steps, st)
	return p.plan, err
}

func TestPlanPolicyNotServedChangesNothing(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModePolicy}})
	cfg, err := Resolve(s, "img")
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanStack(s, cfg, Snapshot{CRD: established(t, cfg)}, planNow)
	if err != nil {
		t.Fatal(err)
	}
	last := p.Steps[len(p.Steps)-1]
	if last.Progress != reconcilekit.Blocked || last.Reason != gmsav1alpha1.ReasonPolicyNotServed || p.Mode != "" {
		t.Errorf("last step %+v, mode %q", last, p.Mode)
	}
	for _, a := range p.Actions {
		if a.Object.GetObjectKind().GroupVersionKind().Kind != "CustomResourceDefinition" {
			t.Errorf("writes %s", reconcilekit.Describe(a.Object))
		}
	}
}

func TestPolicyObjectsKeepTheWebhookExclusions(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{Webhook: &gmsav1alpha1.WebhookSpec{
		FailurePolicy:     ptr.To(admissionregistrationv1.Ignore),
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"legacy": "true"}},
	}})
	cfg, err := Resolve(s, "img")
	if err != nil {
		t.Fatal(err)
	}
	m, mb, vs, vbs := cfg.PolicyObjects()
	wm, _ := cfg.WebhookConfigurations(nil)
	want := fmt.Sprint(wm.Webhooks[0].NamespaceSelector)
	for _, sel := range []*metav1.LabelSelector{mb.Spec.MatchResources.NamespaceSelector, vbs[0].Spec.MatchResources.NamespaceSelector, vbs[1].Spec.MatchResources.NamespaceSelector} {
		if fmt.Sprint(sel) != want {
			t.Errorf("binding namespaceSelector %v, want the webhook's %s", sel, want)
		}
	}
	for _, fp := range []*admissionregistrationv1.FailurePolicyType{m.Spec.FailurePolicy, vs[0].Spec.FailurePolicy, vs[1].Spec.FailurePolicy} {
		if *fp != admissionregistrationv1.Ignore {
			t.Errorf("failurePolicy %s, want the spec's Ignore", *fp)
		}
	}
	if m.Spec.MatchConditions[0].Expression != MentionsGMSA {
		t.Error("the mutating policy does not skip pods that mention no gMSA")
	}
}

func TestPlanPolicyKeepsOldParametersForTheTeardownDelay(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModePolicy}})
	cfg, err := Resolve(s, "img")
	if err != nil {
		t.Fatal(err)
	}
	snap := policySnapshot(t, s, cfg, planNow.Add(-time.Hour))

	// A shard of an older layout: kept while the new layout is younger
	// than the teardown delay.
	old := cfg.credSpecSet(ShardName(2, 1), map[string]string{PolicyShardLabel: "true"})
	old.Data = map[string]string{"webapp1": `{"a":1}`, "gone": `{"b":1}`}
	snap.Shards[0].SetCreationTimestamp(metav1.NewTime(planNow.Add(-2 * time.Second)))
	snap.Shards = append(snap.Shards, old)
	deletes := func(p Plan) []string {
		var out []string
		for _, a := range p.Actions {
			if a.Delete {
				out = append(out, reconcilekit.Describe(a.Object))
			}
		}
		return out
	}
	p, err := PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if d := deletes(p); len(d) != 0 || p.RequeueAfter != 3*time.Second {
		t.Errorf("deletes %v, requeue %v; want none and 3s", d, p.RequeueAfter)
	}
	var kept *gmsav1alpha1.GmsaCredSpecSet
	for _, a := range p.Actions {
		if a.Object.GetName() == old.Name && !a.Delete {
			kept = a.Object.(*gmsav1alpha1.GmsaCredSpecSet)
		}
	}
	if kept == nil || len(kept.Data) != 1 || kept.Data["webapp1"] != `{"a":1}` {
		t.Errorf("the older shard while kept: %+v, want only the still current webapp1", kept)
	}
	p, err = PlanStack(s, cfg, snap, planNow.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if d := deletes(p); len(d) != 1 || d[0] != "GmsaCredSpecSet gmsa-system/gmsa-credspecs-2-1" {
		t.Errorf("deletes %v, want the old shard", d)
	}

	// The stack moved: the bindings switch namespace, the old one is
	// retired first, and its parameters stay for the teardown delay.
	snap.Shards = snap.Shards[:1]
	moved := planStack(gmsav1alpha1.GmsaStackSpec{Namespace: "gmsa-new", Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModePolicy}})
	moved.UID = s.UID
	mcfg, err := Resolve(moved, "img")
	if err != nil {
		t.Fatal(err)
	}
	snap.Stale = []client.Object{snap.Index, snap.Shards[0]}
	snap.Index, snap.Shards = nil, nil
	p, err = PlanStack(moved, mcfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(describe(p), "\n")
	if !strings.Contains(got, "retire gmsa-system, apply ValidatingAdmissionPolicyBinding") {
		t.Errorf("the old namespace's parameters are not retired before the bindings switch:\n%s", got)
	}
	if d := deletes(p); len(d) != 0 {
		t.Errorf("deletes %v in the pass that switches the bindings", d)
	}
}
