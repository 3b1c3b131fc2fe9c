package stack

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// Progress is the state of one step of a stack's reconcile.
type Progress int

const (
	// Done: the step is as specified.
	Done Progress = iota
	// Waiting: the step waits for something that happens by itself (a
	// Deployment rolling out, cert-manager issuing); Ready is False and
	// Reconciling True.
	Waiting
	// Blocked: a person must act (a conflict, bad input); Stalled is True.
	Blocked
	// Failed: an API request failed; it is retried.
	Failed
)

// Step is the outcome of one step. Condition is the step's own condition
// type ("" for steps without one).
type Step struct {
	Condition string
	Progress  Progress
	Reason    string
	Message   string
	// ConditionTrue reports the step's condition True even though the step
	// is not Done (a Deployment that is Available while it rolls out).
	ConditionTrue bool
	// Continue lets the following steps run although this one is not Done.
	Continue bool
}

// Outcome is what one reconcile of a GmsaStack found and did.
type Outcome struct {
	// Steps in the order they ran; a step that is not Done stops the ones
	// after it, except that the condition of every step is reported.
	Steps []Step
	// Namespace, Image, ReadyReplicas and NotAfter for the status.
	Namespace     string
	Image         string
	ReadyReplicas int32
	NotAfter      *metav1.Time
}

// Status returns the GmsaStack status after a reconcile. Conditions keep
// their lastTransitionTime unless their status changes. Ready is True only
// when every step is Done; its reason and message are the first step's
// that is not.
func Status(s *gmsav1alpha1.GmsaStack, o Outcome, now metav1.Time) gmsav1alpha1.GmsaStackStatus {
	st := *s.Status.DeepCopy()
	st.Namespace, st.Image, st.ReadyReplicas, st.CertificateNotAfter = o.Namespace, o.Image, o.ReadyReplicas, o.NotAfter
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: s.Generation, LastTransitionTime: now})
	}
	var first *Step
	for i := range o.Steps {
		step := &o.Steps[i]
		if step.Condition != "" {
			status := metav1.ConditionTrue
			if step.Progress != Done && !step.ConditionTrue {
				status = metav1.ConditionFalse
			}
			set(step.Condition, status, step.Reason, step.Message)
		}
		if first == nil && step.Progress != Done {
			first = step
		}
	}
	switch {
	case first == nil:
		set(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, gmsav1alpha1.ReasonSucceeded, "the gMSA admission stack is installed and serving")
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionStalled)
		st.ObservedGeneration = s.Generation
	case first.Progress == Blocked:
		set(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, first.Reason, first.Message)
		set(gmsav1alpha1.ConditionStalled, metav1.ConditionTrue, first.Reason, first.Message)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionReconciling)
		st.ObservedGeneration = s.Generation
	case first.Progress == Waiting:
		set(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, first.Reason, first.Message)
		set(gmsav1alpha1.ConditionReconciling, metav1.ConditionTrue, first.Reason, first.Message)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionStalled)
		st.ObservedGeneration = s.Generation
	default:
		set(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, first.Reason, first.Message)
		set(gmsav1alpha1.ConditionReconciling, metav1.ConditionTrue, first.Reason, first.Message)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionStalled)
	}
	return st
}
