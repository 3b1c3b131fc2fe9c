package account

import (
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
)

func acct(sas ...gmsav1alpha1.ServiceAccountRef) *gmsav1alpha1.GmsaAccount {
	return &gmsav1alpha1.GmsaAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "webapp1", UID: "uid-1", Generation: 3, Labels: map[string]string{"team": "a"}},
		Spec: gmsav1alpha1.GmsaAccountSpec{
			CredentialSpec: gmsav1alpha1.CredentialSpecSource{AccountName: "WebApp1", Domain: &gmsav1alpha1.Domain{
				DNSName: "contoso.com", NetBiosName: "CONTOSO", GUID: "244818ae-87ac-4fcd-92ec-e79e5252348a", SID: "S-1-5-21-1-2-3"}},
			ServiceAccounts: sas,
		},
	}
}

func TestNames(t *testing.T) {
	a := acct()
	if got := CredentialSpecName(a); got != "webapp1" {
		t.Errorf("default credspec name = %q, want the account's name", got)
	}
	a.Spec.CredentialSpecName = "gmsa-webapp1"
	if got := CredentialSpecName(a); got != "gmsa-webapp1" {
		t.Errorf("credspec name = %q, want spec.credentialSpecName", got)
	}
	a.Spec.CredentialSpecName = ""
	a.Spec.CredentialSpec = gmsav1alpha1.CredentialSpecSource{Existing: &gmsav1alpha1.ExistingCredentialSpec{Name: "theirs"}}
	if got, mode := CredentialSpecName(a), ModeOf(a); got != "theirs" || mode != ModeExisting {
		t.Errorf("existing: name %q mode %s", got, mode)
	}
	if ClusterRoleName(a) != "gmsa:webapp1" || RoleBindingName(a) != "gmsa:webapp1" {
		t.Errorf("RBAC names = %q, %q", ClusterRoleName(a), RoleBindingName(a))
	}
	if l := Labels(a); len(l) != 2 || l["team"] != "" {
		t.Errorf("labels = %v: must be the operator's two labels only", l)
	}
}

func TestSubjects(t *testing.T) {
	ref := func(ns, n string) gmsav1alpha1.ServiceAccountRef {
		return gmsav1alpha1.ServiceAccountRef{Namespace: ns, Name: n}
	}
	sa := func(ns, n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "ServiceAccount", Namespace: ns, Name: n}
	}
	group := func(ns string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "system:serviceaccounts:" + ns}
	}
	cases := map[string]struct {
		in   []gmsav1alpha1.ServiceAccountRef
		want map[string][]rbacv1.Subject
	}{
		"named, sorted and deduplicated": {
			[]gmsav1alpha1.ServiceAccountRef{ref("a", "web"), ref("a", "batch"), ref("a", "web")},
			map[string][]rbacv1.Subject{"a": {sa("a", "batch"), sa("a", "web")}},
		},
		"whole namespace": {
			[]gmsav1alpha1.ServiceAccountRef{ref("b", "")},
			map[string][]rbacv1.Subject{"b": {group("b")}},
		},
		"whole namespace covers named ones": {
			[]gmsav1alpha1.ServiceAccountRef{ref("a", "web"), ref("a", "")},
			map[string][]rbacv1.Subject{"a": {group("a")}},
		},
		"several namespaces": {
			[]gmsav1alpha1.ServiceAccountRef{ref("b", "x"), ref("a", "")},
			map[string][]rbacv1.Subject{"a": {group("a")}, "b": {sa("b", "x")}},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := Subjects(acct(c.in...))
			if !equality.Semantic.DeepEqual(got, c.want) {
				t.Errorf("Subjects = %v, want %v", got, c.want)
			}
		})
	}
	if ns := Namespaces(map[string][]rbacv1.Subject{"b": nil, "a": nil}); strings.Join(ns, ",") != "a,b" {
		t.Errorf("Namespaces not sorted: %v", ns)
	}
}

func TestDesiredClusterRoleGrantsUseOfOneCredspec(t *testing.T) {
	got := DesiredClusterRole(acct())
	want := []rbacv1.PolicyRule{{APIGroups: []string{"windows.k8s.io"}, Resources: []string{"gmsacredentialspecs"}, Verbs: []string{"use"}, ResourceNames: []string{"webapp1"}}}
	if !equality.Semantic.DeepEqual(got.Rules, want) {
		t.Errorf("rules = %+v", got.Rules)
	}
	if ref := got.OwnerReferences[0]; ref.UID != "uid-1" || !*ref.Controller {
		t.Errorf("owner reference = %+v", ref)
	}
}

