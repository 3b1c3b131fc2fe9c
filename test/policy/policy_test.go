package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const appNS = "apps"

var credSpecGVK = schema{group: "windows.k8s.io", version: "v1", kind: "GMSACredentialSpec"}

type schema struct{ group, version, kind string }

func newCredSpec(name string, content map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(credSpecGVK.group + "/" + credSpecGVK.version)
	u.SetKind(credSpecGVK.kind)
	u.SetName(name)
	if content != nil {
		u.Object["credspec"] = content
	}
	return u
}

func getStack() *gmsav1alpha1.GmsaStack {
	s := &gmsav1alpha1.GmsaStack{}
	ExpectWithOffset(1, k8s.Get(context.Background(), client.ObjectKey{Name: "default"}, s)).To(Succeed())
	return s
}

// setMode changes spec.admission.mode as a person would.
func setMode(mode gmsav1alpha1.AdmissionMode) {
	GinkgoHelper()
	patch := fmt.Sprintf(`{"spec":{"admission":{"mode":%q}}}`, mode)
	Expect(k8s.Patch(context.Background(), &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

// eventuallyMode waits until the stack is Ready in mode, with only that
// mode's objects left in the cluster.
func eventuallyMode(mode gmsav1alpha1.AdmissionMode) {
	GinkgoHelper()
	ctx := context.Background()
	Eventually(func(g Gomega) {
		s := getStack()
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		g.Expect(meta.IsStatusConditionTrue(s.Status.Conditions, gmsav1alpha1.ConditionReady)).To(BeTrue(), "%+v", s.Status.Conditions)
		g.Expect(s.Status.Admission).NotTo(BeNil())
		g.Expect(s.Status.Admission.Mode).To(Equal(mode))
		webhook := []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
			&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName, Namespace: namespace}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName, Namespace: namespace}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: stack.TLSSecretName, Namespace: namespace}},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
		}
		policy := []client.Object{
			&admissionregistrationv1.MutatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
			&admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
			&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
			&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
			&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}},
			&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}},
			&gmsav1alpha1.GmsaCredSpecSet{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyIndexName, Namespace: namespace}},
		}
		present, absent := policy, webhook
		if mode == gmsav1alpha1.AdmissionModeWebhook {
			present, absent = webhook, policy
		}
		for _, o := range present {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed(), "%T %s", o, o.GetName())
		}
		for _, o := range absent {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s should be gone (%v)", o, o.GetName(), err)
		}
	}).WithTimeout(90 * time.Second).Should(Succeed())
}

// options sets gMSA fields on one holder of a pod.
type options struct{ name, content *string }

func str(s string) *string { return &s }

func ptrTo[T any](v T) *T { return &v }

func windowsOptions(o options) *corev1.WindowsSecurityContextOptions {
	return &corev1.WindowsSecurityContextOptions{GMSACredentialSpecName: o.name, GMSACredentialSpec: o.content}
}

// podCase is one row of the parity table.
type podCase struct {
	name string
	sa   string
	ns   string
	// pod, containers, init containers: the gMSA options of each holder
	// (nil: none).
	pod        *options
	containers []*options
	inits      []*options
	// ephemeral: added through the ephemeralcontainers subresource to a
	// pod created first with the fields above (which must be admitted).
	ephemeral *options
	// update: the pod is created, then updated with this change.
	update func(p *corev1.Pod)
}

// outcome is what a user observes of one admission.
type outcome struct {
	Allowed bool
	// Pod is every gMSA field of the resulting pod ("holder: name=...,
	// content=..."), when allowed.
	Pod []string
	// Message is the refusal without its mode-specific prefix.
	Message string
}

func (c podCase) build(suffix string) *corev1.Pod {
	ns := c.ns
	if ns == "" {
		ns = appNS
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p-" + suffix, Namespace: ns},
		Spec:       corev1.PodSpec{ServiceAccountName: c.sa, NodeSelector: map[string]string{corev1.LabelOSStable: "windows"}},
	}
	if c.pod != nil {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: windowsOptions(*c.pod)}
	}
	containers := c.containers
	if len(containers) == 0 {
		containers = []*options{nil}
	}
	for i, o := range containers {
		ct := corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "windows/servercore:ltsc2022"}
		if o != nil {
			ct.SecurityContext = &corev1.SecurityContext{WindowsOptions: windowsOptions(*o)}
		}
		p.Spec.Containers = append(p.Spec.Containers, ct)
	}
	for i, o := range c.inits {
		ct := corev1.Container{Name: fmt.Sprintf("i%d", i), Image: "windows/servercore:ltsc2022"}
		if o != nil {
			ct.SecurityContext = &corev1.SecurityContext{WindowsOptions: windowsOptions(*o)}
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, ct)
	}
	return p
}

