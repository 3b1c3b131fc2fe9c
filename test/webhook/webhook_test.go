package webhook_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook/cluster"
)

var (
	webapp1Spec = map[string]any{
		"CmsPlugins": []any{"ActiveDirectory"},
		"DomainJoinConfig": map[string]any{
			"Sid": "S-1-5-21-2126449477-2524075714-3094792973", "MachineAccountName": "WebApp1",
			"Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a", "DnsTreeName": "contoso.com",
			"DnsName": "contoso.com", "NetBiosName": "CONTOSO",
		},
		"ActiveDirectoryConfig": map[string]any{"GroupManagedServiceAccounts": []any{
			map[string]any{"Name": "WebApp1", "Scope": "contoso.com"},
			map[string]any{"Name": "WebApp1", "Scope": "CONTOSO"},
		}},
	}
	// webapp1JSON is webapp1's credspec as the mutating webhook writes it:
	// compact, keys sorted.
	webapp1JSON = `{"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":"WebApp1","Scope":"contoso.com"},{"Name":"WebApp1","Scope":"CONTOSO"}]},` +
		`"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"contoso.com","DnsTreeName":"contoso.com",` +
		`"Guid":"244818ae-87ac-4fcd-92ec-e79e5252348a","MachineAccountName":"WebApp1","NetBiosName":"CONTOSO","Sid":"S-1-5-21-2126449477-2524075714-3094792973"}}`
	// webapp1Reordered is the same JSON value, keys reordered, indented.
	webapp1Reordered = `{
  "DomainJoinConfig": {"NetBiosName": "CONTOSO", "Sid": "S-1-5-21-2126449477-2524075714-3094792973", "DnsName": "contoso.com",
                       "MachineAccountName": "WebApp1", "DnsTreeName": "contoso.com", "Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a"},
  "CmsPlugins": [ "ActiveDirectory" ],
  "ActiveDirectoryConfig": {"GroupManagedServiceAccounts": [{"Scope": "contoso.com", "Name": "WebApp1"}, {"Scope": "CONTOSO", "Name": "WebApp1"}]}
}`
	webapp2Spec = map[string]any{
		"CmsPlugins":       []any{"ActiveDirectory"},
		"DomainJoinConfig": map[string]any{"DnsName": "fabrikam.com", "NetBiosName": "FABRIKAM"},
	}
	webapp2JSON = `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"fabrikam.com","NetBiosName":"FABRIKAM"}}`
)

// newNamespace creates a namespace the webhooks act on, with a service
// account "app", and deletes it after the spec.
func newNamespace() string {
	name := "e2e-" + rand.String(6)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{testLabel: "true"}}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: name}})).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, ns))).To(Succeed()) })
	return name
}

// grant lets subjects of namespace ns use a credspec, the way a GmsaAccount
// does: a ClusterRole with `use` on that credspec and a RoleBinding.
func grant(ns, credspec string, subjects ...rbacv1.Subject) {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "gmsa-use-" + credspec},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"windows.k8s.io"}, Resources: []string{"gmsacredentialspecs"},
			Verbs: []string{"use"}, ResourceNames: []string{credspec}}},
	}
	if err := k8s.Create(ctx, role); !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "use-" + credspec + "-" + rand.String(4), Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   subjects,
	})).To(Succeed())
	// The API server's RBAC authorizer sees the binding a moment later: wait
	// for it, or the webhook's first question gets a denial it then reuses
	// for AUTHZ_CACHE_TTL.
	for _, sub := range subjects {
		if sub.Kind != rbacv1.ServiceAccountKind {
			continue
		}
		Eventually(func() bool {
			review := &authorizationv1.LocalSubjectAccessReview{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns},
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User: cluster.ServiceAccountUser(sub.Namespace, sub.Name), Groups: cluster.ServiceAccountGroups(sub.Namespace),
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "use", Group: "windows.k8s.io", Resource: "gmsacredentialspecs", Name: credspec},
				},
			}
			Expect(k8s.Create(ctx, review)).To(Succeed())
			return review.Status.Allowed
		}).Should(BeTrue(), "the API server honours the new RoleBinding")
	}
}

func serviceAccount(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}
}

type podOption func(*corev1.Pod)

