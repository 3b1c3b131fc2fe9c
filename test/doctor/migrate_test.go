package doctor_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gmsa-operator/gmsa-operator/internal/doctor"
	"github.com/gmsa-operator/gmsa-operator/internal/manifest"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

// The hand-made setup: credspecs and RBAC as the Kubernetes docs and the
// upstream windows-gmsa scripts make them, plus the cases a GmsaAccount
// cannot express.
var (
	teams    = []string{"team-a", "team-b", "team-c", "team-d"}
	accounts = []string{"default", "web", "builder"}
	legacy   = []string{"legacy1", "legacy2", "legacy3"}
)

func useRole(name string, credSpecs ...string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"windows.k8s.io"}, Resources: []string{"gmsacredentialspecs"}, Verbs: []string{"use"}, ResourceNames: credSpecs}}}
}

func sa(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func roleBinding(ns, name, kind, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}, Subjects: subjects}
}

func handMade() []client.Object {
	objs := []client.Object{
		// The Kubernetes docs: a ClusterRole with resourceNames, a RoleBinding to one service account.
		useRole("legacy1-role", "legacy1"),
		roleBinding("team-a", "allow-default-svc-account-read-on-legacy1", "ClusterRole", "legacy1-role", sa("team-a", "default")),
		// A RoleBinding in team-b to a service account of team-a: its pods are checked in team-a, so it grants them nothing.
		roleBinding("team-b", "cross-namespace", "ClusterRole", "legacy1-role", sa("team-a", "web")),
		// A user: not expressible; the binding stays.
		roleBinding("team-a", "alice-legacy1", "ClusterRole", "legacy1-role", rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}),
		// Every service account of team-b, and a ClusterRoleBinding to one service account of team-c.
		useRole("legacy2-role", "legacy2"),
		roleBinding("team-b", "legacy2-all", "ClusterRole", "legacy2-role", group("system:serviceaccounts:team-b")),
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "legacy2-builder"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "legacy2-role"},
			Subjects: []rbacv1.Subject{sa("team-c", "builder")}},
		// A namespaced Role.
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team-c", Name: "legacy3-user"}, Rules: useRole("", "legacy3").Rules},
		roleBinding("team-c", "legacy3-web", "Role", "legacy3-user", sa("team-c", "web")),
		// Cluster-wide to every service account: not expressible; stays.
		useRole("legacy3-everyone", "legacy3"),
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "legacy3-everyone"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "legacy3-everyone"},
			Subjects: []rbacv1.Subject{group("system:serviceaccounts")}},
		// No resourceNames: every credspec, also future ones; stays.
		useRole("gmsa-use-all"),
		roleBinding("team-d", "use-all", "ClusterRole", "gmsa-use-all", sa("team-d", "default")),
	}
	for _, n := range legacy {
		objs = append(objs, handMadeCredSpec(n, "contoso.com"))
	}
	return objs
}

// reviews asks, for every (service account, credspec) pair, the question
// admission asks.
func reviews(credSpecs []string) map[string]bool {
	GinkgoHelper()
	out := map[string]bool{}
	for _, ns := range teams {
		for _, name := range accounts {
			for _, cs := range credSpecs {
				r := doctor.UseReview(ns, name, cs)
				Expect(k8s.Create(context.Background(), r)).To(Succeed())
				out[fmt.Sprintf("%s/%s use %s", ns, name, cs)] = r.Status.Allowed && !r.Status.Denied
			}
		}
	}
	return out
}

func credSpecVersions(names []string) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	for _, n := range names {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("windows.k8s.io/v1")
		u.SetKind("GMSACredentialSpec")
		Expect(k8s.Get(context.Background(), client.ObjectKey{Name: n}, u)).To(Succeed())
		out[n] = u.GetResourceVersion()
	}
	return out
}

// migrateSpecs run after the doctor's specs, in the same ordered container:
// they need the GmsaStack (which installs the GMSACredentialSpec CRD), and
// they find the doctor's operator-made credspec webapp1 and hand-made
// credspec handmade in the cluster.
func migrateSpecs() {
	Describe("kubectl gmsa migrate", func() { migrateSpec() })
}