func gmsaFields(p *corev1.Pod) []string {
	var out []string
	add := func(holder string, w *corev1.WindowsSecurityContextOptions) {
		if w == nil || (w.GMSACredentialSpecName == nil && w.GMSACredentialSpec == nil) {
			return
		}
		s := holder + ":"
		if w.GMSACredentialSpecName != nil {
			s += " name=" + *w.GMSACredentialSpecName
		}
		if w.GMSACredentialSpec != nil {
			s += " content=" + *w.GMSACredentialSpec
		}
		out = append(out, s)
	}
	if p.Spec.SecurityContext != nil {
		add("pod", p.Spec.SecurityContext.WindowsOptions)
	}
	for _, c := range p.Spec.Containers {
		if c.SecurityContext != nil {
			add("container "+c.Name, c.SecurityContext.WindowsOptions)
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.SecurityContext != nil {
			add("initContainer "+c.Name, c.SecurityContext.WindowsOptions)
		}
	}
	for _, c := range p.Spec.EphemeralContainers {
		if c.SecurityContext != nil {
			add("ephemeralContainer "+c.Name, c.SecurityContext.WindowsOptions)
		}
	}
	return out
}

// deniedPrefix is what each mode puts before the refusal itself.
var deniedPrefix = regexp.MustCompile(`^.*?denied (the )?request: `)

func outcomeOf(p *corev1.Pod, err error) outcome {
	if err != nil {
		return outcome{Message: deniedPrefix.ReplaceAllString(err.Error(), "")}
	}
	return outcome{Allowed: true, Pod: gmsaFields(p)}
}

// run sends one case through the API server in the mode in force.
func (c podCase) run(suffix string) outcome {
	ctx := context.Background()
	p := c.build(suffix)
	switch {
	case c.ephemeral != nil:
		Expect(k8s.Create(ctx, p)).To(Succeed(), "case %s: the pod itself", c.name)
		DeferCleanup(func() { _ = k8s.Delete(context.Background(), p, client.GracePeriodSeconds(0)) })
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debug", Image: "windows/servercore:ltsc2022", SecurityContext: &corev1.SecurityContext{WindowsOptions: windowsOptions(*c.ephemeral)},
		}})
		err := k8s.SubResource("ephemeralcontainers").Update(ctx, p, client.DryRunAll)
		return outcomeOf(p, err)
	case c.update != nil:
		Expect(k8s.Create(ctx, p)).To(Succeed(), "case %s: the pod itself", c.name)
		DeferCleanup(func() { _ = k8s.Delete(context.Background(), p, client.GracePeriodSeconds(0)) })
		c.update(p)
		err := k8s.Update(ctx, p, client.DryRunAll)
		return outcomeOf(p, err)
	default:
		err := k8s.Create(ctx, p, client.DryRunAll)
		return outcomeOf(p, err)
	}
}

// webapp1Content is the credspec field the operator generated for the
// GmsaAccount webapp1 (read once it is Ready).
var webapp1Content map[string]any