// gmsaPod is a pod named name in the namespace of the first option (set by
// in), run by service account sa ("" leaves it unset).
func gmsaPod(name, sa string, opts ...podOption) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "main", Image: "windows/nanoserver:ltsc2022"}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func in(ns string) podOption { return func(p *corev1.Pod) { p.Namespace = ns } }

func windowsOptions(name, content string) *corev1.WindowsSecurityContextOptions {
	w := &corev1.WindowsSecurityContextOptions{}
	if name != "" {
		w.GMSACredentialSpecName = &name
	}
	if content != "" {
		w.GMSACredentialSpec = &content
	}
	return w
}

func podLevel(name, content string) podOption {
	return func(p *corev1.Pod) {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: windowsOptions(name, content)}
	}
}

func container(cname, name, content string) podOption {
	return func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: cname, Image: "busybox",
			SecurityContext: &corev1.SecurityContext{WindowsOptions: windowsOptions(name, content)}})
	}
}

func initContainer(cname, name, content string) podOption {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: cname, Image: "busybox",
			SecurityContext: &corev1.SecurityContext{WindowsOptions: windowsOptions(name, content)}})
	}
}

// deniedBy matches the API server's error for a webhook denial.
func deniedBy(webhookName, message string) OmegaMatcher {
	return MatchError(ContainSubstring(fmt.Sprintf("admission webhook %q denied the request: %s", webhookName, message)))
}

func notAuthorized(sa, credspec string) string {
	return fmt.Sprintf("service account %q is not authorized to `use` GMSA cred spec %q", sa, credspec)
}

func content(w *corev1.WindowsSecurityContextOptions) string {
	if w == nil || w.GMSACredentialSpec == nil {
		return "<none>"
	}
	return *w.GMSACredentialSpec
}

