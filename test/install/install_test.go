// Package install_test checks the three install paths against a real API
// server: config/default (kustomize), the Helm chart (default values and a
// values file with everything set) and the OLM bundle's manifests are each
// applied with server-side dry-run, and every object must be accepted. It
// also lints the chart, checks that its output is deterministic, and that
// the chart's CRDs and RBAC equal config/.
package install_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	validator "github.com/operator-framework/api/pkg/validation/interfaces"

	"github.com/gmsa-operator/gmsa-operator/internal/manifest"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const namespace = "gmsa-operator-system"

var (
	env  *harness.Env
	root string
	helm string
)

func TestInstall(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Install paths suite")
}

var _ = BeforeSuite(func() {
	var err error
	root, err = harness.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	helm = os.Getenv("HELM")
	if helm == "" {
		helm = filepath.Join(root, "bin", "tools", "helm-v3.22.0")
	}
	_, err = os.Stat(helm)
	Expect(err).NotTo(HaveOccurred(), "helm not found at %s: run `make helm` (or make test)", helm)
	olm, err := harness.OLMCRDs()
	Expect(err).NotTo(HaveOccurred())
	env, err = harness.Start(harness.Options{NoControllerManager: true, ServiceCIDR: "127.0.109.0/24", ExtraCRDPaths: []string{olm}})
	Expect(err).NotTo(HaveOccurred())
	Expect(env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})).To(Succeed())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

func command(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "%s %s: %s", name, strings.Join(args, " "), stderr.String())
	return string(out)
}

func kubectl(args ...string) string {
	return command(filepath.Join(harness.AssetsDir(root), "kubectl"), args...)
}

func helmTemplate(args ...string) string {
	return command(helm, append([]string{"template", "gmsa-operator", "charts/gmsa-operator", "--namespace", namespace, "--kube-version", harness.KubeVersion}, args...)...)
}

// decode splits a multi-document YAML stream into objects.
func decode(stream string) []*unstructured.Unstructured {
	objs, err := manifest.Decode(stream)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return objs
}

// dryRunApply applies every object with server-side apply in dry-run mode:
// the API server validates each fully (schema, CEL rules, admission) and
// stores nothing.
func dryRunApply(objs []*unstructured.Unstructured) {
	ExpectWithOffset(1, objs).NotTo(BeEmpty())
	for _, u := range objs {
		//nolint:staticcheck // Patch with client.Apply applies unstructured objects as they are.
		err := env.Client.Patch(context.Background(), u.DeepCopy(), client.Apply, client.FieldOwner("install-test"), client.DryRunAll, client.ForceOwnership)
		ExpectWithOffset(1, err).NotTo(HaveOccurred(), "%s %s/%s was refused", u.GetKind(), u.GetNamespace(), u.GetName())
	}
}

func kinds(objs []*unstructured.Unstructured) []string {
	var ks []string
	for _, u := range objs {
		ks = append(ks, u.GetKind())
	}
	return ks
}