func compact(v any) string {
	b, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

// cases is the parity table: every pod goes through both modes.
func cases() []podCase {
	webapp1 := compact(webapp1Content)
	reordered := reorder(webapp1Content)
	other := `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"evil.com"}}`
	name := func(n string) *options { return &options{name: str(n)} }
	withContent := func(n, c string) *options { return &options{name: str(n), content: str(c)} }
	contentOnly := func(c string) *options { return &options{content: str(c)} }

	var out []podCase
	// The same faults at each holder kind.
	holders := []struct {
		kind string
		set  func(c *podCase, o *options)
	}{
		{"pod", func(c *podCase, o *options) { c.pod = o }},
		{"container", func(c *podCase, o *options) { c.containers = []*options{o} }},
		{"initContainer", func(c *podCase, o *options) { c.inits = []*options{o} }},
	}
	for _, h := range holders {
		for _, v := range []struct {
			what string
			sa   string
			o    *options
		}{
			{"name, listed service account", "webapp", name("webapp1")},
			{"name, unlisted service account", "intruder", name("webapp1")},
			{"name, default service account", "", name("webapp1")},
			{"missing credspec", "webapp", name("nope")},
			{"name differing in case only", "webapp", name("WebApp1")},
			{"credspec without content", "webapp", name("nocontent")},
			{"name and equal content", "webapp", withContent("webapp1", webapp1)},
			{"name and different content", "webapp", withContent("webapp1", other)},
			{"name and content reordered", "webapp", withContent("webapp1", reordered)},
			{"name and content, unlisted service account", "intruder", withContent("webapp1", other)},
			{"content without a name", "webapp", contentOnly(webapp1)},
			{"credspec made by hand, granted by hand", "webapp", name("legacy")},
		} {
			c := podCase{name: h.kind + ": " + v.what, sa: v.sa}
			h.set(&c, v.o)
			out = append(out, c)
		}
	}
	out = append(out,
		podCase{name: "no gMSA at all", sa: "intruder"},
		podCase{name: "two credspecs, both granted", sa: "webapp", pod: name("webapp1"), containers: []*options{name("webapp2"), nil}},
		podCase{name: "two credspecs, one not granted", sa: "other", pod: name("webapp2"), containers: []*options{name("webapp1")}},
		podCase{name: "one credspec in every holder", sa: "webapp", pod: name("webapp1"), containers: []*options{name("webapp1"), name("webapp1")}, inits: []*options{name("webapp1")}},
		podCase{name: "several faults: missing and unlisted", sa: "intruder", pod: name("nope"), containers: []*options{name("webapp1")}},
		podCase{name: "excluded namespace (windows.k8s.io/disabled=true), missing credspec", sa: "default", ns: "excluded", pod: name("nope")},
		podCase{name: "ephemeral container: name, listed", sa: "webapp", pod: name("webapp1"), ephemeral: name("webapp1")},
		podCase{name: "ephemeral container: name, not granted", sa: "other", pod: name("webapp2"), ephemeral: name("webapp1")},
		podCase{name: "ephemeral container: missing credspec", sa: "webapp", pod: name("webapp1"), ephemeral: name("nope")},
		podCase{name: "ephemeral container: content without a name", sa: "webapp", ephemeral: contentOnly(webapp1)},
		podCase{name: "ephemeral container on a pod without gMSA: name, listed", sa: "webapp", ephemeral: name("webapp2")},
		podCase{name: "update: a label on a gMSA pod", sa: "webapp", pod: name("webapp1"), update: func(p *corev1.Pod) { p.Labels = map[string]string{"x": "y"} }},
		podCase{name: "update: the gMSA name of a container", sa: "webapp", containers: []*options{name("webapp1")},
			update: func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext.WindowsOptions.GMSACredentialSpecName = str("webapp2")
			}},
		podCase{name: "update: the image of a gMSA pod", sa: "webapp", containers: []*options{name("webapp1")},
			update: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "windows/nanoserver:ltsc2022" }},
	)
	return out
}

// deliberate are the cases whose answers differ between the modes on
// purpose (docs/admission-modes.md says why).
var deliberate = map[string]string{
	"pod: name and content reordered":           "Policy mode compares content byte for byte with the compact JSON it fills in (CEL cannot parse JSON); the webhook compares JSON values",
	"container: name and content reordered":     "as above",
	"initContainer: name and content reordered": "as above",
}

// otherMessage are the cases both modes refuse with different messages
// (docs/admission-modes.md says why).
var otherMessage = map[string]string{
	"pod: name differing in case only":           "the mutating webhook refuses the unknown name before the API server validates the pod; in Policy mode the mutation leaves it alone and the API server's own validation refuses the upper-case name",
	"container: name differing in case only":     "as above",
	"initContainer: name differing in case only": "as above",
}

func setUpApps() {
	GinkgoHelper()
	ctx := context.Background()
	create := func(obj client.Object) {
		if err := k8s.Create(ctx, obj); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred(), "%T %s", obj, obj.GetName())
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}})
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "excluded", Labels: map[string]string{stack.DisabledLabel: "true"}}})
	for _, ns := range []string{appNS, "excluded"} {
		for _, sa := range []string{"webapp", "other", "intruder", "default"} {
			create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}})
		}
	}
	sample, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "gmsa_v1alpha1_gmsaaccount.yaml"))
	Expect(err).NotTo(HaveOccurred())
	account := func(name, accountName string, sas ...string) {
		a := &gmsav1alpha1.GmsaAccount{}
		Expect(yaml.UnmarshalStrict(sample, a)).To(Succeed())
		a.Name, a.Spec.CredentialSpec.AccountName, a.Spec.ServiceAccounts = name, accountName, nil
		for _, sa := range sas {
			a.Spec.ServiceAccounts = append(a.Spec.ServiceAccounts, gmsav1alpha1.ServiceAccountRef{Namespace: appNS, Name: sa})
		}
		create(a)
	}
	account("webapp1", "WebApp1", "webapp")
	account("webapp2", "WebApp2", "webapp", "other")
	// Made by hand, the way the upstream docs do it (once the stack has
	// installed the CRD).
	Eventually(func() error {
		err := k8s.Create(ctx, newCredSpec("probe", nil))
		if err == nil {
			return k8s.Delete(ctx, newCredSpec("probe", nil))
		}
		return err
	}).Should(Succeed())
	create(newCredSpec("legacy", map[string]any{"CmsPlugins": []any{"ActiveDirectory"}, "DomainJoinConfig": map[string]any{"DnsName": "legacy.com"}}))
	create(newCredSpec("nocontent", nil))
	grantUse("legacy-use", "legacy", "nocontent")
	for _, n := range []string{"webapp1", "webapp2"} {
		Eventually(func(g Gomega) {
			a := &gmsav1alpha1.GmsaAccount{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: n}, a)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(a.Status.Conditions, gmsav1alpha1.ConditionReady)).To(BeTrue(), "%+v", a.Status.Conditions)
		}).Should(Succeed())
	}
	cs := newCredSpec("webapp1", nil)
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cs), cs)).To(Succeed())
	webapp1Content = cs.Object["credspec"].(map[string]any)
}

