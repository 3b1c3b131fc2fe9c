package account

import (
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// Outcome is what one reconcile of a GmsaAccount found and did.
type Outcome struct {
	// CredentialSpecName is the credspec pods use.
	CredentialSpecName string
	// ClusterRoleName is set once the ClusterRole is in place.
	ClusterRoleName string
	// BoundSubjects are the subjects of the RoleBindings in place.
	BoundSubjects []rbacv1.Subject
	// PendingNamespaces are listed namespaces that do not exist (yet); they
	// are bound as soon as they appear.
	PendingNamespaces []string
	// Problem, when set, is why the account is not Ready.
	Problem *Problem
}

// Problem explains why an account is not Ready.
type Problem struct {
	// Reason is a condition reason from api/v1alpha1.
	Reason string
	// Message says what is wrong in words a person can act on.
	Message string
	// Kind says whether the operator retries, waits, or needs a person.
	Kind ProblemKind
}

// ProblemKind classifies a Problem.
type ProblemKind int

const (
	// Transient problems (API errors) are retried; the generation is not
	// marked observed.
	Transient ProblemKind = iota
	// Waiting problems resolve by themselves when something appears (a
	// referenced credspec).
	Waiting
	// Stalled problems need a person to change something.
	Stalled
)

// Status returns the status to write for the account after a reconcile
// with the given outcome. It is a pure function: conditions keep their
// lastTransitionTime unless their status changes.
func Status(a *gmsav1alpha1.GmsaAccount, o Outcome, now metav1.Time) gmsav1alpha1.GmsaAccountStatus {
	st := *a.Status.DeepCopy()
	st.CredentialSpecName = o.CredentialSpecName
	st.ClusterRoleName = o.ClusterRoleName
	st.BoundSubjects = o.BoundSubjects
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		// lastTransitionTime changes only with the condition's status.
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: a.Generation, LastTransitionTime: now})
	}
	p := o.Problem
	switch {
	case p == nil:
		msg := fmt.Sprintf("GMSACredentialSpec %q may be used by %s", o.CredentialSpecName, describeSubjects(o.BoundSubjects))
		if len(o.PendingNamespaces) > 0 {
			msg += fmt.Sprintf("; namespaces %s do not exist yet and are bound when they are created", strings.Join(o.PendingNamespaces, ", "))
		}
		set(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, gmsav1alpha1.ReasonSucceeded, msg)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionStalled)
		st.ObservedGeneration = a.Generation
	case p.Kind == Stalled:
		set(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		set(gmsav1alpha1.ConditionStalled, metav1.ConditionTrue, p.Reason, p.Message)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionReconciling)
		st.ObservedGeneration = a.Generation
	case p.Kind == Waiting:
		set(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionStalled)
		st.ObservedGeneration = a.Generation
	default: // Transient: retried; this generation is not done yet.
		set(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		set(gmsav1alpha1.ConditionReconciling, metav1.ConditionTrue, p.Reason, p.Message)
		meta.RemoveStatusCondition(&st.Conditions, gmsav1alpha1.ConditionStalled)
	}
	return st
}

func describeSubjects(subjects []rbacv1.Subject) string {
	if len(subjects) == 0 {
		return "no service account yet"
	}
	parts := make([]string, 0, len(subjects))
	for _, s := range subjects {
		if s.Kind == rbacv1.GroupKind {
			parts = append(parts, "every service account of "+strings.TrimPrefix(s.Name, "system:serviceaccounts:"))
		} else {
			parts = append(parts, s.Namespace+"/"+s.Name)
		}
	}
	return strings.Join(parts, ", ")
}
