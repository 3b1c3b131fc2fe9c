package stack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

var planNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func planStack(spec gmsav1alpha1.GmsaStackSpec) *gmsav1alpha1.GmsaStack {
	return &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default", UID: "stack-uid", Generation: 1}, Spec: spec}
}

// established is the operator's CRD, Established.
func established(t *testing.T, cfg Config) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd, err := cfg.CRD()
	if err != nil {
		t.Fatal(err)
	}
	crd.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}
	return crd
}

// available is the webhook Deployment, rolled out and Available.
func available(cfg Config, caID string) *appsv1.Deployment {
	d := cfg.Deployment(caID)
	d.Generation = 1
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: cfg.Replicas, UpdatedReplicas: cfg.Replicas, ReadyReplicas: cfg.Replicas, AvailableReplicas: cfg.Replicas,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}
	return d
}

// describe lists the plan's writes as "verb Kind name" for comparison.
func describe(p Plan) []string {
	var out []string
	for _, a := range p.Actions {
		verb := "apply"
		switch {
		case a.Delete:
			verb = "delete"
		case a.Retire != "":
			verb = "retire " + a.Retire + ", apply"
		}
		out = append(out, fmt.Sprintf("%s %s", verb, reconcilekit.Describe(a.Object)))
	}
	return out
}

func kinds(p Plan) string {
	var out []string
	for _, a := range p.Actions {
		out = append(out, reconcilekit.Ref(a.Object).Kind)
	}
	return strings.Join(out, ",")
}

func stepSummary(p Plan) string {
	var out []string
	for _, s := range p.Steps {
		name := s.Condition
		if name == "" {
			name = "-"
		}
		out = append(out, name+"="+s.Progress.String())
	}
	return strings.Join(out, " ")
}

// A fresh install goes step by step, each pass as far as what it read lets
// it, and never registers the webhook before the Deployment is Available.
// routed are endpoints that kube-proxy has had time to route.
var routed = Endpoints{Ready: 2, ChangedAt: planNow.Add(-time.Minute)}

func TestPlanInstallsStepByStep(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{})
	cfg, err := Resolve(s, "img:1")
	if err != nil {
		t.Fatal(err)
	}

	p, err := PlanStack(s, cfg, Snapshot{}, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(p); got != "CustomResourceDefinition" {
		t.Errorf("nothing there: writes %s, want only the CRD", got)
	}
	if got := stepSummary(p); got != "CRDEstablished=Waiting" {
		t.Errorf("steps %s", got)
	}
	if p.RequeueAfter != CRDWait {
		t.Errorf("requeue %v, want %v", p.RequeueAfter, CRDWait)
	}

	snap := Snapshot{CRD: established(t, cfg)}
	p, err = PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(p), "CustomResourceDefinition,Namespace,ServiceAccount,ClusterRole,ClusterRoleBinding,Service,PodDisruptionBudget,Secret,Secret,Deployment"; got != want {
		t.Errorf("CRD established: writes %s, want %s", got, want)
	}
	if got := stepSummary(p); got != "CRDEstablished=Done -=Done CertificateReady=Done WebhookAvailable=Waiting AdmissionConfigured=Waiting" {
		t.Errorf("steps %s", got)
	}
	for _, a := range p.Actions[1:] {
		if ref := metav1.GetControllerOf(a.Object); ref == nil || ref.UID != s.UID {
			t.Errorf("%s is not owned by the stack", reconcilekit.Describe(a.Object))
		}
	}
	if metav1.GetControllerOf(p.Actions[0].Object) != nil {
		t.Error("the CRD must never be owned by the stack: deleting the stack would delete every credspec")
	}

	// The pods run: the configurations are registered with the CA bundle.
	ca := p.Actions[7].Object.(*corev1.Secret)
	tls := p.Actions[8].Object.(*corev1.Secret)
	snap.CASecret, snap.TLSSecret = ca, tls
	snap.Deployment = available(cfg, CAID(ca.Data[CACertKey]))
	p, err = PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	// Available, but no EndpointSlice lists a ready endpoint yet: nothing
	// would route the API server's call, so nothing is registered.
	if got := stepSummary(p); got != "CRDEstablished=Done -=Done CertificateReady=Done WebhookAvailable=Waiting AdmissionConfigured=Waiting" {
		t.Errorf("available without endpoints: steps %s", got)
	}
	if got := p.Steps[3].Reason; got != gmsav1alpha1.ReasonWaitingForEndpoints {
		t.Errorf("reason %s, want %s", got, gmsav1alpha1.ReasonWaitingForEndpoints)
	}
	if strings.Contains(kinds(p), "WebhookConfiguration") {
		t.Errorf("registered before any endpoint is ready: %s", kinds(p))
	}
	// Ready endpoints published 500 ms ago: kube-proxy gets the rest of
	// RouteSettle, and the stack looks again exactly then.
	snap.Endpoints = Endpoints{Ready: 2, ChangedAt: planNow.Add(-500 * time.Millisecond)}
	p, err = PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Steps[3]; got.Progress != reconcilekit.Waiting || got.Reason != gmsav1alpha1.ReasonWaitingForEndpoints || strings.Contains(kinds(p), "WebhookConfiguration") {
		t.Errorf("endpoints 500ms old: step %+v, writes %s", got, kinds(p))
	}
	if want := RouteSettle - 500*time.Millisecond; p.RequeueAfter != want {
		t.Errorf("requeue %v, want %v", p.RequeueAfter, want)
	}
	snap.Endpoints.ChangedAt = planNow.Add(-RouteSettle)
	p, err = PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := stepSummary(p); got != "CRDEstablished=Done -=Done CertificateReady=Done WebhookAvailable=Done AdmissionConfigured=Done -=Done" {
		t.Errorf("steps %s", got)
	}
	last := p.Actions[len(p.Actions)-2:]
	m, ok := last[0].Object.(*admissionregistrationv1.MutatingWebhookConfiguration)
	if !ok || last[0].Retire != "" {
		t.Fatalf("the last writes are %v, want the webhook configurations without a retirement", describe(p))
	}
	if string(m.Webhooks[0].ClientConfig.CABundle) != string(ca.Data[CACertKey]) {
		t.Error("the configurations do not carry the CA bundle")
	}
	if p.ReadyReplicas != cfg.Replicas || p.NotAfter == nil {
		t.Errorf("ReadyReplicas %d, NotAfter %v", p.ReadyReplicas, p.NotAfter)
	}
}