func migrateSpec() {
	ctx := context.Background()
	all := append([]string{"webapp1", "handmade"}, legacy...)

	It("keeps every service account's admission answer when the GmsaAccounts replace the hand-made RBAC", func() {
		for _, ns := range teams {
			Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
			for _, name := range accounts[1:] {
				Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
			}
		}
		for _, o := range handMade() {
			Expect(k8s.Create(ctx, o)).To(Succeed())
		}
		before := reviews(all)
		// The test is not vacuous: the setup grants and refuses.
		Expect(before).To(HaveKeyWithValue("team-a/default use legacy1", true))
		Expect(before).To(HaveKeyWithValue("team-a/web use legacy1", false)) // the cross-namespace binding grants nothing
		Expect(before).To(HaveKeyWithValue("team-b/web use legacy2", true))
		Expect(before).To(HaveKeyWithValue("team-c/builder use legacy2", true))
		Expect(before).To(HaveKeyWithValue("team-c/web use legacy2", false))
		Expect(before).To(HaveKeyWithValue("team-c/web use legacy3", true))
		Expect(before).To(HaveKeyWithValue("team-d/default use handmade", true))
		Expect(before).To(HaveKeyWithValue("team-d/web use handmade", false))
		versions := credSpecVersions(all)

		By("running kubectl gmsa migrate")
		out, stderr, code := kubectlGmsa("", "migrate")
		Expect(code).To(Equal(1), "some hand-made RBAC cannot be expressed and must stay")
		objs, err := manifest.Decode(out)
		Expect(err).NotTo(HaveOccurred())
		got := map[string][]any{}
		for _, o := range objs {
			Expect(o.GetKind()).To(Equal("GmsaAccount"))
			existing, _, _ := unstructured.NestedString(o.Object, "spec", "credentialSpec", "existing", "name")
			Expect(existing).To(Equal(o.GetName()))
			sas, _, _ := unstructured.NestedSlice(o.Object, "spec", "serviceAccounts")
			got[o.GetName()] = sas
		}
		m := func(ns, name string) map[string]any {
			if name == "" {
				return map[string]any{"namespace": ns}
			}
			return map[string]any{"namespace": ns, "name": name}
		}
		Expect(got).To(Equal(map[string][]any{
			"handmade": {m("team-d", "default")},
			"legacy1":  {m("team-a", "default"), m("team-d", "default")},
			"legacy2":  {m("team-b", ""), m("team-c", "builder"), m("team-d", "default")},
			"legacy3":  {m("team-c", "web"), m("team-d", "default")},
		}), "webapp1 is the operator's own, not migrated")
		for _, want := range []string{
			`not carried over: RoleBinding team-a/alice-legacy1: user "alice": a GmsaAccount grants service accounts only`,
			"not carried over: ClusterRoleBinding legacy3-everyone: group system:serviceaccounts cluster-wide",
			"not carried over: RoleBinding team-d/use-all: ClusterRole gmsa-use-all has no resourceNames: it grants use of every credspec, also future ones",
			"note: RoleBinding team-b/cross-namespace: service account team-a/web: a RoleBinding in team-b grants it nothing for its own pods",
		} {
			Expect(stderr).To(ContainSubstring(want))
		}
		deletes := regexp.MustCompile(`(?m)^  kubectl delete (.*)$`).FindAllStringSubmatch(stderr, -1)
		var deleted []string
		for _, d := range deletes {
			deleted = append(deleted, d[1])
		}
		Expect(deleted).To(ConsistOf(
			"clusterrole legacy2-role",
			"clusterrolebinding legacy2-builder",
			"role -n team-c legacy3-user",
			"rolebinding -n team-a allow-default-svc-account-read-on-legacy1",
			"rolebinding -n team-b cross-namespace",
			"rolebinding -n team-b legacy2-all",
			"rolebinding -n team-c legacy3-web",
		))

		By("applying the GmsaAccounts and waiting until they are Ready")
		for _, o := range objs {
			Expect(k8s.Create(ctx, o)).To(Succeed())
		}
		for _, o := range objs {
			Eventually(accountReady(o.GetName())).Should(Succeed())
		}
		Expect(credSpecVersions(all)).To(Equal(versions), "the operator never writes a credspec it takes over with existing")

		By("deleting the hand-made RBAC with the commands migrate printed")
		root, err := harness.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		kubectl := filepath.Join(harness.AssetsDir(root), "kubectl")
		for _, d := range deleted {
			cmd := exec.Command(kubectl, append(strings.Fields("delete "+d), "--kubeconfig", env.Kubeconfig)...)
			b, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), string(b))
		}

		Expect(reviews(all)).To(Equal(before), "every (service account, credspec) review answers as before")

		By("a second run finds nothing left to migrate but what must stay")
		out, _, _ = kubectlGmsa("", "migrate")
		Expect(out).To(BeEmpty())
	})
}
