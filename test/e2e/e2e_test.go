//go:build e2e

// Package e2e_test runs the operator's image on a real one-node cluster
// (kubelet, containerd, kube-proxy; hack/e2e/up.sh starts it, make e2e runs
// this suite): installed with Helm and with config/default, the user's story
// with real pods, and day-2 operations under a steady load of admissions.
//
// It is built only with -tags e2e, so `go test ./...` never compiles it.
// Specs of known controller defects carry the label "known-defect" and are
// left out unless E2E_GINKGO_FLAGS selects them; their figures are what the
// defect report quotes.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
)

const (
	pauseImage      = "gmsa-e2e.invalid/pause:1"
	operatorNS      = "gmsa-operator-system"
	managerName     = "gmsa-operator-controller-manager"
	leaseName       = "gmsa-operator.gmsa.io"
	webhookNS       = "gmsa-system"
	webhookName     = "gmsa-webhook"
	credspecName    = "webapp1"
	helmNS          = "gmsa-helm"
	helmRelease     = "gmsa-operator"
	loadRate        = 8 // gMSA pod creations per second
	teardownDelayOK = 4500 * time.Millisecond
)

type config struct {
	kubeconfig, kubectl, ctr, ctrdSock, dir, image, helm, root string
}

var (
	cfg       config
	k8s       client.Client
	clientset *kubernetes.Clientset
	// image2 is the operator image under a second tag, for image changes.
	image2 string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(3 * time.Minute)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "gmsa-operator on a real one-node cluster")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter)))
	cfg = config{
		kubeconfig: os.Getenv("E2E_KUBECONFIG"), kubectl: os.Getenv("E2E_KUBECTL"), ctr: os.Getenv("E2E_CTR"),
		ctrdSock: os.Getenv("E2E_CTRD_SOCK"), dir: os.Getenv("E2E_DIR"), image: os.Getenv("E2E_IMAGE"), helm: os.Getenv("HELM"),
	}
	if cfg.kubeconfig == "" || cfg.image == "" {
		Skip("no end-to-end cluster: run make e2e (E2E_KUBECONFIG and E2E_IMAGE unset)")
	}
	wd, err := os.Getwd()
	Expect(err).NotTo(HaveOccurred())
	cfg.root = filepath.Join(wd, "..", "..")
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	rc.QPS, rc.Burst = 200, 400
	k8s, err = client.New(rc, client.Options{Scheme: scheme.New()})
	Expect(err).NotTo(HaveOccurred())
	clientset, err = kubernetes.NewForConfig(rc)
	Expect(err).NotTo(HaveOccurred())
	image2 = cfg.image + "-b"
	ctr("images", "tag", "--force", cfg.image, image2)
})

var _ = AfterSuite(func() {
	reportMu.Lock()
	defer reportMu.Unlock()
	fmt.Fprintln(os.Stderr, "\n==== e2e figures ====")
	for _, l := range reportLines {
		fmt.Fprintln(os.Stderr, l)
	}
})