// reorder writes a JSON object with its top-level keys in reverse order and
// indented: the same value, other text.
func reorder(v map[string]any) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		b, err := json.MarshalIndent(v[k], "  ", "  ")
		Expect(err).NotTo(HaveOccurred())
		parts = append(parts, fmt.Sprintf("  %q: %s", k, b))
	}
	return "{\n" + strings.Join(parts, ",\n") + "\n}"
}

// load sends gMSA pods (server dry run) that must be admitted with their
// content, and pods of an unlisted service account that must be refused,
// until the returned function is called; it reports the counts.
func load(what string) func() (sent, failed, unchecked int64) {
	var nSent, nFailed, nUnchecked atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	want := compact(webapp1Content)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				c := podCase{sa: "webapp", pod: &options{name: str("webapp1")}}
				intruder := w == 2
				if intruder {
					c.sa = "intruder"
				}
				p := c.build(fmt.Sprintf("%s-%d-%d", what, w, i))
				err := k8s.Create(ctx, p, client.DryRunAll)
				if ctx.Err() != nil {
					return
				}
				nSent.Add(1)
				switch {
				case intruder && err == nil:
					nUnchecked.Add(1)
				case intruder:
				case err != nil:
					nFailed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case p.Spec.SecurityContext.WindowsOptions.GMSACredentialSpec == nil || *p.Spec.SecurityContext.WindowsOptions.GMSACredentialSpec != want:
					nFailed.Add(1)
					firstErr.CompareAndSwap(nil, "admitted without its content")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return func() (int64, int64, int64) {
		cancel()
		wg.Wait()
		GinkgoWriter.Printf("%s: %d admissions, %d failed, %d refusals missed (first failure: %v)\n", what, nSent.Load(), nFailed.Load(), nUnchecked.Load(), firstErr.Load())
		return nSent.Load(), nFailed.Load(), nUnchecked.Load()
	}
}

// switchUnderLoad changes the mode while load runs, and expects no failed
// admission and no refusal missed.
func switchUnderLoad(what string, mode gmsav1alpha1.AdmissionMode) {
	GinkgoHelper()
	stop := load(what)
	setMode(mode)
	eventuallyMode(mode)
	time.Sleep(2 * time.Second)
	sent, failed, unchecked := stop()
	Expect(sent).To(BeNumerically(">", 50))
	Expect(failed).To(BeZero())
	Expect(unchecked).To(BeZero())
}

// grantUse lets apps/webapp `use` the named credspecs, through a ClusterRole
// and a RoleBinding made by hand, as the upstream docs do it.
func grantUse(name string, credspecs ...string) {
	GinkgoHelper()
	ctx := context.Background()
	for _, obj := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"windows.k8s.io"}, Resources: []string{"gmsacredentialspecs"}, Verbs: []string{"use"}, ResourceNames: credspecs}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appNS},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "webapp", Namespace: appNS}}},
	} {
		Expect(k8s.Create(ctx, obj)).To(Succeed(), "%T %s", obj, obj.GetName())
	}
}

