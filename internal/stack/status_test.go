package stack

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

func TestRetirementWait(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	retired := func(ago time.Duration) *gmsav1alpha1.RetiredWebhook {
		return &gmsav1alpha1.RetiredWebhook{Namespace: "old", Since: metav1.NewMicroTime(now.Add(-ago))}
	}
	for _, tc := range []struct {
		name     string
		retired  *gmsav1alpha1.RetiredWebhook
		wait     time.Duration
		retiring string
	}{
		{"nothing retired", nil, 0, ""},
		{"just retired: the whole delay", retired(0), TeardownDelay, "old"},
		{"retired 2s ago: the rest of the delay", retired(2 * time.Second), TeardownDelay - 2*time.Second, "old"},
		{"retired 1ms before the delay is up", retired(TeardownDelay - time.Millisecond), time.Millisecond, "old"},
		{"the delay is up", retired(TeardownDelay), 0, ""},
		{"long ago", retired(time.Hour), 0, ""},
		// A clock that went back must not make the wait longer than the delay
		// allows from the recorded time (it is measured from it).
		{"recorded in the future", retired(-time.Second), TeardownDelay + time.Second, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RetirementWait(tc.retired, now); got != tc.wait {
				t.Errorf("RetirementWait = %v, want %v", got, tc.wait)
			}
			if got := Retiring(tc.retired, now); got != tc.retiring {
				t.Errorf("Retiring = %q, want %q", got, tc.retiring)
			}
		})
	}
}

// A retired webhook keeps its RBAC: the binding names its ServiceAccount
// beside the current one, once, whatever is passed twice.
func TestClusterRoleBindingKeepsRetiredWebhooks(t *testing.T) {
	c := Config{Namespace: "new"}
	crb := c.ClusterRoleBinding("old", "", "new", "old")
	if len(crb.Subjects) != 2 || crb.Subjects[0].Namespace != "new" || crb.Subjects[1].Namespace != "old" {
		t.Fatalf("subjects %+v, want new then old", crb.Subjects)
	}
}
