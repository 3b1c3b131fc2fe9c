// Package gitops_test checks what GitOps tools see of gmsa-operator's
// objects, on live objects of a real API server with the manager running
// under its shipped RBAC: kstatus (Flux, kpt, cli-utils) and the Argo CD
// health check in config/argocd, run with gopher-lua, agree on InProgress
// (Progressing), Current (Healthy) and Failed (Degraded); and applying the
// samples again the way a GitOps tool does changes nothing.
package gitops_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const gitopsManager = "argocd-controller"

var (
	env        *harness.Env
	k8s        client.Client
	healthLua  string
	mgr        *harness.InProcessManager
	kl         *harness.Kubelet
	requests   = &harness.RequestRecorder{}
	stackGVK   = schema.GroupVersionKind{Group: "gmsa.io", Version: "v1alpha1", Kind: "GmsaStack"}
	accountGVK = schema.GroupVersionKind{Group: "gmsa.io", Version: "v1alpha1", Kind: "GmsaAccount"}
)

func TestGitOps(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "GitOps suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	if os.Geteuid() != 0 {
		Skip("the webhook is served on its Service's port 443 on loopback: that needs root")
	}
	root, err := harness.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	b, err := os.ReadFile(filepath.Join(root, "config", "argocd", "health.lua"))
	Expect(err).NotTo(HaveOccurred())
	healthLua = string(b)
	env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.108.0/24", NoCredentialSpecCRD: true})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client
})

