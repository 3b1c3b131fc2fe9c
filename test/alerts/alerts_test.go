// Package alerts_test checks the alert rules of config/prometheus against
// the real thing: a kube-apiserver, etcd and kube-controller-manager, the
// operator's manager, and the webhook served by the test playing the
// kubelet (as test/stack does: the API server calls it on the Service's
// loopback ClusterIP, port 443, so the suite needs root). A small
// Prometheus (prometheus_test.go) scrapes the manager's and the webhook's
// /metrics endpoints over HTTP at simulated 30-second intervals and
// evaluates the rules with Prometheus's own rules package and PromQL
// engine. For each alert the test makes its condition hold (an account not
// Ready, the webhook stopped, a short-lived certificate, denied pods, the
// manager stopped) and checks that it fires only once it has held for the
// rule's "for", and not for a shorter time or a healthy state.
//
// The rules assume the jobs the shipped monitors set: gmsa-operator for the
// manager, gmsa-webhook for the webhook pods; the scrape targets here carry
// those jobs.
package alerts_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/internal/manifest"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const (
	operatorImage = "gmsa-operator:alerts"
	webhookNS     = "gmsa-system"
	appNS         = "apps"
	scrape        = 30 * time.Second
)

func TestAlerts(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "Alert rules against a running manager and webhook")
}