var _ = Describe("gMSA admission through the API server", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("expands the name into the credspec content at pod level, in containers and init containers", func() {
		grant(ns, "webapp1", serviceAccount(ns, "app"))
		grant(ns, "webapp2", serviceAccount(ns, "app"))
		pod := gmsaPod("web", "app", in(ns), podLevel("webapp1", ""), container("sidecar", "webapp2", ""), initContainer("setup", "webapp1", ""))
		Expect(k8s.Create(ctx, pod)).To(Succeed())

		got := &corev1.Pod{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		Expect(content(got.Spec.SecurityContext.WindowsOptions)).To(Equal(webapp1JSON))
		Expect(got.Spec.Containers[0].SecurityContext).To(BeNil(), "a container without gMSA fields is left alone")
		Expect(content(got.Spec.Containers[1].SecurityContext.WindowsOptions)).To(Equal(webapp2JSON))
		Expect(content(got.Spec.InitContainers[0].SecurityContext.WindowsOptions)).To(Equal(webapp1JSON))
	})

	It("expands and authorizes an ephemeral container added with a credspec name", func() {
		grant(ns, "webapp1", serviceAccount(ns, "app"))
		pod := gmsaPod("web", "app", in(ns), podLevel("webapp1", ""))
		Expect(k8s.Create(ctx, pod)).To(Succeed())

		addEphemeral := func(name, credspec string) error {
			current, err := clientset.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			current.Spec.EphemeralContainers = append(current.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: name, Image: "busybox",
					SecurityContext: &corev1.SecurityContext{WindowsOptions: windowsOptions(credspec, "")}},
			})
			_, err = clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, "web", current, metav1.UpdateOptions{})
			return err
		}
		Expect(addEphemeral("debug", "webapp1")).To(Succeed())
		got, err := clientset.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.EphemeralContainers).To(HaveLen(1))
		Expect(content(got.Spec.EphemeralContainers[0].SecurityContext.WindowsOptions)).To(Equal(webapp1JSON))

		By("an ephemeral container with a credspec the service account may not use is denied")
		Expect(addEphemeral("debug-2", "webapp2")).To(deniedBy(validatingName, notAuthorized("app", "webapp2")))
	})

	It("denies a service account that may not use the credspec, with upstream's message", func() {
		grant(ns, "webapp1", serviceAccount(ns, "app"))
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "intruder", Namespace: ns}})).To(Succeed())
		pod := gmsaPod("web", "intruder", in(ns), container("c", "webapp1", ""))
		Expect(k8s.Create(ctx, pod)).To(deniedBy(validatingName, notAuthorized("intruder", "webapp1")))
	})

	It("authorizes through a binding to every service account of the namespace", func() {
		grant(ns, "webapp2", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + ns})
		Expect(k8s.Create(ctx, gmsaPod("web", "app", in(ns), podLevel("webapp2", "")))).To(Succeed())
	})

	It("runs a pod without serviceAccountName as default", func() {
		grant(ns, "webapp1", serviceAccount(ns, "default"))
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
		}).Should(Succeed(), "kube-controller-manager creates the default service account")
		Expect(k8s.Create(ctx, gmsaPod("web", "", in(ns), podLevel("webapp1", "")))).To(Succeed())
		Expect(k8s.Create(ctx, gmsaPod("web2", "", in(ns), podLevel("webapp2", "")))).To(deniedBy(validatingName, notAuthorized("default", "webapp2")))
	})

	It("denies content that does not match the credspec, and allows the same JSON with other key order and whitespace", func() {
		grant(ns, "webapp1", serviceAccount(ns, "app"))
		Expect(k8s.Create(ctx, gmsaPod("forged", "app", in(ns), container("c", "webapp1", webapp2JSON)))).To(deniedBy(validatingName,
			`the GMSA cred spec contents for container "c" does not match the contents of GMSA resource "webapp1"`))

		pod := gmsaPod("reordered", "app", in(ns), container("c", "webapp1", webapp1Reordered))
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		got := &corev1.Pod{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		Expect(content(got.Spec.Containers[1].SecurityContext.WindowsOptions)).To(Equal(webapp1Reordered), "the user's content is kept as written")
	})

	It("denies content without a name", func() {
		Expect(k8s.Create(ctx, gmsaPod("web", "app", in(ns), podLevel("", webapp1JSON)))).To(deniedBy(validatingName,
			`pod "web" has a GMSA cred spec set, but does not define the name of the corresponding resource`))
	})

	It("denies a missing credspec and a credspec without content", func() {
		grant(ns, "nocontent", serviceAccount(ns, "app"))
		Expect(k8s.Create(ctx, gmsaPod("web", "app", in(ns), podLevel("nope", "")))).To(deniedBy(mutatingName, "cred spec nope does not exist"))
		Expect(k8s.Create(ctx, gmsaPod("web", "app", in(ns), initContainer("i", "nocontent", "")))).To(deniedBy(mutatingName,
			"cred spec nocontent does not have a credspec key"))
	})

	It("denies changes to gMSA fields on UPDATE and allows other updates", func() {
		grant(ns, "webapp1", serviceAccount(ns, "app"))
		pod := gmsaPod("web", "app", in(ns), podLevel("webapp1", ""), container("c", "webapp1", ""))
		Expect(k8s.Create(ctx, pod)).To(Succeed())

		By("a label and an image change are allowed")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		pod.Labels = map[string]string{"tier": "web"}
		pod.Spec.Containers[0].Image = "windows/nanoserver:ltsc2025"
		Expect(k8s.Update(ctx, pod)).To(Succeed())

		By("changing the content is denied")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		changed := webapp2JSON
		pod.Spec.Containers[1].SecurityContext.WindowsOptions.GMSACredentialSpec = &changed
		err := k8s.Update(ctx, pod)
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)).To(BeTrue(), "update error: %v", err)
		GinkgoWriter.Printf("the API server answers a gMSA change on UPDATE with: %v\n", err)

		By("the webhook itself denies it with upstream's message when asked")
		old := gmsaPod("web", "app", in(ns), container("c", "webapp1", webapp1JSON))
		updated := gmsaPod("web", "app", in(ns), container("c", "webapp2", webapp1JSON))
		review := postReview("/validate", admissionv1.Update, ns, updated, old)
		Expect(review.Response.Allowed).To(BeFalse())
		Expect(review.Response.Result.Message).To(Equal(`cannot update an existing pod's GMSA settings (GMSA name modified on container "c")`))

		got := &corev1.Pod{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		Expect(content(got.Spec.Containers[1].SecurityContext.WindowsOptions)).To(Equal(webapp1JSON), "the stored content is unchanged")
	})

	It("admits a pod without gMSA fields unchanged", func() {
		before := mutateCount("allowed")
		pod := gmsaPod("plain", "app", in(ns))
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		got := &corev1.Pod{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		Expect(got.Spec.SecurityContext).To(SatisfyAny(BeNil(), HaveField("WindowsOptions", BeNil())))
		Expect(got.Spec.Containers[0].SecurityContext).To(BeNil())
		Expect(got.Spec.Hostname).To(BeEmpty())
		Expect(mutateCount("allowed")).To(BeNumerically(">", before), "the webhook was asked and allowed it without a patch")
	})

	It("stops honouring a revoked RoleBinding, and honours a new one, within the decision cache's TTL", func() {
		ttl := cluster.DefaultDecisionTTL
		grant(ns, "webapp1", serviceAccount(ns, "app"))
		bindings := &rbacv1.RoleBindingList{}
		Expect(k8s.List(ctx, bindings, client.InNamespace(ns))).To(Succeed())
		Expect(bindings.Items).To(HaveLen(1))
		binding := bindings.Items[0]
		create := func() error {
			return k8s.Create(ctx, gmsaPod("web", "app", in(ns), podLevel("webapp1", "")), client.DryRunAll)
		}
		// timeUntil asks every 50 ms until answer holds and returns how
		// long that took.
		timeUntil := func(answer OmegaMatcher) time.Duration {
			GinkgoHelper()
			start := time.Now()
			Eventually(create).WithTimeout(ttl + 10*time.Second).WithPolling(50 * time.Millisecond).Should(answer)
			return time.Since(start)
		}
		Expect(create()).To(Succeed())
		asked := time.Now()

		By("deleting the RoleBinding: a pod created at once is still admitted on the cached decision")
		Expect(k8s.Delete(ctx, &binding)).To(Succeed())
		revoked := time.Now()
		err := create()
		if time.Since(asked) < ttl/2 {
			Expect(err).NotTo(HaveOccurred(), "the decision made %v ago was not reused", time.Since(asked))
		}
		timeUntil(deniedBy(validatingName, notAuthorized("app", "webapp1")))
		denied := time.Since(revoked)
		GinkgoWriter.Printf("revoked RoleBinding no longer honoured after %v (TTL %v)\n", denied, ttl)
		// The API server's RBAC cache follows a watch: allow it a second.
		Expect(denied).To(BeNumerically("<=", ttl+time.Second))

		By("binding again: honoured within the TTL of the cached denial")
		grant(ns, "webapp1", serviceAccount(ns, "app"))
		granted := timeUntil(Succeed())
		GinkgoWriter.Printf("new RoleBinding honoured after %v (TTL %v)\n", granted, ttl)
		Expect(granted).To(BeNumerically("<=", ttl+time.Second))
	})

	It("exports Prometheus metrics of its answers", func() {
		metrics := scrape()
		Expect(metrics).To(MatchRegexp(`gmsa_webhook_admission_requests_total\{operation="CREATE",path="/mutate",reason="",result="mutated"\} [1-9]`))
		Expect(metrics).To(MatchRegexp(`gmsa_webhook_admission_requests_total\{operation="CREATE",path="/validate",reason="Unauthorized",result="denied"\} [1-9]`))
		Expect(metrics).To(MatchRegexp(`gmsa_webhook_authorization_duration_seconds_count [1-9]`))
		Expect(metrics).To(MatchRegexp(`gmsa_webhook_authorization_answers_total\{source="review"\} [1-9]`))
		Expect(metrics).To(MatchRegexp(`gmsa_webhook_certificate_not_after_timestamp_seconds [0-9.e+]+`))
		Expect(metrics).To(MatchRegexp(`gmsa_webhook_credspecs 3`))
	})
})