// The CRD policies: Manage leaves another installer's CRD alone, Adopt takes
// it over explicitly, External waits for it and never writes it.
func TestPlanCRDPolicies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy gmsav1alpha1.CRDPolicy
		live   func(*apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition
		writes bool
		adopt  bool
		want   string
	}{
		{"Manage, someone else's, Established: left alone", gmsav1alpha1.CRDPolicyManage, foreignCRD(true), false, false, "CRDEstablished=Done"},
		{"Manage, someone else's, not Established: stalled", gmsav1alpha1.CRDPolicyManage, foreignCRD(false), false, false, "CRDEstablished=Blocked"},
		{"Adopt, someone else's: taken over", gmsav1alpha1.CRDPolicyAdopt, foreignCRD(true), true, true, "CRDEstablished=Done"},
		{"External, absent: waits, never writes", gmsav1alpha1.CRDPolicyExternal, func(*apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition { return nil }, false, false, "CRDEstablished=Waiting"},
		{"a newer operator's revision: never downgraded", gmsav1alpha1.CRDPolicyManage, func(c *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
			c.Annotations[credspeccrd.RevisionAnnotation] = "99"
			return c
		}, false, false, "CRDEstablished=Done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := planStack(gmsav1alpha1.GmsaStackSpec{CredentialSpecCRD: &gmsav1alpha1.CredentialSpecCRDSpec{Policy: tc.policy}})
			cfg, err := Resolve(s, "img:1")
			if err != nil {
				t.Fatal(err)
			}
			p, err := PlanStack(s, cfg, Snapshot{CRD: tc.live(established(t, cfg))}, planNow)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(stepSummary(p))[0]; got != tc.want {
				t.Errorf("first step %s, want %s", got, tc.want)
			}
			wrote := len(p.Actions) > 0 && reconcilekit.Ref(p.Actions[0].Object).Kind == "CustomResourceDefinition"
			if wrote != tc.writes {
				t.Errorf("writes the CRD: %v, want %v (%v)", wrote, tc.writes, describe(p))
			}
			if wrote && p.Actions[0].Adopt != tc.adopt {
				t.Errorf("adopt %v, want %v", p.Actions[0].Adopt, tc.adopt)
			}
		})
	}
}

func foreignCRD(isEstablished bool) func(*apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
	return func(c *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
		c.Labels = map[string]string{gmsav1alpha1.LabelManagedBy: "Helm"}
		if !isEstablished {
			c.Status.Conditions = nil
		}
		return c
	}
}

