package reconcilekit

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSummarize(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	type want struct {
		ready, reconciling, stalled metav1.ConditionStatus // "" = absent
		reason                      string
		observed                    int64
	}
	for _, tc := range []struct {
		name  string
		steps []Step
		want  want
	}{
		{"no steps: Ready", nil, want{ready: "True", reason: "Succeeded", observed: 3}},
		{"every step done", []Step{{Condition: "A", Reason: "Succeeded"}, {Condition: "B", Reason: "Succeeded"}},
			want{ready: "True", reason: "Succeeded", observed: 3}},
		{"waiting keeps Reconciling True and observes the generation",
			[]Step{{Condition: "A"}, {Progress: Waiting, Reason: "CredentialSpecNotFound", Message: "waiting"}},
			want{ready: "False", reconciling: "True", reason: "CredentialSpecNotFound", observed: 3}},
		{"blocked is Stalled", []Step{{Progress: Blocked, Reason: "RBACConflict"}},
			want{ready: "False", stalled: "True", reason: "RBACConflict", observed: 3}},
		{"failed retries and does not observe the generation", []Step{{Progress: Failed, Reason: "ReconcileError"}},
			want{ready: "False", reconciling: "True", reason: "ReconcileError", observed: 1}},
		{"the first step that is not done decides", []Step{{Progress: Waiting, Reason: "DeploymentUnavailable"}, {Progress: Blocked, Reason: "ObjectConflict"}},
			want{ready: "False", reconciling: "True", reason: "DeploymentUnavailable", observed: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Start from the opposite state so that stale conditions must go.
			conds := []metav1.Condition{
				{Type: ConditionReconciling, Status: "True", Reason: "Old"},
				{Type: ConditionStalled, Status: "True", Reason: "Old"},
			}
			observed := int64(1)
			Summarize(Summary{Conditions: &conds, ObservedGeneration: &observed}, 3, tc.steps, "Succeeded", "all good", now)
			check := func(typ string, want metav1.ConditionStatus) {
				c := meta.FindStatusCondition(conds, typ)
				switch {
				case want == "" && c != nil:
					t.Errorf("%s: want absent, got %s/%s", typ, c.Status, c.Reason)
				case want != "" && c == nil:
					t.Errorf("%s: want %s, absent", typ, want)
				case want != "" && c.Status != want:
					t.Errorf("%s: want %s, got %s", typ, want, c.Status)
				}
			}
			check(ConditionReady, tc.want.ready)
			check(ConditionReconciling, tc.want.reconciling)
			check(ConditionStalled, tc.want.stalled)
			if r := meta.FindStatusCondition(conds, ConditionReady).Reason; r != tc.want.reason {
				t.Errorf("Ready reason %q, want %q", r, tc.want.reason)
			}
			if observed != tc.want.observed {
				t.Errorf("observedGeneration %d, want %d", observed, tc.want.observed)
			}
		})
	}
}

func TestSummarizeStepConditions(t *testing.T) {
	var conds []metav1.Condition
	var observed int64
	Summarize(Summary{Conditions: &conds, ObservedGeneration: &observed}, 1, []Step{
		{Condition: "WebhookAvailable", Progress: Waiting, ConditionTrue: true, Reason: "RollingOut", Continue: true},
		{Condition: "AdmissionConfigured", Progress: Waiting, Reason: "WaitingForWebhook"},
	}, "Succeeded", "", metav1.Now())
	if c := meta.FindStatusCondition(conds, "WebhookAvailable"); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("ConditionTrue step: %+v", c)
	}
	if c := meta.FindStatusCondition(conds, "AdmissionConfigured"); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("waiting step: %+v", c)
	}
}

func TestOldest(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Second))
	obj := func(name string, ts metav1.Time) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, CreationTimestamp: ts}
	}
	for _, tc := range []struct {
		name  string
		items []metav1.ObjectMeta
		want  int
	}{
		{"none", nil, -1},
		{"one", []metav1.ObjectMeta{obj("a", t0)}, 0},
		{"older wins over a smaller name", []metav1.ObjectMeta{obj("a", t1), obj("z", t0)}, 1},
		{"same second: the smaller name wins", []metav1.ObjectMeta{obj("b", t0), obj("a", t0)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Oldest(tc.items); got != tc.want {
				t.Errorf("Oldest = %d, want %d", got, tc.want)
			}
		})
	}
}