var _ = Describe("the alert rules", Ordered, func() {
	var (
		root    string
		env     *harness.Env
		k8s     client.Client
		kl      *harness.Kubelet
		stopMgr func() error
		prom    *prometheus
		webhook *target
		ctx     = context.Background()
	)

	BeforeAll(func() {
		logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
		if os.Geteuid() != 0 {
			Skip("the API server calls the webhook on the Service's port 443: serving it on loopback needs root")
		}
		var err error
		root, err = harness.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.113.0/24", NoCredentialSpecCRD: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() error { return env.Stop() })
		k8s = env.Client

		By("starting the manager with its metrics on loopback")
		managerMetrics, err := harness.FreeLoopbackAddr()
		Expect(err).NotTo(HaveOccurred())
		mgr, err := harness.RunManager(env.Config, manager.Options{MetricsAddr: managerMetrics, OperatorImage: operatorImage})
		Expect(err).NotTo(HaveOccurred())
		stopMgr = mgr.Stop
		DeferCleanup(stopMgr)

		By("playing the kubelet for the webhook pods, with the webhook's metrics on loopback")
		webhookMetrics, err := harness.FreeLoopbackAddr()
		Expect(err).NotTo(HaveOccurred())
		kl = harness.StartKubelet(harness.KubeletOptions{Client: k8s, Config: env.Config, Namespace: webhookNS,
			PodIP: "192.0.2.113", Images: []string{operatorImage}, Log: GinkgoWriter, MetricsAddr: webhookMetrics})
		DeferCleanup(kl.Stop)

		By("installing a GmsaStack in Webhook mode and a GmsaAccount, both Ready")
		create(ctx, k8s, `
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: gmsa.io/v1alpha1
kind: GmsaStack
metadata: {name: default}
spec:
  admission: {mode: Webhook}
---
apiVersion: gmsa.io/v1alpha1
kind: GmsaAccount
metadata: {name: webapp1}
spec:
  credentialSpec:
    accountName: WebApp1
    domain: {dnsName: contoso.com, netBiosName: CONTOSO, dnsTreeName: contoso.com,
             guid: 244818ae-87ac-4fcd-92ec-e79e5252348a, sid: S-1-5-21-2126449477-2524075714-3094792973}
  serviceAccounts:
  - {namespace: apps, name: default}
`)
		Eventually(stackReady(ctx, k8s)).Should(BeTrue())
		Eventually(accountReady(ctx, k8s, "webapp1")).Should(Equal(metav1.ConditionTrue))
		Eventually(func() error {
			return k8s.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "default"}, &corev1.ServiceAccount{})
		}).Should(Succeed())

		By("loading the rules of config/prometheus/prometheusrule.yaml into a Prometheus that scrapes both")
		rulesFile := filepath.Join(GinkgoT().TempDir(), "rules.yaml")
		Expect(os.WriteFile(rulesFile, rulesOf(root), 0o600)).To(Succeed())
		webhook = &target{job: "gmsa-webhook", instance: webhookMetrics, url: "http://" + webhookMetrics + "/metrics"}
		prom, err = newPrometheus(rulesFile, time.Now(),
			&target{job: "gmsa-operator", instance: managerMetrics, url: "http://" + managerMetrics + "/metrics"}, webhook)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(prom.Close)
	})

	It("parse and validate with Prometheus's rulefmt, and give each alert a severity, a summary and a runbook section that exists", func() {
		groups, errs := rulefmt.Parse(rulesOf(root), false, model.UTF8Validation, parser.NewParser(parser.Options{}), promslog.NewNopLogger())
		Expect(errs).To(BeEmpty())
		doc, err := os.ReadFile(filepath.Join(root, "docs", "troubleshooting.md"))
		Expect(err).NotTo(HaveOccurred())
		anchors := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(doc), -1) {
			anchors[slug(m[1])] = true
		}
		var names []string
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				names = append(names, r.Alert)
				Expect(r.Labels["severity"]).To(BeElementOf("critical", "warning"), r.Alert)
				Expect(r.Annotations["summary"]).NotTo(BeEmpty(), r.Alert)
				url := r.Annotations["runbook_url"]
				Expect(url).To(HavePrefix("https://github.com/gmsa-operator/gmsa-operator/blob/main/docs/troubleshooting.md#"), r.Alert)
				Expect(anchors).To(HaveKey(url[strings.Index(url, "#")+1:]), r.Alert+": the runbook section")
			}
		}
		Expect(names).To(ConsistOf("GmsaOperatorDown", "GmsaWebhookDown", "GmsaStackNotReady", "GmsaAccountNotReady",
			"GmsaCertificateExpiringSoon", "GmsaAdmissionDenialsRising"))
	})

	It("fire nothing for 20 minutes of a healthy stack", func() {
		Expect(prom.Run(20*time.Minute, scrape, func(firing map[string][]labels.Labels) {
			Expect(firing).To(BeEmpty())
		})).To(Succeed())
		for _, m := range []string{"gmsa_stack_ready", "gmsa_stack_admission_mode", "gmsa_stack_certificate_not_after_timestamp_seconds",
			"gmsa_account_ready", "gmsa_webhook_certificate_not_after_timestamp_seconds"} {
			Expect(prom.seen).To(HaveKey(m))
		}
	})

	It("GmsaAdmissionDenialsRising: not for 3 denied pods, fires for 8 in 10 minutes, resolves once denials stop", func() {
		deny := func(n int) {
			for i := 0; i < n; i++ {
				err := k8s.Create(ctx, gmsaPod("nosuch"))
				Expect(err).To(MatchError(ContainSubstring("does not exist")))
			}
		}
		By("an admitted gMSA pod, which is no denial")
		Expect(k8s.Create(ctx, gmsaPod("webapp1"))).To(Succeed())
		deny(1)
		Expect(prom.Step(scrape)).To(Succeed())
		deny(2)
		Expect(prom.Run(5*time.Minute, scrape, func(firing map[string][]labels.Labels) {
			Expect(firing).NotTo(HaveKey("GmsaAdmissionDenialsRising"))
		})).To(Succeed())
		deny(5)
		Expect(runUntilFiring(prom, "GmsaAdmissionDenialsRising", 4*time.Minute)).To(ContainElement(
			WithTransform(func(l labels.Labels) string { return l.Get("path") }, Equal("/mutate"))))
		Expect(prom.Run(12*time.Minute, scrape, nil)).To(Succeed())
		Expect(prom.Firing()).NotTo(HaveKey("GmsaAdmissionDenialsRising"))
	})

	It("GmsaAccountNotReady: not for 10 minutes not Ready, fires after 15, resolves when the account goes", func() {
		create(ctx, k8s, `
apiVersion: gmsa.io/v1alpha1
kind: GmsaAccount
metadata: {name: legacy}
spec:
  credentialSpec:
    existing: {name: legacy-spec}
  serviceAccounts:
  - {namespace: apps}
`)
		Eventually(accountReady(ctx, k8s, "legacy")).Should(Equal(metav1.ConditionFalse))
		neverFor := func(d time.Duration) {
			Expect(prom.Run(d, scrape, func(firing map[string][]labels.Labels) {
				Expect(firing).NotTo(HaveKey("GmsaAccountNotReady"))
			})).To(Succeed())
		}
		neverFor(10 * time.Minute)

		By("the credspec it names appears: Ready, before the 15 minutes")
		credspec := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec", "metadata": map[string]any{"name": "legacy-spec"},
			"credspec": map[string]any{
				"CmsPlugins": []any{"ActiveDirectory"},
				"DomainJoinConfig": map[string]any{"Sid": "S-1-5-21-2126449477-2524075714-3094792973", "MachineAccountName": "Legacy",
					"Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a", "DnsTreeName": "contoso.com", "DnsName": "contoso.com", "NetBiosName": "CONTOSO"},
				"ActiveDirectoryConfig": map[string]any{"GroupManagedServiceAccounts": []any{
					map[string]any{"Name": "Legacy", "Scope": "contoso.com"}, map[string]any{"Name": "Legacy", "Scope": "CONTOSO"}}},
			},
		}}
		Expect(k8s.Create(ctx, credspec)).To(Succeed())
		Eventually(accountReady(ctx, k8s, "legacy")).Should(Equal(metav1.ConditionTrue))
		neverFor(10 * time.Minute)

		By("the credspec goes: not Ready again, for 14 minutes and then for longer than 15")
		Expect(k8s.Delete(ctx, credspec)).To(Succeed())
		Eventually(accountReady(ctx, k8s, "legacy")).Should(Equal(metav1.ConditionFalse))
		neverFor(14 * time.Minute)
		Expect(runUntilFiring(prom, "GmsaAccountNotReady", 2*time.Minute)).To(ConsistOf(
			WithTransform(func(l labels.Labels) string { return l.Get("name") }, Equal("legacy"))))

		By("deleting the account removes its series, and the alert resolves")
		Expect(k8s.Delete(ctx, &gmsav1alpha1.GmsaAccount{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}})).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Name: "legacy"}, &gmsav1alpha1.GmsaAccount{}))
		}).Should(BeTrue())
		Eventually(func() error {
			series, _, err := scrapeOnce(&target{url: prom.targets[0].url})
			if err != nil {
				return err
			}
			for _, l := range series {
				if l.Get(labels.MetricName) == "gmsa_account_ready" && l.Get("name") == "legacy" {
					return errFound
				}
			}
			return nil
		}).Should(Succeed())
		Expect(prom.Step(scrape)).To(Succeed())
		Expect(prom.Firing()).NotTo(HaveKey("GmsaAccountNotReady"))
	})

	It("GmsaCertificateExpiringSoon: fires once the stack rotates to 1-hour certificates, for what the operator keeps and what the webhook serves", func() {
		Expect(k8s.Patch(ctx, &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"certificates":{"duration":"1h"}}}`)))).To(Succeed())
		By("waiting until the webhook serves a certificate of at most an hour")
		Eventually(func() float64 {
			series, values, err := scrapeOnce(webhook)
			if err != nil {
				return 0
			}
			for i, l := range series {
				if l.Get(labels.MetricName) == "gmsa_webhook_certificate_not_after_timestamp_seconds" {
					return values[i] - float64(time.Now().Unix())
				}
			}
			return 0
		}).Should(And(BeNumerically(">", 0), BeNumerically("<=", time.Hour.Seconds()+60)))
		Eventually(stackReady(ctx, k8s)).Should(BeTrue())

		firing := runUntilFiring(prom, "GmsaCertificateExpiringSoon", 11*time.Minute)
		var which []string
		for _, l := range firing {
			which = append(which, l.Get("job")+"/"+l.Get("certificate"))
		}
		Expect(which).To(ContainElements("gmsa-operator/serving", "gmsa-operator/ca", "gmsa-webhook/"))
		Expect(which).NotTo(ContainElement("gmsa-operator/previous-ca"), "the CA of the year-long certificates")
	})

	It("GmsaWebhookDown and GmsaStackNotReady: not after 4 minutes with every webhook replica down, fire after 5 and 15, resolve when it serves again", func() {
		kl.SetServing(false)
		Eventually(stackReady(ctx, k8s)).Should(BeFalse())
		Expect(prom.Run(4*time.Minute, scrape, func(firing map[string][]labels.Labels) {
			Expect(firing).NotTo(HaveKey("GmsaWebhookDown"))
		})).To(Succeed())
		Expect(runUntilFiring(prom, "GmsaWebhookDown", 2*time.Minute)).To(ConsistOf(
			WithTransform(func(l labels.Labels) string { return l.Get("name") + " " + l.Get("severity") }, Equal("default critical"))))
		Expect(prom.Firing()).NotTo(HaveKey("GmsaStackNotReady"))
		Expect(runUntilFiring(prom, "GmsaStackNotReady", 11*time.Minute)).To(ConsistOf(
			WithTransform(func(l labels.Labels) string { return l.Get("name") }, Equal("default"))))

		kl.SetServing(true)
		Eventually(stackReady(ctx, k8s)).Should(BeTrue())
		Expect(prom.Step(scrape)).To(Succeed())
		Expect(prom.Firing()).NotTo(HaveKey("GmsaWebhookDown"))
		Expect(prom.Firing()).NotTo(HaveKey("GmsaStackNotReady"))
	})

	It("GmsaOperatorDown: not after 4 minutes without a manager, fires after 5", func() {
		Expect(prom.Firing()).NotTo(HaveKey("GmsaOperatorDown"))
		Expect(stopMgr()).To(Succeed())
		Expect(prom.Run(4*time.Minute, scrape, func(firing map[string][]labels.Labels) {
			Expect(firing).NotTo(HaveKey("GmsaOperatorDown"))
		})).To(Succeed())
		Expect(runUntilFiring(prom, "GmsaOperatorDown", 2*time.Minute)).To(HaveLen(1))
	})

	It("the dashboard's queries parse, and name only metrics the manager and the webhook served", func() {
		b, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "dashboard.json"))
		Expect(err).NotTo(HaveOccurred())
		var dash struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		Expect(json.Unmarshal(b, &dash)).To(Succeed())
		Expect(dash.Panels).NotTo(BeEmpty())
		p := parser.NewParser(parser.Options{})
		for _, panel := range dash.Panels {
			Expect(panel.Targets).NotTo(BeEmpty(), panel.Title)
			for _, t := range panel.Targets {
				expr, err := p.ParseExpr(t.Expr)
				Expect(err).NotTo(HaveOccurred(), panel.Title)
				parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
					if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "up" {
						Expect(prom.seen).To(HaveKey(vs.Name), panel.Title)
					}
					return nil
				})
			}
		}
	})
})

var errFound = errorString("the deleted account's series is still served")

type errorString string

func (e errorString) Error() string { return string(e) }

// runUntilFiring steps the clock until alert fires, at most for d, and
// returns the labels of its firing instances.
func runUntilFiring(p *prometheus, alert string, d time.Duration) []labels.Labels {
	GinkgoHelper()
	for elapsed := time.Duration(0); elapsed < d; elapsed += scrape {
		Expect(p.Step(scrape)).To(Succeed())
		if f := p.Firing()[alert]; len(f) > 0 {
			return f
		}
	}
	Fail(alert + " did not fire within " + d.String())
	return nil
}

// rulesOf returns the spec of config/prometheus/prometheusrule.yaml: a
// Prometheus rules file.
func rulesOf(root string) []byte {
	GinkgoHelper()
	b, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "prometheusrule.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var obj struct {
		Kind string         `json:"kind"`
		Spec map[string]any `json:"spec"`
	}
	Expect(yaml.Unmarshal(b, &obj)).To(Succeed())
	Expect(obj.Kind).To(Equal("PrometheusRule"))
	out, err := yaml.Marshal(obj.Spec)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// slug is the anchor GitHub gives a Markdown heading.
func slug(heading string) string {
	s := strings.ToLower(strings.TrimSpace(heading))
	s = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(s, "")
	return strings.ReplaceAll(s, " ", "-")
}

func create(ctx context.Context, c client.Client, docs string) {
	GinkgoHelper()
	objs, err := manifest.Decode(docs)
	Expect(err).NotTo(HaveOccurred())
	for _, o := range objs {
		Expect(c.Create(ctx, o)).To(Succeed())
	}
}

func stackReady(ctx context.Context, c client.Client) func() bool {
	return func() bool {
		s := &gmsav1alpha1.GmsaStack{}
		if err := c.Get(ctx, types.NamespacedName{Name: "default"}, s); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(s.Status.Conditions, gmsav1alpha1.ConditionReady) && s.Status.ObservedGeneration == s.Generation
	}
}

func accountReady(ctx context.Context, c client.Client, name string) func() metav1.ConditionStatus {
	return func() metav1.ConditionStatus {
		a := &gmsav1alpha1.GmsaAccount{}
		if err := c.Get(ctx, types.NamespacedName{Name: name}, a); err != nil {
			return ""
		}
		if r := meta.FindStatusCondition(a.Status.Conditions, gmsav1alpha1.ConditionReady); r != nil && a.Status.ObservedGeneration == a.Generation {
			return r.Status
		}
		return ""
	}
}

// gmsaPod is a pod of the apps namespace's default service account that
// names credspec.
func gmsaPod(credspec string) *corev1.Pod {
	name := credspec
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, GenerateName: name + "-"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{GMSACredentialSpecName: &name}},
			Containers:      []corev1.Container{{Name: "app", Image: "app:1"}},
			NodeSelector:    map[string]string{"kubernetes.io/os": "windows"},
		},
	}
}