// A move: the configurations still call the old namespace. The new webhook
// is built first; once it is Available the configurations switch (the old
// webhook retired first), and what was left in the old namespace goes only
// after the teardown delay, measured from the persisted retirement.
func TestPlanMoveRetiresThenPrunesAfterTheDelay(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{Namespace: "new"})
	cfg, err := Resolve(s, "img:1")
	if err != nil {
		t.Fatal(err)
	}
	oldCfg := cfg
	oldCfg.Namespace = "old"
	m, v := oldCfg.WebhookConfigurations([]byte("bundle"))
	snap := Snapshot{CRD: established(t, cfg), Mutating: m, Validating: v}

	// The new webhook is not up yet: the configurations are left calling
	// the old one, and the old webhook keeps its RBAC.
	p, err := PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Actions {
		if _, isConfig := a.Object.(*admissionregistrationv1.MutatingWebhookConfiguration); isConfig {
			t.Fatalf("switched the configurations before the new webhook is Available: %v", describe(p))
		}
		if crb, ok := a.Object.(*rbacv1.ClusterRoleBinding); ok && len(crb.Subjects) != 2 {
			t.Errorf("the old webhook lost its RBAC before the switch: %v", crb.Subjects)
		}
	}

	// Available: switch, retiring the old webhook first.
	ca, tls := p.Actions[7].Object.(*corev1.Secret), p.Actions[8].Object.(*corev1.Secret)
	snap.CASecret, snap.TLSSecret = ca, tls
	snap.Deployment = available(cfg, CAID(ca.Data[CACertKey]))
	stale := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: WebhookName, Namespace: "old"}}
	snap.Stale = []client.Object{stale}
	snap.Endpoints = routed
	p, err = PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	retired := false
	for _, a := range p.Actions {
		if a.Retire == "old" {
			retired = true
		}
		if a.Delete {
			t.Errorf("pruned in the same pass as the switch: %v", describe(p))
		}
	}
	if !retired {
		t.Fatalf("the switch does not retire the old webhook: %v", describe(p))
	}

	// The operator recorded the retirement; until the delay is over, the
	// old webhook stays (and keeps its RBAC), and the stack looks again when
	// it is.
	m2, v2 := cfg.WebhookConfigurations(ca.Data[CACertKey])
	snap.Mutating, snap.Validating = m2, v2
	s.Status.RetiredWebhook = &gmsav1alpha1.RetiredWebhook{Namespace: "old", Since: metav1.NewMicroTime(planNow.Add(-2 * time.Second))}
	p, err = PlanStack(s, cfg, snap, planNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Actions {
		if a.Delete {
			t.Errorf("pruned 2 s after the switch: %v", describe(p))
		}
		if crb, ok := a.Object.(*rbacv1.ClusterRoleBinding); ok && len(crb.Subjects) != 2 {
			t.Errorf("the retired webhook lost its RBAC during the delay: %v", crb.Subjects)
		}
	}
	if p.RequeueAfter != TeardownDelay-2*time.Second {
		t.Errorf("requeue %v, want the rest of the delay %v", p.RequeueAfter, TeardownDelay-2*time.Second)
	}

	// Over: the old objects go, and the binding names only the new webhook.
	p, err = PlanStack(s, cfg, snap, planNow.Add(TeardownDelay))
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	for _, a := range p.Actions {
		if a.Delete && a.Object == client.Object(stale) {
			deleted = true
		}
		if crb, ok := a.Object.(*rbacv1.ClusterRoleBinding); ok && len(crb.Subjects) != 1 {
			t.Errorf("after the delay the binding still names %v", crb.Subjects)
		}
	}
	if !deleted {
		t.Errorf("the old Deployment is not pruned after the delay: %v", describe(p))
	}
}

