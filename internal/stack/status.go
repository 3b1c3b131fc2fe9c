package stack

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

// Outcome is what one reconcile of a GmsaStack found and did.
type Outcome struct {
	// Steps in the order they ran; a step that is not Done stops the ones
	// after it, except that the condition of every step is reported.
	Steps []reconcilekit.Step
	// Namespace, Image, ReadyReplicas and NotAfter for the status.
	Namespace     string
	Image         string
	ReadyReplicas int32
	NotAfter      *metav1.Time
	// Mode is the admission mode in force and ModeReason why; an empty
	// Mode leaves the status's as it was.
	Mode       gmsav1alpha1.AdmissionMode
	ModeReason string
}

// Status returns the GmsaStack status after a reconcile. Conditions keep
// their lastTransitionTime unless their status changes. Ready is True only
// when every step is Done; its reason and message are the first step's
// that is not (reconcilekit.Summarize, as for a GmsaAccount). The retired
// webhook record is kept as it is.
func Status(s *gmsav1alpha1.GmsaStack, o Outcome, now metav1.Time) gmsav1alpha1.GmsaStackStatus {
	st := *s.Status.DeepCopy()
	st.Namespace, st.Image, st.ReadyReplicas, st.CertificateNotAfter = o.Namespace, o.Image, o.ReadyReplicas, o.NotAfter
	if o.Mode != "" {
		st.Admission = &gmsav1alpha1.AdmissionStatus{Mode: o.Mode, Reason: o.ModeReason}
	}
	if o.Mode == gmsav1alpha1.AdmissionModePolicy {
		st.Image, st.ReadyReplicas, st.CertificateNotAfter = "", 0, nil
	}
	reconcilekit.Summarize(reconcilekit.Summary{Conditions: &st.Conditions, ObservedGeneration: &st.ObservedGeneration},
		s.Generation, o.Steps, gmsav1alpha1.ReasonSucceeded, "the gMSA admission stack is installed and serving", now)
	return st
}

// TeardownDelay is how long API servers get, after the webhook
// configurations were removed or pointed at another namespace's webhook, to
// stop calling the webhook they called before. Each API server reloads
// webhook configurations from its own watch, so some call the old webhook a
// little longer: it keeps running, with its RBAC, for this long.
const TeardownDelay = 5 * time.Second

// RetirementWait is how much longer the retired webhook must be kept: the
// rest of TeardownDelay since the configurations stopped calling it, or 0
// when there is none or its time is up. It is computed from the persisted
// time on every pass, so that no event (the configurations' own deletion
// requeues the stack at once) and no restart of the operator cuts it short.
func RetirementWait(retired *gmsav1alpha1.RetiredWebhook, now time.Time) time.Duration {
	if retired == nil {
		return 0
	}
	if wait := retired.Since.Add(TeardownDelay).Sub(now); wait > 0 {
		return wait
	}
	return 0
}

// Retiring returns the namespace of a retired webhook that must still be
// kept (with its RBAC), or "".
func Retiring(retired *gmsav1alpha1.RetiredWebhook, now time.Time) string {
	if RetirementWait(retired, now) > 0 {
		return retired.Namespace
	}
	return ""
}
