//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// The OLM story: the operator's bundle, at HEAD and as a previous version,
// served from a file-based catalog, installed, upgraded and uninstalled the
// way an OperatorHub user does it, by OLM v0 (installed by hack/e2e/up.sh).
const (
	olmNS          = "operator-lifecycle-manager" // OLM's own namespace (the chart's catalog_namespace)
	olmOperatorNS  = "gmsa-operator"              // where the Subscription installs the operator
	catalogName    = "gmsa-e2e-catalog"
	packageName    = "gmsa-operator"
	prevVersion    = "0.0.9"
	imageRepoLocal = "gmsa-e2e.invalid"
)

// The rule the previous version's GmsaStack CRD lacks, so that the CRD's
// upgrade can be seen: the minimum of spec.certificates.duration. Read from
// HEAD's CRD: its message, and a patch that breaks that rule only.
var upgradedRule, durationPatch string

var (
	gvkCSV          = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v1alpha1", Kind: "ClusterServiceVersion"}
	gvkSubscription = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v1alpha1", Kind: "Subscription"}
	gvkInstallPlan  = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v1alpha1", Kind: "InstallPlan"}
	gvkCatalog      = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v1alpha1", Kind: "CatalogSource"}
)

// olmBundle is one version of the operator's bundle as the catalog serves it.
type olmBundle struct {
	csvName, version, image, bundleRef string
}

// kubectlIn runs kubectl with stdin and returns its output, failing the spec on error.
func kubectlIn(stdin string, args ...string) string {
	GinkgoHelper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cfg.kubectl, append([]string{"--kubeconfig", cfg.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	Expect(cmd.Run()).To(Succeed(), "kubectl %s: %s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String()
}

func e2eBin(name string) string { return filepath.Join(cfg.root, "bin", "e2e", name) }

// buildImage assembles an image with hack/ociimage, imports it into the
// node's containerd with its digest as a name, and returns repo@digest:
// OLM forces imagePullPolicy Always on catalog and bundle images named by
// tag, and nothing can be pulled here.
func buildImage(dir, repo, tag string, args ...string) string {
	GinkgoHelper()
	tarball := filepath.Join(dir, strings.ReplaceAll(repo, "/", "_")+"-"+tag+".tar")
	tagged := imageRepoLocal + "/" + repo + ":" + tag
	run(e2eBin("ociimage"), append([]string{"-arch", runtime.GOARCH, "-tag", tagged, "-out", tarball}, args...)...)
	ctr("images", "import", "--local", "--digests", "--base-name", imageRepoLocal+"/"+repo, tarball)
	// containerd converts the tarball's manifest: its digest is the one
	// the node knows the image by.
	var digest string
	out := ctr("images", "ls", "name=="+tagged)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == tagged {
			digest = f[2]
		}
	}
	Expect(digest).To(HavePrefix("sha256:"), "ctr images ls name==%s: %s", tagged, out)
	ref := imageRepoLocal + "/" + repo + "@" + digest
	Expect(ctr("images", "ls", "-q")).To(ContainSubstring(ref))
	return ref
}

// writeBundle writes the bundle of bundle/ with the operator image replaced
// by image and, for a previous version, another name and version, and a
// GmsaStack CRD without the minimum of spec.certificates.duration (which
// sets upgradedRule and durationPatch).
func writeBundle(dir, version, image string, previous bool) (csvName string) {
	GinkgoHelper()
	src := filepath.Join(cfg.root, "bundle")
	Expect(os.MkdirAll(filepath.Join(dir, "manifests"), 0o755)).To(Succeed())
	Expect(os.MkdirAll(filepath.Join(dir, "metadata"), 0o755)).To(Succeed())
	b, err := os.ReadFile(filepath.Join(src, "metadata", "annotations.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(filepath.Join(dir, "metadata", "annotations.yaml"), b, 0o644)).To(Succeed())

	entries, err := os.ReadDir(filepath.Join(src, "manifests"))
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(src, "manifests", e.Name()))
		Expect(err).NotTo(HaveOccurred())
		var obj map[string]any
		Expect(yaml.Unmarshal(raw, &obj)).To(Succeed())
		switch obj["kind"] {
		case "ClusterServiceVersion":
			headVersion := obj["spec"].(map[string]any)["version"].(string)
			// Every image of the CSV is the operator's (manager, webhook,
			// relatedImages, containerImage).
			text := strings.ReplaceAll(string(raw), "gmsa-operator/gmsa-operator:v"+headVersion, image)
			Expect(text).NotTo(ContainSubstring("gmsa-operator/gmsa-operator:"))
			Expect(yaml.Unmarshal([]byte(text), &obj)).To(Succeed())
			meta := obj["metadata"].(map[string]any)
			if previous {
				meta["name"] = strings.Replace(meta["name"].(string), headVersion, version, 1)
				obj["spec"].(map[string]any)["version"] = version
			} else {
				Expect(version).To(Equal(headVersion))
			}
			csvName = meta["name"].(string)
		case "CustomResourceDefinition":
			if previous && obj["metadata"].(map[string]any)["name"] == "gmsastacks.gmsa.io" {
				certs := digMap(obj, "spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec",
					"properties", "certificates", "properties")
				duration := digMap(certs, "duration")
				dMin, msg := minimumRule(duration)
				rMin, _ := minimumRule(digMap(certs, "renewBefore"))
				Expect(rMin).To(BeNumerically("<", dMin))
				upgradedRule = msg
				// Under the duration's minimum, above renewBefore's.
				durationPatch = fmt.Sprintf(`{"spec":{"certificates":{"duration":%q,"renewBefore":%q}}}`,
					((dMin + rMin) / 2).String(), rMin.String())
				delete(duration, "x-kubernetes-validations")
			}
		}
		out, err := yaml.Marshal(obj)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dir, "manifests", e.Name()), out, 0o644)).To(Succeed())
	}
	Expect(csvName).NotTo(BeEmpty())
	return csvName
}