// The rotation spec swaps the certificate files the suite's webhook serves
// from, so it runs alone.
var _ = Describe("serving certificate rotation", Serial, func() {
	It("serves each new certificate after the kubelet's symlink swap, without a restart or a failed request under load", func() {
		ns := newNamespace()
		grant(ns, "webapp1", serviceAccount(ns, "app"))

		var (
			stop      atomic.Bool
			wg        sync.WaitGroup
			mu        sync.Mutex
			failures  []string
			direct    atomic.Int64
			viaServer atomic.Int64
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			failures = append(failures, fmt.Sprintf(format, args...))
		}

		By("loading the webhook directly, a new TLS connection per request")
		body := reviewBody("/validate", admissionv1.Create, ns, gmsaPod("load", "app", in(ns), podLevel("webapp1", webapp1JSON)), nil)
		fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: httpsClient.Transport.(*http.Transport).TLSClientConfig.Clone(), DisableKeepAlives: true,
		}}
		for range 3 {
			wg.Go(func() {
				for !stop.Load() {
					resp, err := fresh.Post("https://"+webhookAddr+"/validate", "application/json", bytes.NewReader(body))
					if err != nil {
						fail("direct request: %v", err)
						continue
					}
					var review admissionv1.AdmissionReview
					err = json.NewDecoder(resp.Body).Decode(&review)
					resp.Body.Close()
					if err != nil || review.Response == nil || !review.Response.Allowed {
						fail("direct request: status %d, %v, %+v", resp.StatusCode, err, review.Response)
						continue
					}
					direct.Add(1)
				}
			})
		}
		By("and through the API server, creating gMSA pods")
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				pod := gmsaPod("load-"+strconv.Itoa(i), "app", in(ns), podLevel("webapp1", ""))
				if err := k8s.Create(ctx, pod); err != nil {
					fail("pod create: %v", err)
					continue
				}
				viaServer.Add(1)
			}
		})

		served := func() *big.Int {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", webhookAddr, httpsClient.Transport.(*http.Transport).TLSClientConfig)
			Expect(err).NotTo(HaveOccurred())
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].SerialNumber
		}
		first := served()
		time.Sleep(time.Second)
		for swap := 1; swap <= 2; swap++ {
			By(fmt.Sprintf("swap %d: writing a new certificate the way the kubelet updates a Secret volume", swap))
			files := servingFiles()
			want, err := certs.ParseCertificate(files["tls.crt"])
			Expect(err).NotTo(HaveOccurred())
			Expect(want.SerialNumber).NotTo(Equal(first))
			Expect(volume.Update(files)).To(Succeed())
			Eventually(served).WithTimeout(15*time.Second).WithPolling(50*time.Millisecond).Should(Equal(want.SerialNumber),
				"swap %d is not served", swap)
			time.Sleep(2 * time.Second) // keep the load on the new certificate
		}
		stop.Store(true)
		wg.Wait()

		Expect(failures).To(BeEmpty())
		Expect(direct.Load()).To(BeNumerically(">", 20), "direct requests under load")
		Expect(viaServer.Load()).To(BeNumerically(">", 5), "pods created under load")
		GinkgoWriter.Printf("during rotation: %d direct requests, %d pods created, no failure\n", direct.Load(), viaServer.Load())
		Expect(webhookDone).NotTo(Receive(), "the webhook kept running (no restart)")
	})
})