// Blocked steps: a namespace being deleted waits; a certificate source
// switch of a running stack is refused; a missing cert-manager issuer
// waits; cert-manager absent is stalled.
func TestPlanWaitsAndRefusals(t *testing.T) {
	cm := gmsav1alpha1.GmsaStackSpec{Certificates: &gmsav1alpha1.CertificatesSpec{Source: gmsav1alpha1.CertificateSourceCertManager}}
	cmIssuer := gmsav1alpha1.GmsaStackSpec{Certificates: &gmsav1alpha1.CertificatesSpec{Source: gmsav1alpha1.CertificateSourceCertManager,
		CertManager: &gmsav1alpha1.CertManagerSpec{IssuerRef: &gmsav1alpha1.IssuerReference{Name: "corp", Kind: "ClusterIssuer"}}}}
	deleting := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "gmsa-system", DeletionTimestamp: ptr.To(metav1.NewTime(planNow))}}
	for _, tc := range []struct {
		name    string
		spec    gmsav1alpha1.GmsaStackSpec
		snap    func(Snapshot) Snapshot
		last    string
		reason  string
		requeue time.Duration
	}{
		{"namespace being deleted", gmsav1alpha1.GmsaStackSpec{}, func(s Snapshot) Snapshot { s.Namespace = deleting; return s },
			"-=Waiting", gmsav1alpha1.ReasonProgressing, NamespaceWait},
		{"switching SelfSigned to CertManager", cm, func(s Snapshot) Snapshot {
			s.CertManager, s.OtherSource = true, gmsav1alpha1.CertificateSourceSelfSigned
			return s
		}, "CertificateReady=Blocked", gmsav1alpha1.ReasonInvalidSpec, 0},
		{"cert-manager not installed", cm, func(s Snapshot) Snapshot { return s }, "CertificateReady=Blocked", gmsav1alpha1.ReasonCertManagerNotInstalled, 0},
		{"issuer missing", cmIssuer, func(s Snapshot) Snapshot { s.CertManager, s.IssuerMissing = true, true; return s },
			"CertificateReady=Waiting", gmsav1alpha1.ReasonIssuerNotFound, IssuerWait},
		{"cert-manager has not issued yet", cm, func(s Snapshot) Snapshot { s.CertManager = true; return s },
			"CertificateReady=Waiting", gmsav1alpha1.ReasonCertificatePending, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := planStack(tc.spec)
			cfg, err := Resolve(s, "img:1")
			if err != nil {
				t.Fatal(err)
			}
			p, err := PlanStack(s, cfg, tc.snap(Snapshot{CRD: established(t, cfg)}), planNow)
			if err != nil {
				t.Fatal(err)
			}
			steps := strings.Fields(stepSummary(p))
			if got := steps[len(steps)-1]; got != tc.last {
				t.Errorf("last step %s (%s), want %s", got, stepSummary(p), tc.last)
			}
			if got := p.Steps[len(p.Steps)-1].Reason; got != tc.reason {
				t.Errorf("reason %s, want %s", got, tc.reason)
			}
			if p.RequeueAfter != tc.requeue {
				t.Errorf("requeue %v, want %v", p.RequeueAfter, tc.requeue)
			}
			for _, a := range p.Actions {
				if _, ok := a.Object.(*appsv1.Deployment); ok {
					t.Errorf("the Deployment is written although an earlier step stopped: %v", describe(p))
				}
			}
		})
	}
}

// A stack stopped before its certificates still renews the certificate its
// running webhook serves.
func TestPlanRenewsWhenStoppedEarly(t *testing.T) {
	s := planStack(gmsav1alpha1.GmsaStackSpec{})
	cfg, err := Resolve(s, "img:1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanStack(s, cfg, Snapshot{CRD: established(t, cfg)}, planNow)
	if err != nil {
		t.Fatal(err)
	}
	tls := p.Actions[8].Object.(*corev1.Secret)
	deleting := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "gmsa-system", DeletionTimestamp: ptr.To(metav1.NewTime(planNow))}}
	p, err = PlanStack(s, cfg, Snapshot{CRD: established(t, cfg), Namespace: deleting, TLSSecret: tls, CASecret: p.Actions[7].Object.(*corev1.Secret)}, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := stepSummary(p); got != "CRDEstablished=Done -=Waiting CertificateReady=Done" {
		t.Errorf("steps %s", got)
	}
	if got := kinds(p); got != "CustomResourceDefinition,Secret,Secret" {
		t.Errorf("writes %s, want the CRD and the two Secrets", got)
	}
	for _, a := range p.Actions[1:] {
		if !a.Always {
			t.Errorf("%s is not marked Always", reconcilekit.Describe(a.Object))
		}
	}
}

// The previous CA leaves caBundle only once no pod of the old template is
// still shutting down: such a pod serves the old certificate until it exits.
func TestRolledOutWaitsForTerminatingPods(t *testing.T) {
	cfg := Config{Namespace: "gmsa-system", Replicas: 2}
	dep := available(cfg, "ca-2")
	if !rolledOut(dep, "ca-2") {
		t.Fatal("a rolled-out Deployment is not rolled out")
	}
	if rolledOut(dep, "ca-1") {
		t.Error("a Deployment of another CA counts as rolled out")
	}
	dep.Status.TerminatingReplicas = ptr.To[int32](1)
	if rolledOut(dep, "ca-2") {
		t.Error("rolled out while an old pod is still shutting down")
	}
	dep.Status.TerminatingReplicas = ptr.To[int32](0)
	if !rolledOut(dep, "ca-2") {
		t.Error("not rolled out once the old pods are gone")
	}
	dep.Status.UpdatedReplicas = 1
	if rolledOut(dep, "ca-2") {
		t.Error("rolled out with a replica of the old template")
	}
}