// minimumRule is the minimum a duration field's CEL rule
// "duration(self) >= duration('X')" sets, and the rule's message.
func minimumRule(field map[string]any) (time.Duration, string) {
	GinkgoHelper()
	rules, _ := field["x-kubernetes-validations"].([]any)
	for _, r := range rules {
		rule := r.(map[string]any)
		m := regexp.MustCompile(`^duration\(self\) >= duration\('([^']+)'\)$`).FindStringSubmatch(fmt.Sprint(rule["rule"]))
		if m == nil {
			continue
		}
		d, err := time.ParseDuration(m[1])
		Expect(err).NotTo(HaveOccurred())
		return d, fmt.Sprint(rule["message"])
	}
	Fail(fmt.Sprintf("no minimum rule in %v", rules))
	return 0, ""
}

// digMap walks maps (string keys) and lists (int indexes) to a map.
func digMap(obj any, path ...any) map[string]any {
	GinkgoHelper()
	cur := obj
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			Expect(ok).To(BeTrue(), "not a map at %q", k)
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			Expect(ok).To(BeTrue(), "not a list at %d", k)
			Expect(len(l)).To(BeNumerically(">", k))
			cur = l[k]
		}
	}
	m, ok := cur.(map[string]any)
	Expect(ok).To(BeTrue(), "not a map at the end of %v", path)
	return m
}

// catalogEntry is the bundle's olm.bundle document of a file-based catalog:
// what `opm render` writes for it (the package, the provided APIs, the CSV's
// metadata), with no bundle objects, so OLM unpacks the bundle image.
func catalogEntry(bundleDir, ref string) (doc map[string]any, csvName, version string) {
	GinkgoHelper()
	entries, err := os.ReadDir(filepath.Join(bundleDir, "manifests"))
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(bundleDir, "manifests", e.Name()))
		Expect(err).NotTo(HaveOccurred())
		var csv map[string]any
		Expect(yaml.Unmarshal(raw, &csv)).To(Succeed())
		if csv["kind"] != "ClusterServiceVersion" {
			continue
		}
		meta := csv["metadata"].(map[string]any)
		spec := csv["spec"].(map[string]any)
		csvName, version = meta["name"].(string), spec["version"].(string)
		props := []any{map[string]any{"type": "olm.package", "value": map[string]any{"packageName": packageName, "version": version}}}
		for _, crd := range digMap(spec, "customresourcedefinitions")["owned"].([]any) {
			c := crd.(map[string]any)
			group := strings.SplitN(c["name"].(string), ".", 2)[1]
			props = append(props, map[string]any{"type": "olm.gvk", "value": map[string]any{"group": group, "kind": c["kind"], "version": c["version"]}})
		}
		md := map[string]any{"annotations": meta["annotations"]}
		for _, k := range []string{"apiservicedefinitions", "customresourcedefinitions", "description", "displayName", "installModes", "keywords", "links", "maintainers", "maturity", "minKubeVersion", "provider"} {
			if v, ok := spec[k]; ok {
				key := map[string]string{"apiservicedefinitions": "apiServiceDefinitions", "customresourcedefinitions": "crdDescriptions"}[k]
				if key == "" {
					key = k
				}
				md[key] = v
			}
		}
		props = append(props, map[string]any{"type": "olm.csv.metadata", "value": md})
		var related []any
		for _, r := range spec["relatedImages"].([]any) {
			related = append(related, r)
		}
		related = append(related, map[string]any{"name": "", "image": ref})
		return map[string]any{"schema": "olm.bundle", "name": csvName, "package": packageName, "image": ref,
			"properties": props, "relatedImages": related}, csvName, version
	}
	Fail("no CSV in " + bundleDir)
	return nil, "", ""
}