func TestDesiredRawCredentialSpecIsCheckedAndCopied(t *testing.T) {
	a := acct()
	a.Spec.CredentialSpec = gmsav1alpha1.CredentialSpecSource{Raw: &gmsav1alpha1.RawCredentialSpec{
		CmsPlugins: []string{"ActiveDirectory"},
	}}
	if _, err := DesiredCredentialSpec(a); err == nil || !strings.Contains(err.Error(), "spec.credentialSpec.raw") {
		t.Errorf("a raw credspec without DomainJoinConfig gave %v, want an error naming spec.credentialSpec.raw", err)
	}
}

func TestStatus(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	a := acct()
	a.Status.ObservedGeneration = -1
	ok := Outcome{CredentialSpecName: "webapp1", ClusterRoleName: "gmsa:webapp1",
		BoundSubjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "a", Name: "web"}}, PendingNamespaces: []string{"later"}}

	st := Status(a, ok, t0)
	ready := meta.FindStatusCondition(st.Conditions, gmsav1alpha1.ConditionReady)
	if st.ObservedGeneration != 3 || ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != 3 {
		t.Fatalf("success: %+v", st)
	}
	if !strings.Contains(ready.Message, "a/web") || !strings.Contains(ready.Message, "later do not exist yet") {
		t.Errorf("Ready message %q should name the bound and the pending", ready.Message)
	}
	if len(st.Conditions) != 1 {
		t.Errorf("a Ready account has only the Ready condition, got %v", st.Conditions)
	}

	a.Status = st
	again := Status(a, ok, t1)
	if !equality.Semantic.DeepEqual(again, st) {
		t.Error("the same outcome must give the same status (no write), including lastTransitionTime")
	}

	stalled := Status(a, Outcome{CredentialSpecName: "webapp1", Problem: &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonCredentialSpecConflict, Message: "taken"}}, t1)
	if c := meta.FindStatusCondition(stalled.Conditions, gmsav1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != gmsav1alpha1.ReasonCredentialSpecConflict {
		t.Errorf("stalled: %v", stalled.Conditions)
	}
	if c := meta.FindStatusCondition(stalled.Conditions, gmsav1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || !c.LastTransitionTime.Equal(&t1) {
		t.Errorf("Ready after a conflict: %+v", c)
	}
	if stalled.ClusterRoleName != "" {
		t.Error("a stalled account reports no ClusterRole")
	}

	a.Status = stalled
	restalled := Status(a, Outcome{CredentialSpecName: "webapp1", Problem: &reconcilekit.Step{Progress: reconcilekit.Blocked, Reason: gmsav1alpha1.ReasonCredentialSpecConflict, Message: "taken by someone else"}}, metav1.NewTime(t1.Add(time.Hour)))
	if c := meta.FindStatusCondition(restalled.Conditions, gmsav1alpha1.ConditionReady); !c.LastTransitionTime.Equal(&t1) || c.Message != "taken by someone else" {
		t.Errorf("a new message without a new status must keep lastTransitionTime: %+v", c)
	}

	a.Generation = 4
	transient := Status(a, Outcome{Problem: &reconcilekit.Step{Progress: reconcilekit.Failed, Reason: gmsav1alpha1.ReasonReconcileError, Message: "etcd"}}, t1)
	if transient.ObservedGeneration != 3 {
		t.Errorf("a failed reconcile must not advance observedGeneration: %d", transient.ObservedGeneration)
	}
	if c := meta.FindStatusCondition(transient.Conditions, gmsav1alpha1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("transient error: Reconciling should be True: %v", transient.Conditions)
	}

	waiting := Status(a, Outcome{Problem: &reconcilekit.Step{Progress: reconcilekit.Waiting, Reason: gmsav1alpha1.ReasonCredentialSpecNotFound, Message: "missing"}}, t1)
	if meta.FindStatusCondition(waiting.Conditions, gmsav1alpha1.ConditionStalled) != nil || waiting.ObservedGeneration != 4 {
		t.Errorf("waiting: %+v", waiting)
	}
	// kstatus reads an object whose observedGeneration is current and that
	// has no Reconciling condition as Current (done): a waiting account must
	// say Reconciling, or Flux's wait passes before the account is usable.
	if c := meta.FindStatusCondition(waiting.Conditions, gmsav1alpha1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue || c.Reason != gmsav1alpha1.ReasonCredentialSpecNotFound {
		t.Errorf("waiting: Reconciling should be True with the waiting reason: %v", waiting.Conditions)
	}
}