var _ = Describe("gmsa-operator on a real node", Ordered, func() {
	ctx := context.Background()

	Context("Helm", func() {
		It("installs, upgrades (image change) and uninstalls the chart, keeping the CRDs", func() {
			if cfg.helm == "" {
				Skip("HELM is unset")
			}
			repo, tag, _ := strings.Cut(cfg.image, ":")
			_, tag2, _ := strings.Cut(image2, ":")
			chart := filepath.Join(cfg.root, "charts", "gmsa-operator")
			helm := func(args ...string) string {
				GinkgoHelper()
				return run(cfg.helm, append(args, "--kubeconfig", cfg.kubeconfig)...)
			}
			begin := time.Now()
			helm("install", helmRelease, chart, "-n", helmNS, "--create-namespace",
				"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "image.pullPolicy=Never",
				"--wait", "--timeout", "3m")
			report(fmt.Sprintf("helm install --wait: %.1fs", time.Since(begin).Seconds()))
			dep := &appsv1.Deployment{}
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: helmNS, Name: helmRelease}, dep)).To(Succeed())
			Expect(dep.Status.AvailableReplicas).To(BeNumerically(">=", 1))
			Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(cfg.image))

			begin = time.Now()
			helm("upgrade", helmRelease, chart, "-n", helmNS, "--reuse-values", "--set", "image.tag="+tag2, "--wait", "--timeout", "3m")
			report(fmt.Sprintf("helm upgrade (image change) --wait: %.1fs", time.Since(begin).Seconds()))
			Eventually(func(g Gomega) {
				pods := &corev1.PodList{}
				g.Expect(k8s.List(ctx, pods, client.InNamespace(helmNS))).To(Succeed())
				g.Expect(pods.Items).NotTo(BeEmpty())
				for _, p := range pods.Items {
					g.Expect(p.Spec.Containers[0].Image).To(Equal(image2), "pod %s", p.Name)
					g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning), "pod %s", p.Name)
				}
			}).Should(Succeed())
			env := map[string]string{}
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: helmNS, Name: helmRelease}, dep)).To(Succeed())
			for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			Expect(env).To(HaveKeyWithValue("RELATED_IMAGE_WEBHOOK", image2), "the webhook image follows the operator image")

			helm("uninstall", helmRelease, "-n", helmNS, "--wait", "--timeout", "3m")
			Eventually(func() bool { return gone(ctx, dep) }).Should(BeTrue())
			for _, crd := range []string{"gmsastacks.gmsa.io", "gmsaaccounts.gmsa.io"} {
				kubectl("get", "crd", crd) // kept (helm.sh/resource-policy: keep)
			}
			kubectl("delete", "namespace", helmNS, "--wait=true", "--timeout=2m")
		})
	})

	Context("kustomize (config/default) and the user's story", func() {
		It("installs config/default: 2 manager replicas under leader election, running the image", func() {
			overlay := GinkgoT().TempDir()
			abs, err := filepath.Abs(filepath.Join(cfg.root, "config", "default"))
			Expect(err).NotTo(HaveOccurred())
			defaultDir, err := filepath.Rel(overlay, abs) // kustomize takes no absolute base
			Expect(err).NotTo(HaveOccurred())
			repo, tag, _ := strings.Cut(cfg.image, ":")
			// The base's images: override does not reach RELATED_IMAGE_WEBHOOK
			// (config/default copies it before this overlay runs): patch it too.
			kustomization := fmt.Sprintf(`resources:
- %s
images:
- name: gmsa-operator/gmsa-operator
  newName: %s
  newTag: %s
patches:
- target: {kind: Deployment, name: %s}
  patch: |
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: %s, namespace: %s}
    spec:
      replicas: 2
      template:
        spec:
          containers:
          - name: manager
            imagePullPolicy: Never
            env:
            - name: RELATED_IMAGE_WEBHOOK
              value: %s
`, defaultDir, repo, tag, managerName, managerName, operatorNS, cfg.image)
			Expect(os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644)).To(Succeed())
			kubectl("apply", "--server-side", "--force-conflicts", "-k", overlay)
			kubectl("rollout", "status", "-n", operatorNS, "deployment/"+managerName, "--timeout=3m")
			dep := &appsv1.Deployment{}
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: managerName}, dep)).To(Succeed())
			Expect(dep.Status.ReadyReplicas).To(Equal(int32(2)))
			Eventually(func(g Gomega) {
				lease := &coordinationv1.Lease{}
				g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: leaseName}, lease)).To(Succeed())
				g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).To(HavePrefix(managerName))
			}).Should(Succeed())
		})

		It("records the leader election in an Event (core events API) without being refused", func() {
			Eventually(func(g Gomega) {
				events := &corev1.EventList{}
				g.Expect(k8s.List(ctx, events, client.InNamespace(operatorNS))).To(Succeed())
				found := false
				for _, e := range events.Items {
					if e.Reason == "LeaderElection" && strings.Contains(e.Message, "became leader") {
						found = true
					}
				}
				g.Expect(found).To(BeTrue(), "no LeaderElection event in %s", operatorNS)
			}, 60*time.Second).Should(Succeed())
			logs := kubectl("logs", "-n", operatorNS, "-l", "app.kubernetes.io/component=manager", "--tail=-1", "--prefix")
			Expect(logs).NotTo(ContainSubstring(`cannot create resource "events"`))
		})

		It("makes the samples' GmsaStack Ready with 2 webhook pods running as 65532 on a read-only root filesystem", func() {
			begin := time.Now()
			kubectl("apply", "-f", filepath.Join(cfg.root, "config", "samples", "gmsa_v1alpha1_gmsastack.yaml"))
			waitStackReady(ctx)
			report(fmt.Sprintf("samples GmsaStack applied -> Ready: %.1fs", time.Since(begin).Seconds()))

			By("the operator's namespace enforces PSA restricted, and a recreated webhook pod is admitted under it")
			ns := &corev1.Namespace{}
			Expect(k8s.Get(ctx, types.NamespacedName{Name: webhookNS}, ns)).To(Succeed())
			Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
			kubectl("delete", "pod", "-n", webhookNS, webhookPods(ctx)[0].Name)
			Eventually(func() int { return len(readyPods(webhookPods(ctx))) }).Should(Equal(2))
			waitStackReady(ctx)

			pods := webhookPods(ctx)
			Expect(pods).To(HaveLen(2))
			for _, p := range pods {
				Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
				Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
				cs := p.Status.ContainerStatuses[0]
				Expect(cs.Ready).To(BeTrue())
				Expect(cs.Image).To(ContainSubstring(strings.Split(cfg.image, ":")[0]))
				pid := containerPID(cs.ContainerID)
				Expect(procUIDs(pid)).To(Equal("65532 65532 65532 65532"), "uids of pod %s's process", p.Name)
				Expect(rootMountReadOnly(pid)).To(BeTrue(), "root filesystem of pod %s", p.Name)
			}
		})

		It("makes the samples' GmsaAccount Ready", func() {
			if _, err := kubectlErr("create", "namespace", "team-a"); err != nil {
				Expect(err.Error()).To(ContainSubstring("AlreadyExists"))
			}
			kubectl("apply", "-f", filepath.Join(cfg.root, "config", "samples", "gmsa_v1alpha1_gmsaaccount.yaml"))
			Eventually(func(g Gomega) {
				a := &gmsav1alpha1.GmsaAccount{}
				g.Expect(k8s.Get(ctx, types.NamespacedName{Name: credspecName}, a)).To(Succeed())
				g.Expect(condition(a.Status.Conditions, "Ready")).To(Equal(metav1.ConditionTrue))
			}).Should(Succeed())
		})

		It("fills in the credspec of a pod created through the API server, which calls the webhook through kube-proxy", func() {
			p, err := dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
			Expect(err).NotTo(HaveOccurred())
			var got, want map[string]any
			Expect(json.Unmarshal([]byte(credSpecContent(p)), &got)).To(Succeed())
			raw := kubectl("get", "gmsacredentialspecs.windows.k8s.io", credspecName, "-o", "jsonpath={.credspec}")
			Expect(json.Unmarshal([]byte(raw), &want)).To(Succeed())
			Expect(got).To(Equal(want))
			// The Service's ClusterIP is served by kube-proxy's rules.
			Expect(run("iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES")).To(ContainSubstring(webhookNS + "/" + webhookName))
		})

		It("denies a pod whose service account is not listed, with the webhook's message", func() {
			if _, err := kubectlErr("create", "serviceaccount", "intruder", "-n", "default"); err != nil {
				Expect(err.Error()).To(ContainSubstring("AlreadyExists"))
			}
			_, err := dryRunCreate(ctx, gmsaPod("default", "intruder", credspecName))
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(`service account "intruder" is not authorized to ` + "`use`" + ` GMSA cred spec "webapp1"`))
		})

		It("measures admission latency through the API server and kube-proxy: gMSA pods against pods without gMSA fields", func() {
			const n = 300
			var withWebhook, baseline []time.Duration
			for i := 0; i < n; i++ {
				begin := time.Now()
				_, err := dryRunCreate(ctx, plainPod("default"))
				Expect(err).NotTo(HaveOccurred())
				baseline = append(baseline, time.Since(begin))
				begin = time.Now()
				p, err := dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
				Expect(err).NotTo(HaveOccurred())
				Expect(credSpecContent(p)).NotTo(BeEmpty())
				withWebhook = append(withWebhook, time.Since(begin))
			}
			ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
			report(fmt.Sprintf("LATENCY %d server-dry-run pod creations each, interleaved, one client:", n))
			report("LATENCY | pods | p50 | p99 |")
			report(fmt.Sprintf("LATENCY | no gMSA fields (no webhook call) | %s | %s |", ms(percentile(baseline, 0.5)), ms(percentile(baseline, 0.99))))
			report(fmt.Sprintf("LATENCY | gMSA credspec name (mutate + validate webhooks) | %s | %s |", ms(percentile(withWebhook, 0.5)), ms(percentile(withWebhook, 0.99))))
		})

		It("admits a pod without gMSA fields while every webhook pod is down", func() {
			// The manager would scale the webhook back up: stop it first.
			kubectl("scale", "-n", operatorNS, "deployment/"+managerName, "--replicas=0")
			Eventually(func() int { return len(managerPods(ctx)) }).Should(BeZero())
			kubectl("scale", "-n", webhookNS, "deployment/"+webhookName, "--replicas=0")
			// Terminating pods keep serving through their shutdown delay:
			// wait until they are gone.
			Eventually(func(g Gomega) {
				pods := &corev1.PodList{}
				g.Expect(k8s.List(ctx, pods, client.InNamespace(webhookNS))).To(Succeed())
				g.Expect(pods.Items).To(BeEmpty())
			}).Should(Succeed())

			_, err := dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
			Expect(err).To(HaveOccurred(), "a gMSA pod must not be admitted without the webhook (failurePolicy Fail)")
			p := plainPod("default")
			Expect(k8s.Create(ctx, p)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
				g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
			}).Should(Succeed())
			Expect(k8s.Delete(ctx, p)).To(Succeed())

			kubectl("scale", "-n", operatorNS, "deployment/"+managerName, "--replicas=2")
			kubectl("rollout", "status", "-n", operatorNS, "deployment/"+managerName, "--timeout=3m")
			waitStackReady(ctx)
			Eventually(func() int { return len(readyPods(webhookPods(ctx))) }).Should(Equal(2))
		})
	})

	Context("day 2 under load", func() {
		// Each scenario runs under a steady stream of gMSA pod creations and
		// must fail none of them.
		expectNoFailure := func(l *loadGen, scenario string) {
			GinkgoHelper()
			ok, failed := l.Stop(scenario)
			Expect(ok).To(BeNumerically(">", 0))
			Expect(failed).To(BeZero(), "failed admissions during %s", scenario)
		}
		// settle waits until the stack is Ready with 2 ready webhook pods and
		// no terminating one (those serve through their shutdown delay), and
		// a little longer.
		settle := func() {
			GinkgoHelper()
			waitStackReady(ctx)
			Eventually(func(g Gomega) {
				pods := &corev1.PodList{}
				g.Expect(k8s.List(ctx, pods, client.InNamespace(webhookNS))).To(Succeed())
				g.Expect(pods.Items).To(HaveLen(2))
				g.Expect(readyPods(pods.Items)).To(HaveLen(2))
			}).Should(Succeed())
			time.Sleep(3 * time.Second)
		}

		It("deletes a webhook pod", func() {
			l := startLoad(loadRate)
			time.Sleep(3 * time.Second)
			victim := webhookPods(ctx)[0].Name
			kubectl("delete", "pod", "-n", webhookNS, victim)
			settle()
			expectNoFailure(l, "webhook pod deleted")
		})

		It("evicts a webhook pod through its PodDisruptionBudget", func() {
			l := startLoad(loadRate)
			time.Sleep(3 * time.Second)
			victim := webhookPods(ctx)[0]
			Eventually(func() error {
				return clientset.PolicyV1().Evictions(webhookNS).Evict(ctx, &policyv1.Eviction{
					ObjectMeta: metav1.ObjectMeta{Name: victim.Name, Namespace: webhookNS},
				})
			}, 60*time.Second, time.Second).Should(Succeed())
			settle()
			expectNoFailure(l, "webhook pod evicted (PDB)")
		})

		It("changes the webhook's replicas (2 -> 3 -> 2)", func() {
			l := startLoad(loadRate)
			time.Sleep(3 * time.Second)
			patchStack(ctx, `{"spec":{"webhook":{"replicas":3}}}`)
			Eventually(func() int { return len(readyPods(webhookPods(ctx))) }).Should(Equal(3))
			patchStack(ctx, `{"spec":{"webhook":{"replicas":null}}}`)
			settle()
			expectNoFailure(l, "webhook replicas 2 -> 3 -> 2")
		})

		It("upgrades the operator's image: the webhook rolls to it, and back", func() {
			// The webhook runs the operator's own image (RELATED_IMAGE_WEBHOOK);
			// spec.webhook.image names a foreign (upstream-compatible) image
			// and changes how it is run, so an upgrade changes the manager's.
			setOperatorImage := func(img string) {
				GinkgoHelper()
				kubectl("patch", "deployment", "-n", operatorNS, managerName, "--type=strategic", "-p",
					fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"manager","image":%q,"env":[{"name":"RELATED_IMAGE_WEBHOOK","value":%q}]}]}}}}`, img, img))
				kubectl("rollout", "status", "-n", operatorNS, "deployment/"+managerName, "--timeout=3m")
				Eventually(func(g Gomega) {
					pods := webhookPods(ctx)
					g.Expect(readyPods(pods)).To(HaveLen(2))
					g.Expect(pods).To(HaveLen(2))
					for _, p := range pods {
						g.Expect(p.Spec.Containers[0].Image).To(Equal(img))
					}
				}).Should(Succeed())
				settle()
			}
			l := startLoad(loadRate)
			time.Sleep(3 * time.Second)
			setOperatorImage(image2)
			setOperatorImage(cfg.image)
			expectNoFailure(l, "operator image upgraded, webhook rolled, and back")
		})

		It("kills the leading manager's process: the other replica takes the Lease and reconciles", func() {
			lease := &coordinationv1.Lease{}
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: leaseName}, lease)).To(Succeed())
			holder := ptr.Deref(lease.Spec.HolderIdentity, "")
			leaderPod, _, _ := strings.Cut(holder, "_")
			var pid int
			for _, p := range managerPods(ctx) {
				if p.Name == leaderPod {
					pid = containerPID(p.Status.ContainerStatuses[0].ContainerID)
				}
			}
			Expect(pid).NotTo(BeZero(), "leader %q is not a running manager pod", holder)

			l := startLoad(loadRate)
			time.Sleep(3 * time.Second)
			begin := time.Now()
			run("kill", "-KILL", fmt.Sprint(pid))
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: leaseName}, lease)).To(Succeed())
				g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).NotTo(Equal(holder))
			}, 2*time.Minute).Should(Succeed())
			report(fmt.Sprintf("leader killed -> Lease taken by %s after %.1fs", ptr.Deref(lease.Spec.HolderIdentity, ""), time.Since(begin).Seconds()))

			// Reconciliation resumes: a deleted webhook Service comes back,
			// once (nothing duplicated).
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: webhookNS, Name: webhookName}}
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(svc), svc)).To(Succeed())
			oldUID := svc.UID
			// Deleting the Service would fail admissions (no endpoints) for
			// a moment: measure the load before it.
			expectNoFailure(l, "leading manager killed")
			Expect(k8s.Delete(ctx, svc)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(svc), svc)).To(Succeed())
				g.Expect(svc.UID).NotTo(Equal(oldUID))
			}).Should(Succeed())
			deps := &appsv1.DeploymentList{}
			Expect(k8s.List(ctx, deps, client.InNamespace(webhookNS))).To(Succeed())
			Expect(deps.Items).To(HaveLen(1))
			settle()
		})

		It("restarts kube-apiserver: no failed admission once it is back, and the stack ends Ready", func() {
			l := startLoad(loadRate)
			time.Sleep(3 * time.Second)
			// Requests sent before the API server is back do not count.
			never := time.Now().Add(24 * time.Hour)
			l.countFrom.Store(&never)
			down := restartAPIServer()
			back := time.Now()
			l.countFrom.Store(&back)
			report(fmt.Sprintf("kube-apiserver restart: %.1fs until it serves pods again", down.Seconds()))
			time.Sleep(10 * time.Second)
			waitStackReady(ctx)
			expectNoFailure(l, "after a kube-apiserver restart")
			kubectl("rollout", "status", "-n", operatorNS, "deployment/"+managerName, "--timeout=3m")
		})

		It("rotates the shortest-lived certificate the API accepts through the kubelet's real Secret update", func() {
			// Defect 1 of issue 11: with 1m/30s and the kubelet's default
			// syncFrequency, pods served an expired certificate (124 of 1,200
			// failed). The API now refuses a renewBefore under 2m. 3m/2m: a
			// new CA at once (the old one outlives the new lifetimes), a
			// renewal a minute later that the kubelet must deliver before the
			// first certificate expires at 3m; the load runs past that.
			caBundle := func() string {
				mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
				Expect(k8s.Get(ctx, types.NamespacedName{Name: webhookName}, mwc)).To(Succeed())
				return string(mwc.Webhooks[0].ClientConfig.CABundle)
			}
			oldCA := caBundle()
			patchStack(ctx, `{"spec":{"certificates":{"duration":"3m","renewBefore":"2m"}}}`)
			l := startLoad(loadRate)
			time.Sleep(200 * time.Second)
			ok, failed := l.Stop("certificate rotation, duration 3m renewBefore 2m (a CA rollover, then a renewal)")
			// Defect 2 of issue 11 (the old CA left caBundle while pods in
			// their shutdown delay still served its certificate) would fail
			// admissions in this window: the CA rolled over at its start.
			newCA := caBundle()
			Expect(newCA).NotTo(BeEmpty())
			Expect(newCA).NotTo(ContainSubstring(strings.TrimSpace(oldCA)), "the CA rolled over, and the old one left caBundle")
			patchStack(ctx, `{"spec":{"certificates":null}}`)
			settle()
			Expect(ok).To(BeNumerically(">", 0))
			Expect(failed).To(BeZero())
		})

		It("deletes the GmsaStack: the webhook configurations go first, the webhook keeps serving for the teardown delay", func() {
			mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookName}}
			vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookName}}
			dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: webhookNS, Name: webhookName}}
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: webhookNS, Name: webhookName}}
			stack := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
			Expect(k8s.Delete(ctx, stack)).To(Succeed())
			var tConfigs, tDeployment, tService time.Time
			Eventually(func() bool {
				now := time.Now()
				if tConfigs.IsZero() && gone(ctx, mwc) && gone(ctx, vwc) {
					tConfigs = now
				}
				if tDeployment.IsZero() && (gone(ctx, dep) || dep.DeletionTimestamp != nil) {
					tDeployment = now
				}
				if tService.IsZero() && (gone(ctx, svc) || svc.DeletionTimestamp != nil) {
					tService = now
				}
				return !tConfigs.IsZero() && !tDeployment.IsZero() && !tService.IsZero()
			}, 2*time.Minute, 10*time.Millisecond).Should(BeTrue())
			report(fmt.Sprintf("GmsaStack deleted: Deployment deleted %v and Service %v after the webhook configurations (want >= the 5s teardown delay)",
				tDeployment.Sub(tConfigs).Round(time.Millisecond), tService.Sub(tConfigs).Round(time.Millisecond)))
			Expect(tDeployment.Sub(tConfigs)).To(BeNumerically(">=", teardownDelayOK))
		})
	})

	Context("installed from a catalog by OLM, upgraded through its channel, uninstalled", olmSpecs)
})

func condition(conds []metav1.Condition, t string) metav1.ConditionStatus {
	for _, c := range conds {
		if c.Type == t {
			return c.Status
		}
	}
	return metav1.ConditionUnknown
}

func waitStackReady(ctx context.Context) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		s := &gmsav1alpha1.GmsaStack{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Name: "default"}, s)).To(Succeed())
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		g.Expect(condition(s.Status.Conditions, "Ready")).To(Equal(metav1.ConditionTrue), "conditions: %v", s.Status.Conditions)
	}).Should(Succeed())
}

func patchStack(ctx context.Context, patch string) {
	GinkgoHelper()
	s := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	Expect(k8s.Patch(ctx, s, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

// webhookPods are the webhook Deployment's pods that are not being deleted.
func webhookPods(ctx context.Context) []corev1.Pod {
	return livePods(ctx, webhookNS, nil)
}

func managerPods(ctx context.Context) []corev1.Pod {
	return livePods(ctx, operatorNS, client.MatchingLabels{"app.kubernetes.io/component": "manager"})
}

func livePods(ctx context.Context, ns string, sel client.MatchingLabels) []corev1.Pod {
	GinkgoHelper()
	pods := &corev1.PodList{}
	opts := []client.ListOption{client.InNamespace(ns)}
	if sel != nil {
		opts = append(opts, sel)
	}
	Expect(k8s.List(ctx, pods, opts...)).To(Succeed())
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

func readyPods(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out
}
