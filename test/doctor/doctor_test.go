package doctor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/doctor"
)

const appNS = "apps"

// podYAML is a pod manifest as an app team writes it, not applied.
func podYAML(name, credSpec, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  securityContext:
    windowsOptions:
      gmsaCredentialSpecName: %s
  containers:
  - name: app
    image: mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022
%s`, name, appNS, credSpec, extra)
}

const windowsOnly = "  nodeSelector:\n    kubernetes.io/os: windows\n"

// line returns the output line of the named check.
func line(out, check string) string {
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 6 && strings.HasPrefix(l[6:], check+":") {
			return l
		}
	}
	return ""
}

func getStack() *gmsav1alpha1.GmsaStack {
	s := &gmsav1alpha1.GmsaStack{}
	ExpectWithOffset(1, k8s.Get(context.Background(), client.ObjectKey{Name: "default"}, s)).To(Succeed())
	return s
}

func stackReady(g Gomega, mode gmsav1alpha1.AdmissionMode) {
	s := getStack()
	g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
	g.Expect(meta.IsStatusConditionTrue(s.Status.Conditions, gmsav1alpha1.ConditionReady)).To(BeTrue(), "%+v", s.Status.Conditions)
	g.Expect(s.Status.Admission).NotTo(BeNil())
	g.Expect(s.Status.Admission.Mode).To(Equal(mode))
}

func patchStack(patch string) {
	GinkgoHelper()
	Expect(k8s.Patch(context.Background(), &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

func accountReady(name string) func(Gomega) {
	return func(g Gomega) {
		a := &gmsav1alpha1.GmsaAccount{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: name}, a)).To(Succeed())
		g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
		g.Expect(meta.IsStatusConditionTrue(a.Status.Conditions, gmsav1alpha1.ConditionReady)).To(BeTrue(), "%+v", a.Status.Conditions)
	}
}

func credSpecContent(name string) string {
	GinkgoHelper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("windows.k8s.io/v1")
	u.SetKind("GMSACredentialSpec")
	Expect(k8s.Get(context.Background(), client.ObjectKey{Name: name}, u)).To(Succeed())
	c, err := admission.ContentOf(u.Object)
	Expect(err).NotTo(HaveOccurred())
	return c
}

var _ = Describe("kubectl gmsa", Ordered, func() {
	ctx := context.Background()

	It("fails 'GmsaStack installed' when there is none, with the command that installs one", func() {
		out, _, code := kubectlGmsa("", "doctor", "--service-account", appNS+"/default", "--credspec", "webapp1")
		Expect(code).To(Equal(1))
		Expect(line(out, "GmsaStack installed")).To(HavePrefix("FAIL  GmsaStack installed: no GmsaStack in the cluster"))
		Expect(out).To(ContainSubstring("fix: kubectl apply -f config/samples/gmsa_v1alpha1_gmsastack.yaml"))
	})

	It("sets up the docs' story: a GmsaStack in Webhook mode and the GmsaAccount webapp1 for apps/default", func() {
		Expect(k8s.Create(ctx, &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: gmsav1alpha1.GmsaStackSpec{Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModeWebhook}}})).To(Succeed())
		for _, ns := range []*corev1.Namespace{
			{ObjectMeta: metav1.ObjectMeta{Name: appNS}},
			{ObjectMeta: metav1.ObjectMeta{Name: "no-gmsa", Labels: map[string]string{"windows.k8s.io/disabled": "true"}}},
		} {
			Expect(k8s.Create(ctx, ns)).To(Succeed())
		}
		Eventually(func(g Gomega) { stackReady(g, gmsav1alpha1.AdmissionModeWebhook) }).WithTimeout(90 * time.Second).Should(Succeed())
		Expect(k8s.Create(ctx, &gmsav1alpha1.GmsaAccount{
			ObjectMeta: metav1.ObjectMeta{Name: "webapp1"},
			Spec: gmsav1alpha1.GmsaAccountSpec{
				CredentialSpec: gmsav1alpha1.CredentialSpecSource{AccountName: "WebApp1", Domain: &gmsav1alpha1.Domain{
					DNSName: "contoso.com", NetBiosName: "CONTOSO",
					GUID: "244818ae-87ac-4fcd-92ec-e79e5252348a", SID: "S-1-5-21-2126449477-2524075714-3094792973"}},
				ServiceAccounts: []gmsav1alpha1.ServiceAccountRef{{Namespace: appNS, Name: "default"}},
			},
		})).To(Succeed())
		Eventually(accountReady("webapp1")).Should(Succeed())
		Eventually(func(g Gomega) {
			sa := &corev1.ServiceAccount{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: appNS, Name: "default"}, sa)).To(Succeed())
		}).Should(Succeed())
	})

	It("passes every check for a correct manifest, exit 0", func() {
		Eventually(func(g Gomega) {
			out, _, code := kubectlGmsa(podYAML("web", "webapp1", windowsOnly), "doctor", "-f", "-")
			g.Expect(code).To(Equal(0), out)
			for _, check := range []string{"GmsaStack installed", "GmsaStack Ready", "admission path serving", "webhook certificate valid",
				"namespace not excluded", `credspec "webapp1" exists`, `GmsaAccount for "webapp1" Ready`,
				`service account apps/default may use "webapp1"`, "runs on Windows nodes only"} {
				g.Expect(line(out, check)).To(HavePrefix("PASS"), check)
			}
			g.Expect(out).NotTo(ContainSubstring("contoso")) // no credspec content, no commands for a manifest
		}).Should(Succeed())
	})

	It("prints the Windows-side commands for a running pod, filled in with its names and the credspec's domain", func() {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: appNS},
			Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{GMSACredentialSpecName: ptrTo("webapp1")}},
				Containers:      []corev1.Container{{Name: "iis", Image: "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022"}},
				NodeSelector:    map[string]string{"kubernetes.io/os": "windows"},
			},
		}
		Expect(k8s.Create(ctx, pod)).To(Succeed()) // through the webhook: it fills the content in
		Expect(pod.Spec.SecurityContext.WindowsOptions.GMSACredentialSpec).NotTo(BeNil())
		pod.Status.Phase = corev1.PodRunning // as the kubelet would report it
		Expect(k8s.Status().Update(ctx, pod)).To(Succeed())

		out, _, code := kubectlGmsa("", "doctor", "pod/web-0", "-n", appNS)
		Expect(code).To(Equal(0), out)
		Expect(line(out, `content of pod matches "webapp1"`)).To(HavePrefix("PASS"))
		Expect(out).To(ContainSubstring("kubectl exec -n apps web-0 -c iis -- nltest /sc_verify:contoso.com\n"))
		Expect(out).To(ContainSubstring("kubectl exec -n apps web-0 -c iis -- nltest /parentdomain\n"))
		Expect(out).To(ContainSubstring("kubectl exec -n apps web-0 -c iis -- klist get krbtgt\n"))
		Expect(out).NotTo(ContainSubstring("244818ae")) // never the content

		By("a pod not running gets no commands")
		pod.Status.Phase = corev1.PodPending
		Expect(k8s.Status().Update(ctx, pod)).To(Succeed())
		out, _, _ = kubectlGmsa("", "doctor", "pod/web-0", "-n", appNS)
		Expect(out).NotTo(ContainSubstring("kubectl exec"))
	})

	It("answers -o json for scripts", func() {
		out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/intruder", "--credspec", "webapp1", "-o", "json")
		Expect(code).To(Equal(1))
		var rep doctor.Report
		Expect(json.Unmarshal([]byte(out), &rep)).To(Succeed())
		Expect(rep.OK).To(BeFalse())
		Expect(rep.Target.ServiceAccount).To(Equal("intruder"))
		statuses := map[string]doctor.Status{}
		for _, c := range rep.Checks {
			statuses[c.Name] = c.Status
		}
		Expect(statuses).To(HaveKeyWithValue(`service account apps/intruder may use "webapp1"`, doctor.Fail))
		Expect(statuses).To(HaveKeyWithValue(`credspec "webapp1" exists`, doctor.Pass))
		Expect(statuses).To(HaveKeyWithValue("runs on Windows nodes only", doctor.Skip))
	})

	It("fails 'credspec exists' with 'did you mean' for a name that differs only in case (the docs' own trap)", func() {
		out, _, code := kubectlGmsa(podYAML("web", "WebApp1", windowsOnly), "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, `credspec "WebApp1" exists`)).To(Equal(`FAIL  credspec "WebApp1" exists: no GMSACredentialSpec "WebApp1": admission refuses the pod with "cred spec WebApp1 does not exist"; did you mean webapp1 (names are case-sensitive)`))
		Expect(out).To(ContainSubstring("      fix: set gmsaCredentialSpecName: webapp1\n"))

		out, _, code = kubectlGmsa(podYAML("web", "nosuch", windowsOnly), "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, `credspec "nosuch" exists`)).To(HavePrefix(`FAIL  credspec "nosuch" exists: no GMSACredentialSpec "nosuch"`))
		Expect(line(out, `credspec "nosuch" exists`)).NotTo(ContainSubstring("did you mean"))
	})

	It("fails 'GmsaAccount Ready' for a stalled account, and warns for a credspec no GmsaAccount manages", func() {
		Expect(k8s.Create(ctx, &gmsav1alpha1.GmsaAccount{
			ObjectMeta: metav1.ObjectMeta{Name: "waiting"},
			Spec: gmsav1alpha1.GmsaAccountSpec{
				CredentialSpec:  gmsav1alpha1.CredentialSpecSource{Existing: &gmsav1alpha1.ExistingCredentialSpec{Name: "not-yet"}},
				ServiceAccounts: []gmsav1alpha1.ServiceAccountRef{{Namespace: appNS}},
			},
		})).To(Succeed())
		Eventually(func(g Gomega) {
			out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "not-yet")
			g.Expect(code).To(Equal(1))
			g.Expect(line(out, `GmsaAccount for "not-yet" Ready`)).To(HavePrefix(`FAIL  GmsaAccount for "not-yet" Ready: GmsaAccount "waiting" is not Ready: reason CredentialSpecNotFound`))
			g.Expect(out).To(ContainSubstring("docs/troubleshooting.md#credentialspecnotfound"))
		}).Should(Succeed())

		Expect(k8s.Create(ctx, handMadeCredSpec("handmade", "fabrikam.com"))).To(Succeed())
		out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "handmade")
		Expect(code).To(Equal(1))
		Expect(line(out, `GmsaAccount for "handmade" Ready`)).To(HavePrefix(`WARN  GmsaAccount for "handmade" Ready: no GmsaAccount makes or grants "handmade"`))
		Expect(out).To(ContainSubstring("fix: kubectl gmsa migrate"))
	})

	It("fails 'may use' for a service account the GmsaAccount does not list, naming the account to edit", func() {
		out, _, code := kubectlGmsa(podYAML("web", "webapp1", windowsOnly+"  serviceAccountName: builder\n"), "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, `service account apps/builder may use "webapp1"`) + "\n").To(Equal(
			"FAIL  service account apps/builder may use \"webapp1\": denied; admission refuses the pod: service account \"builder\" is not authorized to `use` GMSA cred spec \"webapp1\"\n"))
		Expect(out).To(ContainSubstring("fix: add {namespace: apps, name: builder} (or {namespace: apps} for all its service accounts) to spec.serviceAccounts of GmsaAccount webapp1"))
	})

	It("checks user-given content against the credspec", func() {
		good := credSpecContent("webapp1")
		withContent := func(content string) string {
			return strings.Replace(podYAML("web", "webapp1", windowsOnly), "      gmsaCredentialSpecName: webapp1\n",
				fmt.Sprintf("      gmsaCredentialSpecName: webapp1\n      gmsaCredentialSpec: '%s'\n", content), 1)
		}
		out, _, code := kubectlGmsa(withContent(good), "doctor", "-f", "-")
		Expect(code).To(Equal(0), out)
		Expect(line(out, `content of pod matches "webapp1"`)).To(Equal(`PASS  content of pod matches "webapp1": equal as JSON`))

		out, _, code = kubectlGmsa(withContent(strings.Replace(good, "contoso.com", "fabrikam.com", 1)), "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, `content of pod matches "webapp1"`)).To(HavePrefix(`FAIL  content of pod matches "webapp1": gmsaCredentialSpec differs from GMSACredentialSpec "webapp1": admission refuses the pod`))
		Expect(out).NotTo(ContainSubstring("fabrikam")) // never the content
	})

	It("fails 'namespace not excluded' for a namespace labelled windows.k8s.io/disabled=true", func() {
		manifest := strings.Replace(podYAML("web", "webapp1", windowsOnly), "namespace: apps", "namespace: no-gmsa", 1)
		out, _, code := kubectlGmsa(manifest, "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, "namespace not excluded")).To(HavePrefix("FAIL  namespace not excluded: namespace no-gmsa is labelled windows.k8s.io/disabled=true"))
		Expect(out).To(ContainSubstring("fix: kubectl label namespace no-gmsa windows.k8s.io/disabled-\n"))
	})

	It("fails 'runs on Windows nodes only' without nodeSelector or affinity, and passes with required affinity", func() {
		out, _, code := kubectlGmsa(podYAML("web", "webapp1", ""), "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, "runs on Windows nodes only")).To(HavePrefix("FAIL  runs on Windows nodes only: neither nodeSelector nor required node affinity"))
		Expect(out).To(ContainSubstring("fix: add spec.nodeSelector: {kubernetes.io/os: windows}"))

		deployment := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {windowsOptions: {gmsaCredentialSpecName: webapp1}}
      containers: [{name: app, image: iis}]
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {key: kubernetes.io/os, operator: In, values: [windows]}
`
		out, _, code = kubectlGmsa(deployment, "doctor", "-f", "-")
		Expect(code).To(Equal(0), out)
		Expect(out).To(HavePrefix("Checking manifest apps/deployment/web (service account default)\n"))
		Expect(line(out, "runs on Windows nodes only")).To(Equal("PASS  runs on Windows nodes only: required node affinity kubernetes.io/os In [windows]"))
	})

	It("refuses bad input with exit status 2 and a message naming what is wrong, checking nothing", func() {
		for _, tc := range []struct {
			stdin string
			args  []string
			want  string
		}{
			{"", []string{"doctor"}, "give exactly one of pod/NAME, -f FILE or --service-account NAME"},
			{"", []string{"doctor", "pod/web", "-f", "x.yaml"}, "give exactly one of pod/NAME, -f FILE or --service-account NAME"},
			{"", []string{"doctor", "pod/web", "-o", "yaml"}, `--output must be text or json, not "yaml"`},
			{"", []string{"doctor", "pod/web", "--credspec", "webapp1"}, "--credspec goes with --service-account"},
			{"", []string{"doctor", "--service-account", "apps/default"}, "--service-account needs at least one --credspec"},
			{"", []string{"doctor", "deployment/web"}, `"deployment/web": only pods are examined by name (pod/NAME); use -f for a workload manifest`},
			{"", []string{"doctor", "pod/nosuch", "-n", "apps"}, `get pod apps/nosuch: pods "nosuch" not found`},
			{"", []string{"doctor", "-f", "/nonexistent/pod.yaml"}, "open /nonexistent/pod.yaml: no such file or directory"},
			{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n", []string{"doctor", "-f", "-"}, `-: ConfigMap "settings" is not a Pod or a workload with a pod template`},
			{"", []string{"doctor", "-f", "-"}, "-: the manifest holds no object"},
		} {
			out, errOut, code := kubectlGmsa(tc.stdin, tc.args...)
			Expect(code).To(Equal(2), "%v: %s%s", tc.args, out, errOut)
			Expect(errOut).To(ContainSubstring(tc.want), "%v", tc.args)
			Expect(out).NotTo(ContainSubstring("PASS"), "%v: nothing is checked", tc.args)
		}
	})

	It("passes 'runs on Windows nodes only' through a RuntimeClass that schedules on Windows, and fails through one that does not", func() {
		for _, rc := range []*nodev1.RuntimeClass{
			{ObjectMeta: metav1.ObjectMeta{Name: "windows-2022"}, Handler: "runhcs-wcow-process",
				Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{corev1.LabelOSStable: "windows", "node.kubernetes.io/windows-build": "10.0.20348"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}, Handler: "runsc"},
		} {
			Expect(k8s.Create(ctx, rc)).To(Succeed())
		}
		pod := func(rc string) string {
			return `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: apps}
spec:
  runtimeClassName: ` + rc + `
  securityContext: {windowsOptions: {gmsaCredentialSpecName: webapp1}}
  containers: [{name: app, image: iis}]
`
		}
		out, _, code := kubectlGmsa(pod("windows-2022"), "doctor", "-f", "-")
		Expect(code).To(Equal(0), out)
		Expect(line(out, "runs on Windows nodes only")).To(Equal("PASS  runs on Windows nodes only: RuntimeClass windows-2022 schedules on kubernetes.io/os: windows"))

		out, _, code = kubectlGmsa(pod("gvisor"), "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, "runs on Windows nodes only")).To(HavePrefix("FAIL  runs on Windows nodes only: RuntimeClass gvisor does not schedule on kubernetes.io/os: windows, and neither nodeSelector"))
	})

	It("fails 'admission path serving' when the webhook Service has no ready endpoint", func() {
		// The pods stop being ready; kube-controller-manager's EndpointSlice
		// controller marks their endpoints not ready.
		kl.SetServing(false)
		DeferCleanup(func() {
			kl.SetServing(true)
			Eventually(func(g Gomega) {
				_, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "webapp1")
				g.Expect(code).To(Equal(0))
			}).WithTimeout(90 * time.Second).Should(Succeed())
		})
		Eventually(func(g Gomega) {
			out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "webapp1")
			g.Expect(code).To(Equal(1))
			g.Expect(line(out, "admission path serving")).To(HavePrefix("FAIL  admission path serving: Service gmsa-system/gmsa-webhook has no ready endpoint"))
		}).Should(Succeed())
	})

	It("fails 'GmsaStack Ready' while no webhook replica is ready, and passes again once they are", func() {
		kl.SetServing(false)
		Eventually(func(g Gomega) {
			out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "webapp1")
			g.Expect(code).To(Equal(1))
			g.Expect(line(out, "GmsaStack Ready")).To(HavePrefix("FAIL  GmsaStack Ready: Ready=False, reason "))
			g.Expect(out).To(MatchRegexp(`fix: kubectl describe gmsastack default; see docs/troubleshooting.md#[a-z]+`))
		}).Should(Succeed())
		kl.SetServing(true)
		Eventually(func(g Gomega) {
			out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "webapp1")
			g.Expect(code).To(Equal(0), out)
		}).WithTimeout(90 * time.Second).Should(Succeed())
	})

	It("warns when the webhook certificate expires within 7 days", func() {
		patchStack(`{"spec":{"certificates":{"duration":"72h","renewBefore":"24h"}}}`)
		Eventually(func(g Gomega) {
			out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "webapp1")
			g.Expect(code).To(Equal(1))
			g.Expect(line(out, "webhook certificate valid")).To(MatchRegexp(`^WARN  webhook certificate valid: Secret gmsa-system/gmsa-webhook-tls expires \S+, in 7[01]h\d+m0s \(less than 7 days\)$`))
		}).Should(Succeed())
		patchStack(`{"spec":{"certificates":null}}`)
		Eventually(func(g Gomega) {
			out, _, code := kubectlGmsa("", "doctor", "--service-account", "apps/default", "--credspec", "webapp1")
			g.Expect(code).To(Equal(0), out)
			g.Expect(line(out, "webhook certificate valid")).To(MatchRegexp(`^PASS  webhook certificate valid: Secret gmsa-system/gmsa-webhook-tls expires \S+, in 36[45] days$`))
		}).WithTimeout(90 * time.Second).Should(Succeed())
	})

	It("in Policy mode, checks the policies and their bindings, skips the certificate, and still finds excluded namespaces", func() {
		patchStack(`{"spec":{"admission":{"mode":"Policy"}}}`)
		Eventually(func(g Gomega) {
			stackReady(g, gmsav1alpha1.AdmissionModePolicy)
			out, _, code := kubectlGmsa(podYAML("web", "webapp1", windowsOnly), "doctor", "-f", "-")
			g.Expect(code).To(Equal(0), out)
			g.Expect(line(out, "GmsaStack installed")).To(Equal(`PASS  GmsaStack installed: GmsaStack "default", admission mode Policy, namespace gmsa-system`))
			g.Expect(line(out, "admission path serving")).To(Equal("PASS  admission path serving: MutatingAdmissionPolicy and ValidatingAdmissionPolicies bound"))
			g.Expect(line(out, "webhook certificate valid")).To(Equal("SKIP  webhook certificate valid: not applicable in Policy mode (no webhook)"))
		}).WithTimeout(90 * time.Second).Should(Succeed())

		manifest := strings.Replace(podYAML("web", "webapp1", windowsOnly), "namespace: apps", "namespace: no-gmsa", 1)
		out, _, code := kubectlGmsa(manifest, "doctor", "-f", "-")
		Expect(code).To(Equal(1))
		Expect(line(out, "namespace not excluded")).To(HavePrefix("FAIL  namespace not excluded: namespace no-gmsa is labelled windows.k8s.io/disabled=true"))
	})

	migrateSpecs()
})

func ptrTo[T any](v T) *T { return &v }

// handMadeCredSpec is a GMSACredentialSpec as New-CredentialSpec and the
// Kubernetes docs write it, made by hand.
func handMadeCredSpec(name, domain string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"credspec": map[string]any{
			"CmsPlugins": []any{"ActiveDirectory"},
			"DomainJoinConfig": map[string]any{
				"Sid": "S-1-5-21-2126449477-2524075714-3094792973", "MachineAccountName": "WebApp1",
				"Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a", "DnsTreeName": domain, "DnsName": domain, "NetBiosName": "CONTOSO",
			},
			"ActiveDirectoryConfig": map[string]any{"GroupManagedServiceAccounts": []any{
				map[string]any{"Name": "WebApp1", "Scope": domain}, map[string]any{"Name": "WebApp1", "Scope": "CONTOSO"},
			}},
		},
	}}
	u.SetAPIVersion("windows.k8s.io/v1")
	u.SetKind("GMSACredentialSpec")
	u.SetName(name)
	return u
}
