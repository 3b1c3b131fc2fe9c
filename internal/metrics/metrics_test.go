package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

func ready(status metav1.ConditionStatus, reason string) []metav1.Condition {
	return []metav1.Condition{{Type: gmsav1alpha1.ConditionReady, Status: status, Reason: reason}}
}

// TestSeriesFollowTheObjects checks that each object has exactly one
// readiness series (a new reason replaces the old one), and that deleting
// the object removes its series and nobody else's.
func TestSeriesFollowTheObjects(t *testing.T) {
	SetAccountStatus("a", ready(metav1.ConditionFalse, "CredentialSpecNotFound"))
	SetAccountStatus("a", ready(metav1.ConditionTrue, "Succeeded"))
	SetAccountStatus("b", nil)
	SetStackStatus("default", ready(metav1.ConditionTrue, "Succeeded"), gmsav1alpha1.AdmissionModeWebhook)
	SetStackCertificates("default", map[string]time.Time{"serving": time.Unix(1000, 0), "ca": time.Unix(2000, 0)})
	SetStackCertificates("default", map[string]time.Time{"serving": time.Unix(3000, 0)})

	want := `
# HELP gmsa_account_ready 1 when the GmsaAccount's Ready condition is True, else 0; reason is the Ready condition's reason.
# TYPE gmsa_account_ready gauge
gmsa_account_ready{name="a",reason="Succeeded"} 1
gmsa_account_ready{name="b",reason="Unknown"} 0
# HELP gmsa_stack_admission_mode 1 for the admission mode (Webhook or Policy) the GmsaStack runs; absent while its spec cannot be served or it is not the cluster's active stack.
# TYPE gmsa_stack_admission_mode gauge
gmsa_stack_admission_mode{mode="Webhook",name="default"} 1
# HELP gmsa_stack_certificate_not_after_timestamp_seconds Expiry (notAfter, Unix seconds) of each certificate the GmsaStack keeps: serving, ca, and next-ca or previous-ca around a CA rollover.
# TYPE gmsa_stack_certificate_not_after_timestamp_seconds gauge
gmsa_stack_certificate_not_after_timestamp_seconds{certificate="serving",name="default"} 3000
# HELP gmsa_stack_ready 1 when the GmsaStack's Ready condition is True, else 0; reason is the Ready condition's reason.
# TYPE gmsa_stack_ready gauge
gmsa_stack_ready{name="default",reason="Succeeded"} 1
`
	if err := testutil.CollectAndCompare(collectors(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	DeleteAccount("a")
	DeleteStack("default")
	want = `
# HELP gmsa_account_ready 1 when the GmsaAccount's Ready condition is True, else 0; reason is the Ready condition's reason.
# TYPE gmsa_account_ready gauge
gmsa_account_ready{name="b",reason="Unknown"} 0
`
	if err := testutil.CollectAndCompare(collectors(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
