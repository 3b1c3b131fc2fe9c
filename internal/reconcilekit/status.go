// Package reconcilekit is the reconcile plumbing both controllers share: the
// applier (server-side apply with an explicit ownership check), deletion of
// owned objects, the change recorder, the "oldest wins" rule and one
// kstatus-style summary of a reconcile into Ready, Reconciling and Stalled.
// Its status code is pure; the rest talks to the API server through a
// controller-runtime client.
package reconcilekit

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types and the reason of a Ready object, as in api/v1alpha1 (kept
// here as strings so that this package does not depend on the API types).
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Progress is the state of one step of a reconcile.
type Progress int

const (
	// Done: the step is as specified.
	Done Progress = iota
	// Waiting: the step waits for something that happens by itself (a
	// Deployment rolling out, a referenced object appearing). Ready is
	// False, Reconciling True: kstatus reads InProgress, so a GitOps tool
	// waiting for the object keeps waiting.
	Waiting
	// Blocked: a person must act (a conflict, bad input). Stalled is True:
	// kstatus reads Failed.
	Blocked
	// Failed: a request failed; it is retried, and the generation is not
	// marked observed.
	Failed
)

// String names the progress for logs.
func (p Progress) String() string {
	switch p {
	case Done:
		return "Done"
	case Waiting:
		return "Waiting"
	case Blocked:
		return "Blocked"
	case Failed:
		return "Failed"
	}
	return "Unknown"
}

// Step is the outcome of one step of a reconcile. Condition is the step's
// own condition type ("" for a step without one).
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

// Summary is where Summarize writes: an object's conditions and
// observedGeneration.
type Summary struct {
	Conditions         *[]metav1.Condition
	ObservedGeneration *int64
}

// Summarize sets each step's condition, then Ready, Reconciling and Stalled
// from the first step that is not Done, the way kstatus and Flux read them:
//   - every step Done: Ready True with readyMessage; no Reconciling, no
//     Stalled; observedGeneration = generation.
//   - Waiting: Ready False and Reconciling True, both with the step's reason
//     and message; observedGeneration = generation.
//   - Blocked: Ready False and Stalled True; observedGeneration = generation.
//   - Failed: Ready False and Reconciling True; observedGeneration stays, so
//     that the generation is not reported as carried out.
//
// A condition keeps its lastTransitionTime unless its status changes. It is a
// pure function.
func Summarize(s Summary, generation int64, steps []Step, readyReason, readyMessage string, now metav1.Time) {
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(s.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: generation, LastTransitionTime: now})
	}
	var first *Step
	for i := range steps {
		step := &steps[i]
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
	if first == nil {
		set(ConditionReady, metav1.ConditionTrue, readyReason, readyMessage)
		meta.RemoveStatusCondition(s.Conditions, ConditionReconciling)
		meta.RemoveStatusCondition(s.Conditions, ConditionStalled)
		*s.ObservedGeneration = generation
		return
	}
	set(ConditionReady, metav1.ConditionFalse, first.Reason, first.Message)
	switch first.Progress {
	case Blocked:
		set(ConditionStalled, metav1.ConditionTrue, first.Reason, first.Message)
		meta.RemoveStatusCondition(s.Conditions, ConditionReconciling)
		*s.ObservedGeneration = generation
	case Waiting:
		set(ConditionReconciling, metav1.ConditionTrue, first.Reason, first.Message)
		meta.RemoveStatusCondition(s.Conditions, ConditionStalled)
		*s.ObservedGeneration = generation
	default:
		set(ConditionReconciling, metav1.ConditionTrue, first.Reason, first.Message)
		meta.RemoveStatusCondition(s.Conditions, ConditionStalled)
	}
}

// Oldest returns the index of the object created first; creation times that
// are equal (they have a resolution of one second) are ordered by name. It
// is the one "oldest wins" rule: of two objects that claim the same thing,
// the older keeps it. It returns -1 for no objects.
func Oldest[T any, PT interface {
	*T
	metav1.Object
}](items []T) int {
	best := -1
	for i := range items {
		if best < 0 || Older(PT(&items[i]), PT(&items[best])) {
			best = i
		}
	}
	return best
}

// Older reports whether a was created before b (by name when the creation
// times are equal).
func Older(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return strings.Compare(a.GetName(), b.GetName()) < 0
}