var _ = Describe("Policy mode", Ordered, func() {
	var policyAnswers map[string]outcome

	BeforeAll(func() {
		By("applying a GmsaStack in Policy mode")
		s := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: gmsav1alpha1.GmsaStackSpec{Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModePolicy}}}
		Expect(k8s.Create(context.Background(), s)).To(Succeed())
		setUpApps()
	})

	It("admits the docs' WebApp1 pod with the JSON filled in and denies an unlisted service account, with no webhook in the cluster", func() {
		eventuallyMode(gmsav1alpha1.AdmissionModePolicy)
		deps := &appsv1.DeploymentList{}
		Expect(k8s.List(context.Background(), deps)).To(Succeed())
		Expect(deps.Items).To(BeEmpty())
		mwcs := &admissionregistrationv1.MutatingWebhookConfigurationList{}
		Expect(k8s.List(context.Background(), mwcs)).To(Succeed())
		Expect(mwcs.Items).To(BeEmpty())

		ok := podCase{sa: "webapp", containers: []*options{{name: str("webapp1")}}}.run("docs")
		Expect(ok.Allowed).To(BeTrue(), ok.Message)
		Expect(ok.Pod).To(Equal([]string{"container c0: name=webapp1 content=" + compact(webapp1Content)}))
		no := podCase{sa: "intruder", containers: []*options{{name: str("webapp1")}}}.run("docs-intruder")
		Expect(no.Allowed).To(BeFalse())
		Expect(no.Message).To(Equal("service account \"intruder\" is not authorized to `use` GMSA cred spec \"webapp1\"" +
			"; add {namespace: " + appNS + ", name: intruder} to the spec.serviceAccounts of the GmsaAccount that generates or names this cred spec"))
		s := getStack()
		Expect(s.Status.Admission.Reason).To(Equal("spec.admission.mode is Policy"))
	})

	It("puts back policies, bindings and published content that someone changed", func() {
		ctx := context.Background()
		edit := func(obj client.Object, change func()) {
			GinkgoHelper()
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			change()
			Expect(k8s.Update(ctx, obj)).To(Succeed())
		}
		m := &admissionregistrationv1.MutatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}}
		edit(m, func() { m.Spec.FailurePolicy = ptrTo(admissionregistrationv1.Ignore) })
		mb := &admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}}
		edit(mb, func() {
			mb.Spec.MatchResources.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"nobody": "true"}}
		})
		v := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}}
		edit(v, func() { v.Spec.Validations = v.Spec.Validations[:1] })
		vb := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}}
		edit(vb, func() {
			vb.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}
		})
		shards := &gmsav1alpha1.GmsaCredSpecSetList{}
		Expect(k8s.List(ctx, shards, client.InNamespace(namespace), client.MatchingLabels{stack.PolicyShardLabel: "true"})).To(Succeed())
		Expect(shards.Items).To(HaveLen(1))
		shard := &shards.Items[0]
		edit(shard, func() {
			shard.Data["webapp1"] = `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"evil.com"}}`
		})
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
			g.Expect(*m.Spec.FailurePolicy).To(Equal(admissionregistrationv1.Fail))
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(mb), mb)).To(Succeed())
			g.Expect(mb.Spec.MatchResources.NamespaceSelector.MatchLabels).To(BeEmpty())
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(v), v)).To(Succeed())
			g.Expect(len(v.Spec.Validations)).To(BeNumerically(">", 1))
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(vb), vb)).To(Succeed())
			g.Expect(vb.Spec.ValidationActions).To(Equal([]admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}))
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(shard), shard)).To(Succeed())
			g.Expect(shard.Data["webapp1"]).To(Equal(compact(webapp1Content)))
		}).WithTimeout(15 * time.Second).Should(Succeed())
		// The API server reloads policies and bindings about once a second:
		// the repaired ones serve again soon after.
		Eventually(func() []string {
			return podCase{sa: "webapp", pod: &options{name: str("webapp1")}}.run("repaired").Pod
		}).WithTimeout(5 * time.Second).Should(Equal([]string{"pod: name=webapp1 content=" + compact(webapp1Content)}))
		evil := `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"evil.com"}}`
		Eventually(func() string {
			return podCase{sa: "webapp", pod: &options{name: str("webapp1"), content: str(evil)}}.run("repaired-content").Message
		}).WithTimeout(5 * time.Second).Should(ContainSubstring("does not match the contents of GMSA resource"))
		Eventually(func() string {
			return podCase{sa: "intruder", pod: &options{name: str("webapp1")}}.run("repaired-admit").Message
		}).WithTimeout(5 * time.Second).Should(ContainSubstring("is not authorized to `use` GMSA cred spec"))
	})

	It("answers every case of the parity table", func() {
		policyAnswers = map[string]outcome{}
		for i, c := range cases() {
			policyAnswers[c.name] = c.run(fmt.Sprintf("case-%d", i))
		}
		Expect(len(policyAnswers)).To(BeNumerically(">=", 40))
	})

	It("publishes a credspec created, changed or deleted within a bounded time", func() {
		ctx := context.Background()
		grantUse("fresh-use", "fresh")
		c := podCase{sa: "webapp", pod: &options{name: str("fresh")}}
		timeUntil := func(what string, ok func(outcome) bool) time.Duration {
			start := time.Now()
			i := 0
			var last outcome
			Eventually(func() bool { i++; last = c.run(fmt.Sprintf("fresh-%d", i)); return ok(last) }).WithTimeout(30*time.Second).WithPolling(20*time.Millisecond).
				Should(BeTrue(), func() string {
					idx := &gmsav1alpha1.GmsaCredSpecSet{}
					_ = k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.PolicyIndexName}, idx)
					return fmt.Sprintf("%s: last answer %+v; the index holds %v (annotations %v)", what, last, idx.Data, idx.Annotations)
				})
			d := time.Since(start)
			GinkgoWriter.Printf("freshness: %s reached the policies in %v\n", what, d)
			return d
		}
		v1 := map[string]any{"CmsPlugins": []any{"ActiveDirectory"}, "DomainJoinConfig": map[string]any{"DnsName": "fresh.com"}}
		cs := newCredSpec("fresh", v1)
		Expect(k8s.Create(ctx, cs)).To(Succeed())
		created := timeUntil("a new credspec", func(o outcome) bool { return o.Allowed })
		v2 := map[string]any{"CmsPlugins": []any{"ActiveDirectory"}, "DomainJoinConfig": map[string]any{"DnsName": "fresh2.com"}}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cs), cs)).To(Succeed())
		cs.Object["credspec"] = v2
		Expect(k8s.Update(ctx, cs)).To(Succeed())
		changed := timeUntil("a changed credspec", func(o outcome) bool {
			return o.Allowed && len(o.Pod) == 1 && strings.HasSuffix(o.Pod[0], compact(v2))
		})
		Expect(k8s.Delete(ctx, cs)).To(Succeed())
		deleted := timeUntil("a deleted credspec", func(o outcome) bool { return !o.Allowed && o.Message == "cred spec fresh does not exist" })
		for _, d := range []time.Duration{created, changed, deleted} {
			Expect(d).To(BeNumerically("<", 10*time.Second))
		}
	})

	It("makes a new GmsaAccount Ready once pods naming its credspec are admitted", func() {
		ctx := context.Background()
		sample, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "gmsa_v1alpha1_gmsaaccount.yaml"))
		Expect(err).NotTo(HaveOccurred())
		a := &gmsav1alpha1.GmsaAccount{}
		Expect(yaml.UnmarshalStrict(sample, a)).To(Succeed())
		a.Name, a.Spec.CredentialSpec.AccountName = "webapp3", "WebApp3"
		a.Spec.ServiceAccounts = []gmsav1alpha1.ServiceAccountRef{{Namespace: appNS, Name: "webapp"}}
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(a.Status.Conditions, gmsav1alpha1.ConditionReady)).To(BeTrue())
		}).WithPolling(10 * time.Millisecond).Should(Succeed())
		ready := time.Now()
		Eventually(func() bool {
			return podCase{sa: "webapp", pod: &options{name: str("webapp3")}}.run("webapp3").Allowed
		}).WithTimeout(2 * time.Second).WithPolling(10 * time.Millisecond).Should(BeTrue())
		GinkgoWriter.Printf("a pod naming the new account's credspec was admitted %v after the account was Ready\n", time.Since(ready))
	})

	It("in Auto mode, leaves Policy mode above 32 credspecs and comes back at 24 or fewer", func() {
		ctx := context.Background()
		count := func() int {
			list := &unstructured.UnstructuredList{}
			list.SetAPIVersion(credSpecGVK.group + "/" + credSpecGVK.version)
			list.SetKind(credSpecGVK.kind + "List")
			Expect(k8s.List(ctx, list)).To(Succeed())
			return len(list.Items)
		}
		reason := func() string { return getStack().Status.Admission.Reason }
		setMode(gmsav1alpha1.AdmissionModeAuto)
		DeferCleanup(func() {
			setMode(gmsav1alpha1.AdmissionModePolicy)
			eventuallyMode(gmsav1alpha1.AdmissionModePolicy)
		})
		eventuallyMode(gmsav1alpha1.AdmissionModePolicy)
		Expect(count()).To(BeNumerically("<=", stack.AutoPolicyResumeCredSpecs))

		By("one credspec more than 32: Webhook mode, and the status says why")
		var made []string
		for i := 0; count() <= stack.AutoPolicyMaxCredSpecs; i++ {
			name := fmt.Sprintf("auto-%02d", i)
			Expect(k8s.Create(ctx, newCredSpec(name, map[string]any{"CmsPlugins": []any{"ActiveDirectory"}}))).To(Succeed())
			made = append(made, name)
		}
		eventuallyMode(gmsav1alpha1.AdmissionModeWebhook)
		Expect(reason()).To(ContainSubstring(fmt.Sprintf("%d GMSACredentialSpecs exist, more than %d", stack.AutoPolicyMaxCredSpecs+1, stack.AutoPolicyMaxCredSpecs)))

		remove := func(down int) {
			GinkgoHelper()
			for count() > down && len(made) > 0 {
				name := made[len(made)-1]
				made = made[:len(made)-1]
				Expect(k8s.Delete(ctx, newCredSpec(name, nil))).To(Succeed())
			}
		}
		By("back to 25: still Webhook mode, so that a count near the limit does not switch back and forth")
		remove(stack.AutoPolicyResumeCredSpecs + 1)
		Eventually(reason).Should(ContainSubstring(fmt.Sprintf("%d GMSACredentialSpecs exist: Auto keeps Webhook mode", stack.AutoPolicyResumeCredSpecs+1)))
		Consistently(func() gmsav1alpha1.AdmissionMode { return getStack().Status.Admission.Mode }).WithTimeout(2 * time.Second).Should(Equal(gmsav1alpha1.AdmissionModeWebhook))

		By("24: Policy mode again")
		remove(stack.AutoPolicyResumeCredSpecs)
		eventuallyMode(gmsav1alpha1.AdmissionModePolicy)
		for _, name := range made {
			Expect(k8s.Delete(ctx, newCredSpec(name, nil))).To(Succeed())
		}
	})

	It("spreads 3,000 credspecs over parameter objects of at most 1 MiB and fills in each", func() {
		ctx := context.Background()
		const n = 3000
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		content := func(i int) map[string]any {
			return map[string]any{"CmsPlugins": []any{"ActiveDirectory"}, "ActiveDirectoryConfig": map[string]any{"GroupManagedServiceAccounts": []any{
				map[string]any{"Name": fmt.Sprintf("Svc%05d", i), "Scope": "contoso.com"}, map[string]any{"Name": fmt.Sprintf("Svc%05d", i), "Scope": "CONTOSO"}}},
				"DomainJoinConfig": map[string]any{"DnsName": "contoso.com", "DnsTreeName": "contoso.com", "Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a",
					"MachineAccountName": fmt.Sprintf("Svc%05d", i), "NetBiosName": "CONTOSO", "Sid": "S-1-5-21-2126449477-2524075714-3094792973"}}
		}
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				defer func() { <-sem }()
				Expect(k8s.Create(ctx, newCredSpec(fmt.Sprintf("svc-%05d", i), content(i)))).To(Succeed())
			}()
		}
		wg.Wait()
		GinkgoWriter.Printf("created %d credspecs in %v\n", n, time.Since(start))
		grantUse("svc-use", "svc-00000", "svc-01234", "svc-02999")
		Eventually(func(g Gomega) {
			cms := &gmsav1alpha1.GmsaCredSpecSetList{}
			g.Expect(k8s.List(ctx, cms, client.InNamespace(namespace), client.MatchingLabels{stack.PolicyShardLabel: "true"})).To(Succeed())
			total, largest := 0, 0
			layouts := map[string]bool{}
			for _, cm := range cms.Items {
				raw, err := json.Marshal(cm)
				g.Expect(err).NotTo(HaveOccurred())
				largest = max(largest, len(raw))
				total += len(cm.Data)
				layouts[cm.Name[:strings.LastIndex(cm.Name, "-")]] = true
			}
			// One layout left (an older one goes after the teardown
			// delay), holding every credspec once.
			g.Expect(layouts).To(HaveLen(1), "layouts %v", layouts)
			g.Expect(total).To(BeNumerically(">=", n))
			g.Expect(len(cms.Items)).To(BeNumerically(">", 1))
			g.Expect(largest).To(BeNumerically("<", 1<<20))
			GinkgoWriter.Printf("%d credspecs in %d shards, the largest %d bytes, %v after the first was created\n", total, len(cms.Items), largest, time.Since(start))
		}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
		for _, i := range []int{0, 1234, 2999} {
			o := podCase{sa: "webapp", containers: []*options{{name: str(fmt.Sprintf("svc-%05d", i))}}}.run(fmt.Sprintf("scale-%d", i))
			Expect(o.Allowed).To(BeTrue(), o.Message)
			Expect(o.Pod).To(Equal([]string{fmt.Sprintf("container c0: name=svc-%05d content=%s", i, compact(content(i)))}))
		}
		eventuallyMode(gmsav1alpha1.AdmissionModePolicy)
	})

	It("switches to Webhook mode under load: zero failed admissions, no refusal missed", func() {
		switchUnderLoad("policy-to-webhook", gmsav1alpha1.AdmissionModeWebhook)
	})

	It("gives the same answers in Webhook mode, but for the deviations listed as deliberate", func() {
		var table []string
		differ := 0
		for i, c := range cases() {
			w := c.run(fmt.Sprintf("case-%d", i))
			p := policyAnswers[c.name]
			same := w.Allowed == p.Allowed && fmt.Sprint(w.Pod) == fmt.Sprint(p.Pod)
			msg := "same"
			if !same {
				msg = "DIFFERENT"
			} else if !w.Allowed && w.Message != p.Message {
				// Both keep the upstream webhook's message; the hints after
				// it differ where the policies lack what the webhook knows
				// (the GmsaAccount's name).
				wUpstream, _, _ := strings.Cut(w.Message, "; ")
				pUpstream, _, _ := strings.Cut(p.Message, "; ")
				msg = "same answer, other hint"
				if wUpstream != pUpstream {
					msg = "same answer, other message"
					if _, ok := otherMessage[c.name]; !ok {
						differ++
					}
				}
			}
			table = append(table, fmt.Sprintf("%-75s webhook %-5v policy %-5v %s\n    webhook: %s\n    policy:  %s", c.name, w.Allowed, p.Allowed, msg, w.Message, p.Message))
			if why, ok := deliberate[c.name]; ok {
				Expect(same).To(BeFalse(), "case %q is listed as a deliberate deviation (%s) but both modes agree: remove it from the list", c.name, why)
				continue
			}
			if !same {
				differ++
			}
		}
		sort.Strings(table)
		GinkgoWriter.Println("parity table:\n" + strings.Join(table, "\n"))
		Expect(differ).To(BeZero(), "cases that differ:\n%s", strings.Join(table, "\n"))
	})

	It("switches back to Policy mode under load: zero failed admissions, no refusal missed", func() {
		switchUnderLoad("webhook-to-policy", gmsav1alpha1.AdmissionModePolicy)
	})

	// Found here with ConfigMaps as parameters: once every policy using a
	// built-in parameter kind is removed, kube-apiserver (1.37.1) stops
	// its shared informer of that kind and never starts it again, so the
	// policies made again answered from the parameters as they were. The
	// parameters are of the operator's own kind since.
	It("publishes a credspec created after switching back from Webhook mode", func() {
		ctx := context.Background()
		grantUse("late-use", "late")
		content := map[string]any{"CmsPlugins": []any{"ActiveDirectory"}, "DomainJoinConfig": map[string]any{"DnsName": "late.com"}}
		Expect(k8s.Create(ctx, newCredSpec("late", content))).To(Succeed())
		c := podCase{sa: "webapp", pod: &options{name: str("late")}}
		i := 0
		var last outcome
		Eventually(func() bool { i++; last = c.run(fmt.Sprintf("late-%d", i)); return last.Allowed }).WithTimeout(15*time.Second).WithPolling(50*time.Millisecond).
			Should(BeTrue(), func() string { return fmt.Sprintf("last answer %+v", last) })
		Expect(last.Pod).To(Equal([]string{"pod: name=late content=" + compact(content)}))
	})

	It("is deleted: the bindings go first, everything of the stack goes, the credspecs stay", func() {
		ctx := context.Background()
		Expect(k8s.Delete(ctx, &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}})).To(Succeed())
		Eventually(func(g Gomega) {
			for _, o := range []client.Object{
				&admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
				&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.PolicyName}},
				&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: stack.ContentPolicyName}},
			} {
				g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(o), o))).To(BeTrue(), "%T %s", o, o.GetName())
			}
		}).WithTimeout(10 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: "default"}, &gmsav1alpha1.GmsaStack{}))).To(BeTrue())
			sets := &gmsav1alpha1.GmsaCredSpecSetList{}
			g.Expect(k8s.List(ctx, sets)).To(Succeed())
			g.Expect(sets.Items).To(BeEmpty())
			policies := &admissionregistrationv1.ValidatingAdmissionPolicyList{}
			g.Expect(k8s.List(ctx, policies)).To(Succeed())
			g.Expect(policies.Items).To(BeEmpty())
		}).WithTimeout(60 * time.Second).Should(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "webapp1"}, newCredSpec("webapp1", nil))).To(Succeed())
	})

	It("needed no permission config/default does not grant, and used every one assigned to this suite", func() {
		Expect(requests.Forbidden()).To(BeEmpty())
		Expect(requests.Missing(harness.SuitePolicy)).To(BeEmpty(), "permissions test/policy should have needed")
	})
})