func getU(ctx context.Context, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u)
	return u, err
}

func nestedString(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

// approveInstallPlanFor approves the Subscription's pending InstallPlan,
// which must install csvName.
func approveInstallPlanFor(ctx context.Context, sub, csvName string) string {
	GinkgoHelper()
	var plan string
	Eventually(func(g Gomega) {
		s, err := getU(ctx, gvkSubscription, olmOperatorNS, sub)
		g.Expect(err).NotTo(HaveOccurred())
		plan = nestedString(s, "status", "installPlanRef", "name")
		g.Expect(plan).NotTo(BeEmpty(), "subscription status: %v", s.Object["status"])
		ip, err := getU(ctx, gvkInstallPlan, olmOperatorNS, plan)
		g.Expect(err).NotTo(HaveOccurred())
		names, _, _ := unstructured.NestedStringSlice(ip.Object, "spec", "clusterServiceVersionNames")
		g.Expect(names).To(ContainElement(csvName))
		g.Expect(nestedString(ip, "status", "phase")).To(Equal("RequiresApproval"))
	}).Should(Succeed())
	kubectl("patch", "installplan", "-n", olmOperatorNS, plan, "--type=merge", "-p", `{"spec":{"approved":true}}`)
	return plan
}

func waitCSVSucceeded(ctx context.Context, name string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		csv, err := getU(ctx, gvkCSV, olmOperatorNS, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(nestedString(csv, "status", "phase")).To(Equal("Succeeded"), "CSV %s: %s %s", name,
			nestedString(csv, "status", "reason"), nestedString(csv, "status", "message"))
	}, 5*time.Minute, time.Second).Should(Succeed())
}

// olmManagerPods are the operator's pods in the Subscription's namespace.
func olmManagerPods(ctx context.Context) []corev1.Pod {
	return livePods(ctx, olmOperatorNS, client.MatchingLabels{"app.kubernetes.io/component": "manager"})
}

// snapshot is what the upgrade must leave untouched.
type snapshot struct {
	stackUID, accountUID, credspecUID        types.UID
	stackGen, accountGen                     int64
	stackSpec, accountSpec, credspec, credRV string
}

func takeSnapshot(ctx context.Context) snapshot {
	GinkgoHelper()
	s := &gmsav1alpha1.GmsaStack{}
	Expect(k8s.Get(ctx, types.NamespacedName{Name: "default"}, s)).To(Succeed())
	a := &gmsav1alpha1.GmsaAccount{}
	Expect(k8s.Get(ctx, types.NamespacedName{Name: credspecName}, a)).To(Succeed())
	cs := &unstructured.Unstructured{}
	cs.SetGroupVersionKind(schema.GroupVersionKind{Group: "windows.k8s.io", Version: "v1", Kind: "GMSACredentialSpec"})
	Expect(k8s.Get(ctx, types.NamespacedName{Name: credspecName}, cs)).To(Succeed())
	ss, _ := json.Marshal(s.Spec)
	as, _ := json.Marshal(a.Spec)
	content, _ := json.Marshal(cs.Object["credspec"])
	return snapshot{
		stackUID: s.UID, accountUID: a.UID, credspecUID: cs.GetUID(), credRV: cs.GetResourceVersion(),
		stackGen: s.Generation, accountGen: a.Generation,
		stackSpec: string(ss), accountSpec: string(as), credspec: string(content),
	}
}