var _ = AfterSuite(func() {
	if kl != nil {
		kl.Stop()
	}
	if mgr != nil {
		Expect(mgr.Stop()).To(Succeed())
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// samples reads config/samples as a GitOps tool would from Git.
func samples() []*unstructured.Unstructured {
	root, err := harness.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	var objs []*unstructured.Unstructured
	for _, f := range []string{"gmsa_v1alpha1_gmsastack.yaml", "gmsa_v1alpha1_gmsaaccount.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "config", "samples", f))
		Expect(err).NotTo(HaveOccurred())
		u := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal(b, &u.Object)).To(Succeed())
		objs = append(objs, u)
	}
	return objs
}

// gitopsApply applies obj with server-side apply under the GitOps tool's
// field manager, without forcing: a conflict with the operator fails.
func gitopsApply(obj *unstructured.Unstructured) error {
	//nolint:staticcheck // Patch with client.Apply applies an unstructured object as it is.
	return k8s.Patch(context.Background(), obj.DeepCopy(), client.Apply, client.FieldOwner(gitopsManager))
}

func live(gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	ExpectWithOffset(1, k8s.Get(context.Background(), client.ObjectKey{Name: name}, u)).To(Succeed())
	return u
}

// kstatus computes the object's status as Flux and kpt do.
func kstatus(u *unstructured.Unstructured) status.Status {
	res, err := status.Compute(u)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return res.Status
}

// argoHealth runs config/argocd/health.lua on the object as Argo CD does:
// the object is the global `obj`, the script returns {status, message}.
func argoHealth(u *unstructured.Unstructured) (string, string) {
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	L.SetGlobal("obj", toLua(L, u.Object))
	ExpectWithOffset(1, L.DoString(healthLua)).To(Succeed())
	ret, ok := L.Get(-1).(*lua.LTable)
	ExpectWithOffset(1, ok).To(BeTrue(), "health.lua returned no table")
	return ret.RawGetString("status").String(), ret.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch t := v.(type) {
	case map[string]any:
		tbl := L.NewTable()
		for k, e := range t {
			tbl.RawSetString(k, toLua(L, e))
		}
		return tbl
	case []any:
		tbl := L.NewTable()
		for _, e := range t {
			tbl.Append(toLua(L, e))
		}
		return tbl
	case string:
		return lua.LString(t)
	case bool:
		return lua.LBool(t)
	case int64:
		return lua.LNumber(t)
	case float64:
		return lua.LNumber(t)
	case nil:
		return lua.LNil
	}
	Fail(fmt.Sprintf("unexpected JSON value %T", v))
	return lua.LNil
}

// views is what the two tools say of one object.
type views struct {
	kstatus status.Status
	argo    string
	message string
}

func view(gvk schema.GroupVersionKind, name string) views {
	u := live(gvk, name)
	h, msg := argoHealth(u)
	return views{kstatus: kstatus(u), argo: h, message: msg}
}

var _ = Describe("what GitOps tools see", Ordered, func() {
	ctx := context.Background()

	It("ships the same Lua health check for both kinds in the argocd-cm patch", func() {
		root, err := harness.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		b, err := os.ReadFile(filepath.Join(root, "config", "argocd", "argocd-cm-patch.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var patch struct {
			Data map[string]string `json:"data"`
		}
		Expect(yaml.Unmarshal(b, &patch)).To(Succeed())
		for _, kind := range []string{"GmsaStack", "GmsaAccount"} {
			Expect(patch.Data).To(HaveKeyWithValue("resource.customizations.health.gmsa.io_"+kind, healthLua))
		}
	})

	It("says InProgress / Progressing before the operator has seen the objects", func() {
		for _, obj := range samples() {
			Expect(gitopsApply(obj)).To(Succeed())
		}
		for _, v := range []views{view(stackGVK, "default"), view(accountGVK, "webapp1")} {
			Expect(v.kstatus).To(Equal(status.InProgressStatus))
			Expect(v.argo).To(Equal("Progressing"), v.message)
		}
	})

	It("says Current / Healthy once the operator made them Ready, passing through InProgress", func() {
		By("starting the manager under its shipped RBAC, and the kubelet the test plays")
		cfg, err := env.InstallOperatorRBAC(ctx)
		Expect(err).NotTo(HaveOccurred())
		cfg.WrapTransport = requests.Wrap
		// With leader election, as config/default runs it: the Lease lives in
		// the operator's namespace, under its leader-election Role.
		mgr, err = harness.RunManager(cfg, manager.Options{OperatorImage: "gmsa-operator:gitops", LeaderElection: true, LeaderElectionNamespace: harness.OperatorNamespace})
		Expect(err).NotTo(HaveOccurred())
		kl = harness.StartKubelet(harness.KubeletOptions{Client: k8s, Config: env.Config, Namespace: "gmsa-system",
			PodIP: "192.0.2.80", Images: []string{"gmsa-operator:gitops"}, Log: GinkgoWriter})

		seen := map[status.Status]bool{}
		Eventually(func(g Gomega) {
			s := view(stackGVK, "default")
			seen[s.kstatus] = true
			g.Expect(s.kstatus).To(Equal(status.CurrentStatus), s.message)
			g.Expect(s.argo).To(Equal("Healthy"), s.message)
		}).WithPolling(50 * time.Millisecond).Should(Succeed())
		Expect(seen).To(HaveKey(status.InProgressStatus), "the stack converged without ever being InProgress")
		lease := &coordinationv1.Lease{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: harness.OperatorNamespace, Name: manager.LeaderElectionID}, lease)).To(Succeed())
		Expect(lease.Spec.HolderIdentity).NotTo(BeNil(), "the manager leads through the Lease its Role allows")
		Eventually(func(g Gomega) {
			a := view(accountGVK, "webapp1")
			g.Expect(a.kstatus).To(Equal(status.CurrentStatus), a.message)
			g.Expect(a.argo).To(Equal("Healthy"), a.message)
		}).Should(Succeed())
	})

	It("applies the samples again without conflicts or changes: the operator never writes their spec", func() {
		before := map[string]string{}
		for _, obj := range samples() {
			before[obj.GetKind()] = live(obj.GroupVersionKind(), obj.GetName()).GetResourceVersion()
		}
		for _, obj := range samples() {
			Expect(gitopsApply(obj)).To(Succeed(), "a conflict means the operator owns a field that is in Git")
		}
		for _, obj := range samples() {
			u := live(obj.GroupVersionKind(), obj.GetName())
			Expect(u.GetResourceVersion()).To(Equal(before[obj.GetKind()]), "%s changed on a re-apply", obj.GetKind())
			for _, mf := range u.GetManagedFields() {
				if mf.Manager == gitopsManager || mf.Subresource == "status" {
					continue
				}
				Expect(string(mf.FieldsV1.Raw)).NotTo(ContainSubstring(`"f:spec"`), "%s owns spec fields of %s", mf.Manager, obj.GetKind())
			}
		}
	})

	It("says Failed / Degraded when an object is Stalled", func() {
		By("a second GmsaStack (there is one per cluster)")
		second := samples()[0]
		second.SetName("second")
		Expect(gitopsApply(second)).To(Succeed())
		Eventually(func(g Gomega) {
			v := view(stackGVK, "second")
			g.Expect(v.kstatus).To(Equal(status.FailedStatus), v.message)
			g.Expect(v.argo).To(Equal("Degraded"))
			g.Expect(v.message).To(ContainSubstring("DuplicateStack"))
		}).Should(Succeed())

		By("a GmsaAccount whose credspec name belongs to someone else")
		foreign := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
			"metadata": map[string]any{"name": "taken"},
			"credspec": map[string]any{"CmsPlugins": []any{"ActiveDirectory"}},
		}}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		acct := samples()[1]
		acct.SetName("taken")
		Expect(gitopsApply(acct)).To(Succeed())
		Eventually(func(g Gomega) {
			v := view(accountGVK, "taken")
			g.Expect(v.kstatus).To(Equal(status.FailedStatus), v.message)
			g.Expect(v.argo).To(Equal("Degraded"))
			g.Expect(strings.HasPrefix(v.message, "CredentialSpecConflict")).To(BeTrue(), v.message)
		}).Should(Succeed())
	})

	It("agree on every state of a GmsaAccount, live: waiting is InProgress / Progressing until the account is usable", func() {
		account := func(name string, mutate func(spec map[string]any)) *unstructured.Unstructured {
			a := samples()[1]
			a.SetName(name)
			spec := a.Object["spec"].(map[string]any)
			mutate(spec)
			return a
		}
		expect := func(name string, want status.Status, argo, reason string) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				v := view(accountGVK, name)
				g.Expect(v.kstatus).To(Equal(want), v.message)
				g.Expect(v.argo).To(Equal(argo), v.message)
				if reason != "" {
					g.Expect(v.message).To(HavePrefix(reason), "the Argo CD message starts with the reason")
				}
			}).Should(Succeed())
			// And it stays so: kstatus must not read Current in between.
			Consistently(func(g Gomega) {
				v := view(accountGVK, name)
				g.Expect(v.kstatus).To(Equal(want), v.message)
				g.Expect(v.argo).To(Equal(argo), v.message)
			}).WithTimeout(time.Second).Should(Succeed())
		}

		By("CredentialSpecNotFound: an account naming a credspec that does not exist yet is waiting, not done")
		Expect(gitopsApply(account("byref", func(spec map[string]any) {
			spec["credentialSpec"] = map[string]any{"existing": map[string]any{"name": "made-later"}}
		}))).To(Succeed())
		expect("byref", status.InProgressStatus, "Progressing", "CredentialSpecNotFound")
		By("... and Current / Healthy as soon as the credspec appears")
		valid := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
			"metadata": map[string]any{"name": "made-later"},
			"credspec": map[string]any{
				"CmsPlugins":       []any{"ActiveDirectory"},
				"DomainJoinConfig": map[string]any{"DnsName": "contoso.com", "Sid": "S-1-5-21-1", "Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a", "MachineAccountName": "Later", "NetBiosName": "CONTOSO", "DnsTreeName": "contoso.com"},
				"ActiveDirectoryConfig": map[string]any{"GroupManagedServiceAccounts": []any{
					map[string]any{"Name": "Later", "Scope": "contoso.com"}}},
			},
		}}
		Expect(k8s.Create(ctx, valid)).To(Succeed())
		expect("byref", status.CurrentStatus, "Healthy", "")

		By("InvalidCredentialSpec: a referenced credspec that cannot be used")
		invalid := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
			"metadata": map[string]any{"name": "half-made"},
			"credspec": map[string]any{"CmsPlugins": []any{"ActiveDirectory"}},
		}}
		Expect(k8s.Create(ctx, invalid)).To(Succeed())
		Expect(gitopsApply(account("half-made", func(spec map[string]any) {
			spec["credentialSpec"] = map[string]any{"existing": map[string]any{"name": "half-made"}}
		}))).To(Succeed())
		expect("half-made", status.FailedStatus, "Degraded", "InvalidCredentialSpec")

		By("RBACConflict: someone else's ClusterRole under the account's name")
		Expect(k8s.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "gmsa:squatted"},
		}})).To(Succeed())
		Expect(gitopsApply(account("squatted", func(spec map[string]any) {
			spec["credentialSpecName"] = "squatted"
		}))).To(Succeed())
		expect("squatted", status.FailedStatus, "Degraded", "RBACConflict")

		By("CredentialSpecConflict: a younger account generating an older account's credspec name")
		Expect(gitopsApply(account("younger", func(spec map[string]any) {
			spec["credentialSpecName"] = "webapp1"
		}))).To(Succeed())
		expect("younger", status.FailedStatus, "Degraded", "CredentialSpecConflict")
		expect("webapp1", status.CurrentStatus, "Healthy", "")
	})

	It("agree on every progress a step can report (Done, Waiting, Blocked, Failed), whatever the reason", func() {
		for _, tc := range []struct {
			progress reconcilekit.Progress
			kstatus  status.Status
			argo     string
		}{
			{reconcilekit.Done, status.CurrentStatus, "Healthy"},
			{reconcilekit.Waiting, status.InProgressStatus, "Progressing"},
			{reconcilekit.Blocked, status.FailedStatus, "Degraded"},
			{reconcilekit.Failed, status.InProgressStatus, "Progressing"},
		} {
			for _, reason := range []string{"CredentialSpecNotFound", "RBACConflict", "ReconcileError", "DeploymentUnavailable", "WaitingForWebhook", "IssuerNotFound", "CertificatePending", "ObjectConflict", "InvalidSpec",
				"WaitingForCAInjection", "SwitchingMode", "PolicyNotServed", "WaitingForPublication", "WaitingForEndpoints"} {
				// An object of generation 2 that the operator had already
				// reported on at generation 1.
				var conds []metav1.Condition
				observed := int64(1)
				var steps []reconcilekit.Step
				if tc.progress != reconcilekit.Done {
					steps = []reconcilekit.Step{{Progress: tc.progress, Reason: reason, Message: "m"}}
				}
				reconcilekit.Summarize(reconcilekit.Summary{Conditions: &conds, ObservedGeneration: &observed}, 2, steps, "Succeeded", "ok", metav1.Now())
				st := map[string]any{"observedGeneration": observed}
				var cs []any
				for _, c := range conds {
					cs = append(cs, map[string]any{"type": c.Type, "status": string(c.Status), "reason": c.Reason, "message": c.Message})
				}
				st["conditions"] = cs
				u := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "gmsa.io/v1alpha1", "kind": "GmsaAccount",
					"metadata": map[string]any{"name": "x", "generation": int64(2)}, "status": st,
				}}
				Expect(kstatus(u)).To(Equal(tc.kstatus), "%s %s", tc.progress, reason)
				h, msg := argoHealth(u)
				Expect(h).To(Equal(tc.argo), "%s %s: %s", tc.progress, reason, msg)
			}
		}
	})

	It("needed the permissions the shipped RBAC grants it for GitOps setups (each one is in use)", func() {
		Expect(requests.Missing(harness.SuiteGitOps)).To(BeEmpty())
	})

	It("was refused nothing, on the leader-election path (Lease, its Events) included", func() {
		Expect(requests.Forbidden()).To(BeEmpty())
	})
})
