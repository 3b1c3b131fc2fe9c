package account

import (
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
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
	// Problem, when set, is why the account is not Ready: Waiting for
	// something that appears by itself, Blocked until a person acts, or
	// Failed (retried).
	Problem *reconcilekit.Step
}

// Status returns the status to write for the account after a reconcile
// with the given outcome. It is a pure function: conditions keep their
// lastTransitionTime unless their status changes, and Ready, Reconciling
// and Stalled follow reconcilekit.Summarize, as for a GmsaStack.
func Status(a *gmsav1alpha1.GmsaAccount, o Outcome, now metav1.Time) gmsav1alpha1.GmsaAccountStatus {
	st := *a.Status.DeepCopy()
	st.CredentialSpecName = o.CredentialSpecName
	st.ClusterRoleName = o.ClusterRoleName
	st.BoundSubjects = o.BoundSubjects
	var steps []reconcilekit.Step
	if o.Problem != nil {
		steps = append(steps, *o.Problem)
	}
	msg := fmt.Sprintf("GMSACredentialSpec %q may be used by %s", o.CredentialSpecName, describeSubjects(o.BoundSubjects))
	if len(o.PendingNamespaces) > 0 {
		msg += fmt.Sprintf("; namespaces %s do not exist yet and are bound when they are created", strings.Join(o.PendingNamespaces, ", "))
	}
	reconcilekit.Summarize(reconcilekit.Summary{Conditions: &st.Conditions, ObservedGeneration: &st.ObservedGeneration},
		a.Generation, steps, gmsav1alpha1.ReasonSucceeded, msg, now)
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