// olmSpecs is the OLM story; it runs after the kustomize story and the day-2
// scenarios, which leave the samples' GmsaStack deleted.
func olmSpecs() {
	ctx := context.Background()
	var (
		prev, head olmBundle
		catalogRef string
	)

	It("removes the config/default install first (one operator per cluster)", func() {
		if _, err := kubectlErr("get", "crd", "gmsastacks.gmsa.io"); err == nil {
			stack := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
			Eventually(func() bool { return gone(ctx, stack) }).Should(BeTrue())
			kubectl("delete", "gmsaaccounts", "--all", "--wait=true", "--timeout=2m")
		}
		kubectl("delete", "-k", filepath.Join(cfg.root, "config", "default"), "--ignore-not-found", "--wait=true", "--timeout=3m")
		for _, crd := range []string{"gmsastacks.gmsa.io", "gmsaaccounts.gmsa.io"} {
			Eventually(func() error { _, err := kubectlErr("get", "crd", crd); return err }).Should(HaveOccurred())
		}
	})

	It("builds the bundle of HEAD and a previous version, and a file-based catalog of both", func() {
		dir := GinkgoT().TempDir()
		repo, _, _ := strings.Cut(cfg.image, ":")
		// Two tags of the operator's image, so the upgrade rolls the manager
		// and the webhook to another image, as a release does.
		prev.image = repo + ":olm-v" + prevVersion
		ctr("images", "tag", "--force", cfg.image, prev.image)
		head.image = cfg.image

		var docs []map[string]any
		for _, b := range []*olmBundle{&prev, &head} {
			previous := b == &prev
			bdir := filepath.Join(dir, "bundle-"+map[bool]string{true: "prev", false: "head"}[previous])
			version := prevVersion
			if !previous {
				var csv map[string]any
				raw, err := os.ReadFile(filepath.Join(cfg.root, "bundle", "manifests", "gmsa-operator.clusterserviceversion.yaml"))
				Expect(err).NotTo(HaveOccurred())
				Expect(yaml.Unmarshal(raw, &csv)).To(Succeed())
				version = csv["spec"].(map[string]any)["version"].(string)
			}
			writeBundle(bdir, version, b.image, previous)
			// bundle.Dockerfile's layout and labels.
			args := []string{"-dir", filepath.Join(bdir, "manifests") + ":/manifests", "-dir", filepath.Join(bdir, "metadata") + ":/metadata"}
			ann := map[string]map[string]string{}
			raw, err := os.ReadFile(filepath.Join(bdir, "metadata", "annotations.yaml"))
			Expect(err).NotTo(HaveOccurred())
			Expect(yaml.Unmarshal(raw, &ann)).To(Succeed())
			for k, v := range ann["annotations"] {
				args = append(args, "-label", k+"="+v)
			}
			b.bundleRef = buildImage(dir, "gmsa-operator-bundle", "v"+version, args...)
			doc, name, v := catalogEntry(bdir, b.bundleRef)
			b.csvName, b.version = name, v
			docs = append(docs, doc)
		}
		Expect(prev.csvName).NotTo(Equal(head.csvName))

		ann := map[string]map[string]string{}
		raw, err := os.ReadFile(filepath.Join(cfg.root, "bundle", "metadata", "annotations.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(yaml.Unmarshal(raw, &ann)).To(Succeed())
		channel := ann["annotations"]["operators.operatorframework.io.bundle.channel.default.v1"]
		Expect(channel).NotTo(BeEmpty())
		fbc := []map[string]any{
			{"schema": "olm.package", "name": packageName, "defaultChannel": channel},
			{"schema": "olm.channel", "package": packageName, "name": channel, "entries": []any{
				map[string]any{"name": prev.csvName},
				map[string]any{"name": head.csvName, "replaces": prev.csvName},
			}},
		}
		fbc = append(fbc, docs...)
		var buf bytes.Buffer
		for _, d := range fbc {
			b, err := json.MarshalIndent(d, "", "  ")
			Expect(err).NotTo(HaveOccurred())
			buf.Write(b)
			buf.WriteString("\n")
		}
		configs := filepath.Join(dir, "configs")
		Expect(os.MkdirAll(filepath.Join(configs, packageName), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(configs, packageName, "catalog.json"), buf.Bytes(), 0o644)).To(Succeed())
		run(e2eBin("opm"), "validate", configs)

		// The catalog image, as `opm generate dockerfile` describes it: opm
		// serving the catalog from a cache built in advance
		// (`opm serve --cache-only`), grpc_health_probe for the pod's probes,
		// a writable /tmp; the cache belongs to the user opm runs as.
		cache := filepath.Join(dir, "cache")
		run(e2eBin("opm"), "serve", configs, "--cache-dir="+cache, "--cache-only")
		catalogRef = buildImage(dir, "gmsa-operator-catalog", "e2e",
			"-file", e2eBin("opm")+":/bin/opm", "-file", e2eBin("grpc_health_probe")+":/bin/grpc_health_probe",
			"-dir", configs+":/configs", "-dir", cache+":/tmp/cache:1001", "-mkdir", "/tmp:1777", "-user", "1001",
			"-label", "operators.operatorframework.io.index.configs.v1=/configs",
			"-entrypoint", "/bin/opm", "-cmd", "serve", "-cmd", "/configs", "-cmd", "--cache-dir=/tmp/cache")
		report(fmt.Sprintf("OLM catalog %s: %s (%s) -> %s (%s)", catalogRef, prev.csvName, prev.bundleRef, head.csvName, head.bundleRef))
	})

	It("installs the previous version through a CatalogSource, an OperatorGroup and a Subscription", func() {
		begin := time.Now()
		kubectlIn(fmt.Sprintf(`apiVersion: operators.coreos.com/v1alpha1
kind: CatalogSource
metadata: {name: %s, namespace: %s}
spec:
  sourceType: grpc
  image: %s
  displayName: gmsa-operator e2e
  publisher: gmsa-operator
  grpcPodConfig: {securityContextConfig: restricted}
---
apiVersion: v1
kind: Namespace
metadata: {name: %s}
---
apiVersion: operators.coreos.com/v1
kind: OperatorGroup
metadata: {name: gmsa-operator, namespace: %s}
spec: {}
---
apiVersion: operators.coreos.com/v1alpha1
kind: Subscription
metadata: {name: gmsa-operator, namespace: %s}
spec:
  name: %s
  channel: candidate-v0
  source: %s
  sourceNamespace: %s
  startingCSV: %s
  installPlanApproval: Manual
`, catalogName, olmNS, catalogRef, olmOperatorNS, olmOperatorNS, olmOperatorNS, packageName, catalogName, olmNS, prev.csvName), "apply", "-f", "-")
		Eventually(func(g Gomega) {
			cs, err := getU(ctx, gvkCatalog, olmNS, catalogName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(nestedString(cs, "status", "connectionState", "lastObservedState")).To(Equal("READY"))
		}, 3*time.Minute, time.Second).Should(Succeed())
		report(fmt.Sprintf("OLM CatalogSource READY after %.1fs", time.Since(begin).Seconds()))
		approveInstallPlanFor(ctx, "gmsa-operator", prev.csvName)
		waitCSVSucceeded(ctx, prev.csvName)
		report(fmt.Sprintf("OLM Subscription -> CSV %s Succeeded: %.1fs", prev.csvName, time.Since(begin).Seconds()))

		pods := olmManagerPods(ctx)
		Expect(readyPods(pods)).NotTo(BeEmpty())
		for _, p := range pods {
			Expect(p.Spec.Containers[0].Image).To(Equal(prev.image))
		}
		for _, crd := range []string{"gmsastacks.gmsa.io", "gmsaaccounts.gmsa.io"} {
			kubectl("get", "crd", crd)
		}
	})

	It("creates a working stack from the CSV's alm-examples, applied as they are", func() {
		csv, err := getU(ctx, gvkCSV, olmOperatorNS, prev.csvName)
		Expect(err).NotTo(HaveOccurred())
		var examples []map[string]any
		Expect(json.Unmarshal([]byte(csv.GetAnnotations()["alm-examples"]), &examples)).To(Succeed())
		Expect(examples).NotTo(BeEmpty())
		begin := time.Now()
		for _, ex := range examples { // as the console creates each example
			b, err := json.Marshal(ex)
			Expect(err).NotTo(HaveOccurred())
			kubectlIn(string(b), "create", "-f", "-")
		}
		waitStackReady(ctx)
		report(fmt.Sprintf("OLM alm-examples created -> GmsaStack Ready: %.1fs", time.Since(begin).Seconds()))
		Eventually(func(g Gomega) {
			a := &gmsav1alpha1.GmsaAccount{}
			g.Expect(k8s.Get(ctx, types.NamespacedName{Name: credspecName}, a)).To(Succeed())
			g.Expect(condition(a.Status.Conditions, "Ready")).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())
		Eventually(func() int { return len(readyPods(webhookPods(ctx))) }).Should(Equal(2))
		for _, p := range webhookPods(ctx) {
			Expect(p.Spec.Containers[0].Image).To(Equal(prev.image))
		}
		// A new stack's webhook is registered only once the Service's
		// EndpointSlices list a ready endpoint and kube-proxy had
		// stack.RouteSettle to route it. Before that gate, 7-9 gMSA pods were
		// refused here over 0.1-0.5 s after Ready ("connect: connection
		// refused" from the Service's ClusterIP).
		ready := time.Now()
		refused, lastErr := 0, ""
		var p *corev1.Pod
		Eventually(func() error {
			var err error
			p, err = dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
			if err != nil {
				refused++
				lastErr = shortErr(err)
			}
			return err
		}, 60*time.Second, 50*time.Millisecond).Should(Succeed())
		report(fmt.Sprintf("OLM new stack: first gMSA pod admitted %v after the checks of Ready; %d refused before it%s",
			time.Since(ready).Round(time.Millisecond), refused, map[bool]string{true: " (last: " + lastErr + ")", false: ""}[refused > 0]))
		Expect(credSpecContent(p)).NotTo(BeEmpty())
		Expect(refused).To(BeZero(), "gMSA pods refused after the stack said Ready (last: %s)", lastErr)
	})

	It("upgrades through the channel under admission load: no failed admission, CRDs upgraded, objects untouched", func() {
		// The previous CRD lets a duration under 1m through.
		kubectl("patch", "gmsastack", "default", "--type=merge", "--dry-run=server", "-p", durationPatch)
		before := takeSnapshot(ctx)

		l := startLoad(loadRate)
		time.Sleep(3 * time.Second)
		begin := time.Now()
		approveInstallPlanFor(ctx, "gmsa-operator", head.csvName)
		waitCSVSucceeded(ctx, head.csvName)
		report(fmt.Sprintf("OLM upgrade approved -> CSV %s Succeeded: %.1fs", head.csvName, time.Since(begin).Seconds()))
		Eventually(func() bool {
			_, err := getU(ctx, gvkCSV, olmOperatorNS, prev.csvName)
			return err != nil
		}, 3*time.Minute, time.Second).Should(BeTrue(), "the replaced CSV is removed")
		Eventually(func(g Gomega) {
			pods := olmManagerPods(ctx)
			g.Expect(pods).NotTo(BeEmpty())
			for _, p := range pods {
				g.Expect(p.Spec.Containers[0].Image).To(Equal(head.image))
			}
			g.Expect(readyPods(pods)).To(HaveLen(len(pods)))
			wp := webhookPods(ctx)
			g.Expect(wp).To(HaveLen(2))
			g.Expect(readyPods(wp)).To(HaveLen(2))
			for _, p := range wp {
				g.Expect(p.Spec.Containers[0].Image).To(Equal(head.image))
			}
			all := &corev1.PodList{}
			g.Expect(k8s.List(ctx, all, client.InNamespace(webhookNS))).To(Succeed())
			g.Expect(all.Items).To(HaveLen(2), "no webhook pod still terminating")
		}, 3*time.Minute, time.Second).Should(Succeed())
		waitStackReady(ctx)
		report(fmt.Sprintf("OLM upgrade approved -> manager and webhook on the new image, stack Ready: %.1fs", time.Since(begin).Seconds()))
		time.Sleep(3 * time.Second)
		ok, failed := l.Stop("OLM upgrade " + prev.csvName + " -> " + head.csvName)
		Expect(ok).To(BeNumerically(">", 0))
		Expect(failed).To(BeZero(), "failed admissions during the OLM upgrade")

		By("the CRDs are the new version's")
		_, err := kubectlErr("patch", "gmsastack", "default", "--type=merge", "--dry-run=server", "-p", durationPatch)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(upgradedRule))

		By("the GmsaStack, the GmsaAccount and its credspec are untouched")
		after := takeSnapshot(ctx)
		Expect(after).To(Equal(before))
	})

	It("uninstalls as OLM users do (Subscription and CSV deleted): CRDs and credspecs stay; the GmsaStack's webhook stays until the stack goes", func() {
		kubectl("delete", "subscription", "-n", olmOperatorNS, "gmsa-operator")
		kubectl("delete", "clusterserviceversion", "-n", olmOperatorNS, head.csvName)
		Eventually(func() bool {
			dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: olmOperatorNS, Name: managerName}}
			return gone(ctx, dep)
		}, 2*time.Minute).Should(BeTrue(), "OLM removes the operator's Deployment")
		Eventually(func() []corev1.Pod { return olmManagerPods(ctx) }, 2*time.Minute).Should(BeEmpty())
		for _, crd := range []string{"gmsastacks.gmsa.io", "gmsaaccounts.gmsa.io", "gmsacredentialspecs.windows.k8s.io"} {
			kubectl("get", "crd", crd)
		}
		kubectl("get", "gmsacredentialspecs.windows.k8s.io", credspecName)

		By("the operator is gone, the GmsaStack remains: its webhook keeps serving")
		Eventually(func() int { return len(readyPods(webhookPods(ctx))) }).Should(Equal(2))
		p, err := dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
		Expect(err).NotTo(HaveOccurred())
		Expect(credSpecContent(p)).NotTo(BeEmpty())

		By("deleting that GmsaStack waits on its finalizer, which only the operator removes")
		kubectl("delete", "gmsastack", "default", "--wait=false")
		Consistently(func(g Gomega) {
			s := &gmsav1alpha1.GmsaStack{}
			g.Expect(k8s.Get(ctx, types.NamespacedName{Name: "default"}, s)).To(Succeed())
			g.Expect(s.DeletionTimestamp).NotTo(BeNil())
			g.Expect(s.Finalizers).To(ContainElement("gmsa.io/stack-cleanup"))
		}, 15*time.Second, time.Second).Should(Succeed())
		_, err = dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
		Expect(err).NotTo(HaveOccurred(), "the webhook still serves")

		By("finishing by hand as troubleshooting.md says: the webhook configurations first, then the finalizer; the garbage collector removes the rest")
		kubectl("delete", "mutatingwebhookconfiguration", webhookName)
		kubectl("delete", "validatingwebhookconfiguration", webhookName)
		kubectl("patch", "gmsastack", "default", "--type=merge", "-p", `{"metadata":{"finalizers":[]}}`)
		Eventually(func(g Gomega) {
			out, err := kubectlErr("get", "-n", webhookNS, "deploy,svc,pdb,sa,secret,pods", "-o", "name")
			g.Expect(err).NotTo(HaveOccurred())
			var left []string
			for _, o := range strings.Fields(out) {
				if o != "serviceaccount/default" { // the namespace's own, while it exists
					left = append(left, o)
				}
			}
			g.Expect(left).To(BeEmpty(), "left in %s", webhookNS)
			out, err = kubectlErr("get", "clusterrole,clusterrolebinding,mutatingwebhookconfiguration,validatingwebhookconfiguration", "-o", "name")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).NotTo(ContainSubstring(webhookName))
			g.Expect(gone(ctx, &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}})).To(BeTrue())
		}, 2*time.Minute, time.Second).Should(Succeed())
		// With no webhook, a gMSA pod is admitted as it was sent.
		p, err = dryRunCreate(ctx, gmsaPod("default", "default", credspecName))
		Expect(err).NotTo(HaveOccurred())
		Expect(credSpecContent(p)).To(BeEmpty())
		// What stays: the CRDs, the credspec, the GmsaAccount (no controller).
		kubectl("get", "gmsacredentialspecs.windows.k8s.io", credspecName)
		kubectl("get", "gmsaaccount", credspecName)
		kubectl("delete", "catalogsource", "-n", olmNS, catalogName)
	})
}