var _ = Describe("install paths", func() {
	It("config/default: every object is accepted by the API server", func() {
		objs := decode(kubectl("kustomize", "config/default"))
		Expect(kinds(objs)).To(ContainElements("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"))
		dryRunApply(objs)
		for _, u := range objs {
			if u.GetKind() != "Deployment" {
				continue
			}
			Expect(u.GetNamespace()).To(Equal(namespace))
			c, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			image := c[0].(map[string]any)["image"]
			env := c[0].(map[string]any)["env"].([]any)
			Expect(env).To(ContainElement(map[string]any{"name": "RELATED_IMAGE_WEBHOOK", "value": image}), "the webhook image must default to the manager's")
		}
	})

	It("the Helm chart lints clean", func() {
		out := command(helm, "lint", "--strict", "charts/gmsa-operator", "--kube-version", harness.KubeVersion)
		Expect(out).To(ContainSubstring("0 chart(s) failed"))
		out = command(helm, "lint", "--strict", "charts/gmsa-operator", "--kube-version", harness.KubeVersion, "-f", "charts/gmsa-operator/ci/full-values.yaml")
		Expect(out).To(ContainSubstring("0 chart(s) failed"))
	})

	It("the Helm chart with default values: deterministic, and every object is accepted", func() {
		first := helmTemplate()
		Expect(helmTemplate()).To(Equal(first), "two renders differ: the chart must not use random values or lookup")
		objs := decode(first)
		Expect(kinds(objs)).To(ContainElements("CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"))
		Expect(kinds(objs)).NotTo(ContainElement("GmsaStack"))
		dryRunApply(objs)
		for _, u := range objs {
			if u.GetKind() == "CustomResourceDefinition" {
				Expect(u.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
			}
		}
	})

	It("the Helm chart with every value set: every object, the GmsaStack included, is accepted", func() {
		objs := decode(helmTemplate("-f", "charts/gmsa-operator/ci/full-values.yaml"))
		Expect(kinds(objs)).To(ContainElement("GmsaStack"))
		// prometheus-operator's kinds: the monitoring spec checks them.
		dryRunApply(slices.DeleteFunc(slices.Clone(objs), func(u *unstructured.Unstructured) bool {
			return slices.Contains([]string{"ServiceMonitor", "PodMonitor", "PrometheusRule"}, u.GetKind())
		}))
		for _, u := range objs {
			if u.GetKind() == "CustomResourceDefinition" {
				Expect(u.GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"))
			}
		}
		Expect(kinds(decode(helmTemplate("--set", "crds.enabled=false")))).NotTo(ContainElement("CustomResourceDefinition"))
	})

	It("monitoring (config/prometheus, the chart's monitoring values): off by default, every object when asked, the same rules and dashboard everywhere", func() {
		monitoringKinds := []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"}
		Expect(kinds(decode(kubectl("kustomize", "config/default")))).NotTo(ContainElements(monitoringKinds))
		Expect(kinds(decode(helmTemplate()))).NotTo(ContainElements(monitoringKinds))
		Expect(kinds(decode(helmTemplate()))).NotTo(ContainElement("ConfigMap"))

		rule, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "prometheusrule.yaml"))
		Expect(err).NotTo(HaveOccurred())
		wantRules := decode(string(rule))[0].Object["spec"]
		dashboard, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "dashboard.json"))
		Expect(err).NotTo(HaveOccurred())
		// check finds every monitoring object, the rules and the dashboard
		// as config/prometheus has them, and dry-runs the objects the API
		// server knows without prometheus-operator's CRDs.
		check := func(objs []*unstructured.Unstructured) {
			GinkgoHelper()
			Expect(kinds(objs)).To(ContainElements(append(monitoringKinds, "ConfigMap", "Service")))
			var plain []*unstructured.Unstructured
			for _, u := range objs {
				switch u.GetKind() {
				case "PrometheusRule":
					Expect(u.Object["spec"]).To(Equal(wantRules), "the rules differ from config/prometheus: run make chart")
				case "ConfigMap":
					Expect(u.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
					data, _, _ := unstructured.NestedStringMap(u.Object, "data")
					Expect(data["gmsa-operator.json"]).To(MatchJSON(dashboard), "the dashboard differs from config/prometheus: run make chart")
				case "ServiceMonitor", "PodMonitor":
					Expect(u.Object).To(HaveKeyWithValue("spec", Not(BeEmpty())))
				}
				if !slices.Contains(monitoringKinds, u.GetKind()) {
					plain = append(plain, u)
				}
			}
			dryRunApply(plain)
		}
		By("the chart with every monitoring value on (ci/full-values.yaml)")
		check(decode(helmTemplate("-f", "charts/gmsa-operator/ci/full-values.yaml")))
		By("config/default with the config/prometheus component, in an overlay as the user guide shows")
		overlay, err := os.MkdirTemp(filepath.Join(root, "config"), ".monitoring-overlay-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, overlay)
		Expect(os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(
			"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../default]\ncomponents: [../prometheus]\n"), 0o600)).To(Succeed())
		objs := decode(kubectl("kustomize", overlay))
		check(objs)
		for _, u := range objs {
			if slices.Contains(append(monitoringKinds, "ConfigMap"), u.GetKind()) || u.GetName() == "gmsa-operator-controller-manager-metrics" {
				Expect(u.GetNamespace()).To(Equal(namespace), "%s %s", u.GetKind(), u.GetName())
			}
		}
	})

	It("the Helm chart refuses values its schema does not know, naming them", func() {
		for set, want := range map[string]string{
			"replicas=2":                            "replicas",
			"monitoring.serviceMonitor.enable=true": "enable",  // a typo of enabled
			"monitoring.prometheusRule.enabled=yes": "enabled", // not a boolean
			"monitoring.dashboard.labels.grafana=":  "",        // accepted: an empty label value is valid
		} {
			cmd := exec.Command(helm, "template", "x", "charts/gmsa-operator", "--kube-version", harness.KubeVersion, "--set", set)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if want == "" {
				Expect(err).NotTo(HaveOccurred(), "%s: %s", set, out)
				continue
			}
			Expect(err).To(HaveOccurred(), "%s was accepted", set)
			Expect(string(out)).To(ContainSubstring(want), set)
		}
	})

	It("the OLM bundle passes operator-framework's validators with no errors", func() {
		bundle, err := manifests.GetBundleFromDir(filepath.Join(root, "bundle"))
		Expect(err).NotTo(HaveOccurred())
		Expect(bundle.CSV).NotTo(BeNil())
		Expect(bundle.Package).To(Equal("gmsa-operator"))
		optional := map[string]string{"k8s-version": harness.KubeVersion}
		for name, v := range map[string]validator.Validator{
			"OperatorHubV2":         validation.OperatorHubV2Validator,
			"StandardCapabilities":  validation.StandardCapabilitiesValidator,
			"StandardCategories":    validation.StandardCategoriesValidator,
			"GoodPractices":         validation.GoodPracticesValidator,
			"AlphaDeprecatedAPIs":   validation.AlphaDeprecatedAPIsValidator,
			"Bundle":                validation.BundleValidator,
			"ClusterServiceVersion": validation.ClusterServiceVersionValidator,
		} {
			for _, r := range v.Validate(bundle, optional) {
				for _, w := range r.Warnings {
					GinkgoWriter.Printf("%s warning: %v\n", name, w)
				}
				Expect(r.Errors).To(BeEmpty(), "%s: %v", name, r.Errors)
			}
		}
		csv := bundle.CSV
		Expect(csv.Spec.InstallModes).To(ContainElement(HaveField("Type", BeEquivalentTo("AllNamespaces"))))
		Expect(csv.Spec.RelatedImages).To(HaveLen(2))
		Expect(csv.Annotations).To(HaveKey("alm-examples"))
		Expect(csv.Spec.Icon).NotTo(BeEmpty())
	})

	It("the OLM bundle's manifests are accepted by the API server, and equal config/", func() {
		var objs []*unstructured.Unstructured
		files, err := filepath.Glob(filepath.Join(root, "bundle", "manifests", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		for _, f := range files {
			b, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			objs = append(objs, decode(string(b))...)
		}
		Expect(kinds(objs)).To(ContainElements("ClusterServiceVersion", "CustomResourceDefinition"))
		for _, u := range objs {
			if u.GetKind() == "ClusterServiceVersion" {
				u.SetNamespace(namespace)
			}
		}
		dryRunApply(objs)

		By("the bundle's CRDs and permissions are those of config/default")
		rendered := decode(kubectl("kustomize", "config/default"))
		var csv *unstructured.Unstructured
		for _, u := range objs {
			if u.GetKind() == "ClusterServiceVersion" {
				csv = u
			}
		}
		clusterPerms, _, _ := unstructured.NestedSlice(csv.Object, "spec", "install", "spec", "clusterPermissions")
		var bundleRules []any
		for _, p := range clusterPerms {
			bundleRules = append(bundleRules, p.(map[string]any)["rules"].([]any)...)
		}
		for _, r := range rendered {
			switch {
			case r.GetKind() == "CustomResourceDefinition":
				found := false
				for _, u := range objs {
					if u.GetKind() == r.GetKind() && u.GetName() == r.GetName() {
						found = true
						Expect(apiequality.Semantic.DeepEqual(u.Object["spec"], r.Object["spec"])).To(BeTrue(), "bundle CRD %s is stale: run make bundle", r.GetName())
					}
				}
				Expect(found).To(BeTrue(), "the bundle lacks CRD %s", r.GetName())
			case r.GetKind() == "ClusterRole" && strings.HasSuffix(r.GetName(), "manager-role"):
				for _, rule := range r.Object["rules"].([]any) {
					Expect(bundleRules).To(ContainElement(rule), "the bundle lacks a rule of config/rbac: run make bundle")
				}
			}
		}
	})

	It("the chart's CRDs and manager rules equal config/", func() {
		chart := map[string]*unstructured.Unstructured{}
		var rules any
		for _, u := range decode(helmTemplate()) {
			switch {
			case u.GetKind() == "CustomResourceDefinition":
				chart[u.GetName()] = u
			case u.GetKind() == "ClusterRole" && strings.HasSuffix(u.GetName(), "-manager"):
				rules = u.Object["rules"]
			}
		}
		files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		for _, f := range files {
			b, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			want := decode(string(b))[0]
			got, ok := chart[want.GetName()]
			Expect(ok).To(BeTrue(), "the chart lacks CRD %s", want.GetName())
			Expect(apiequality.Semantic.DeepEqual(got.Object["spec"], want.Object["spec"])).To(BeTrue(), "CRD %s in the chart is stale: run make chart", want.GetName())
		}
		b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(rules).To(Equal(decode(string(b))[0].Object["rules"]), "the chart's manager rules are stale: run make chart")
	})
})