// reviewBody is the AdmissionReview the API server would send for pod.
func reviewBody(path string, op admissionv1.Operation, ns string, pod, old *corev1.Pod) []byte {
	raw := func(p *corev1.Pod) runtime.RawExtension {
		if p == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(p)
		Expect(err).NotTo(HaveOccurred())
		return runtime.RawExtension{Raw: b}
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("e2e-" + path), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Name: pod.Name, Operation: op, Object: raw(pod), OldObject: raw(old),
		},
	})
	Expect(err).NotTo(HaveOccurred())
	return b
}

// postReview sends a review straight to the webhook, as the API server does.
func postReview(path string, op admissionv1.Operation, ns string, pod, old *corev1.Pod) admissionv1.AdmissionReview {
	resp, err := httpsClient.Post("https://"+webhookAddr+path, "application/json", bytes.NewReader(reviewBody(path, op, ns, pod, old)))
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var review admissionv1.AdmissionReview
	Expect(json.NewDecoder(resp.Body).Decode(&review)).To(Succeed())
	Expect(review.Response).NotTo(BeNil())
	return review
}

func scrape() string {
	resp, err := http.Get(metricsURL)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

// mutateCount is the number of CREATE requests the mutating path answered
// with result.
func mutateCount(result string) float64 {
	m := regexp.MustCompile(`gmsa_webhook_admission_requests_total\{operation="CREATE",path="/mutate",reason="[A-Za-z]*",result="` + result + `"\} ([0-9.e+]+)`).
		FindStringSubmatch(scrape())
	if m == nil {
		return 0
	}
	n, err := strconv.ParseFloat(m[1], 64)
	Expect(err).NotTo(HaveOccurred())
	return n
}
