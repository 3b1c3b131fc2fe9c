package stack

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

func TestDeploymentStep(t *testing.T) {
	cfg, err := Resolve(&gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, "img:1")
	if err != nil {
		t.Fatal(err)
	}
	available := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}
	unavailable := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Message: "Deployment does not have minimum availability."}
	deadline := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		Message: `ReplicaSet "gmsa-webhook-7d9" has timed out progressing.`}
	dep := func(gen, observed int64, replicas, updated, avail int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated, AvailableReplicas: avail, Conditions: conds}}
	}
	cases := []struct {
		name          string
		dep           *appsv1.Deployment
		progress      reconcilekit.Progress
		conditionTrue bool
		cont          bool
		reason        string
		message       string
	}{
		{"new, nothing ready", dep(1, 1, 2, 2, 0, unavailable), reconcilekit.Waiting, false, false, gmsav1alpha1.ReasonDeploymentUnavailable, "0 of 2 replicas available: Deployment does not have minimum availability."},
		{"new, never ready past the deadline", dep(1, 1, 2, 2, 0, unavailable, deadline), reconcilekit.Blocked, false, false, gmsav1alpha1.ReasonDeploymentUnavailable, "past its progress deadline"},
		{"all available", dep(2, 2, 2, 2, 2, available), reconcilekit.Done, false, false, gmsav1alpha1.ReasonSucceeded, "2 of 2 webhook replicas available, running img:1"},
		{"rolling out", dep(3, 3, 3, 1, 2, available), reconcilekit.Waiting, true, true, gmsav1alpha1.ReasonProgressing, "rolling out img:1: 1 of 2 replicas updated"},
		{"not yet observed", dep(4, 3, 2, 2, 2, available), reconcilekit.Waiting, true, true, gmsav1alpha1.ReasonProgressing, "rolling out"},
		{"rollout stuck past the deadline", dep(3, 3, 3, 1, 2, available, deadline), reconcilekit.Blocked, true, true, gmsav1alpha1.ReasonDeploymentUnavailable, "has timed out progressing"},
	}
	for _, c := range cases {
		s := cfg.DeploymentStep(c.dep)
		if s.Progress != c.progress || s.ConditionTrue != c.conditionTrue || s.Continue != c.cont || s.Reason != c.reason || !strings.Contains(s.Message, c.message) {
			t.Errorf("%s: got %+v", c.name, s)
		}
	}

	// A stuck rollout makes the stack Stalled, with WebhookAvailable still
	// True (the previous replicas serve).
	st := Status(&gmsav1alpha1.GmsaStack{}, Outcome{Steps: []reconcilekit.Step{cfg.DeploymentStep(cases[5].dep)}}, metav1.Now())
	for typ, want := range map[string]metav1.ConditionStatus{
		gmsav1alpha1.ConditionStalled: metav1.ConditionTrue, gmsav1alpha1.ConditionReady: metav1.ConditionFalse, gmsav1alpha1.ConditionWebhookAvailable: metav1.ConditionTrue,
	} {
		if got := conditionStatus(st.Conditions, typ); got != want {
			t.Errorf("stuck rollout: %s is %q, want %q", typ, got, want)
		}
	}
}

func conditionStatus(cs []metav1.Condition, t string) metav1.ConditionStatus {
	for _, c := range cs {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}
