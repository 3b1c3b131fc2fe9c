// Package webhook_test runs the gMSA admission webhook end to end: the real
// kube-apiserver calls it through a clientConfig.service webhook
// configuration while the test creates pods through the API. The webhook is
// served in-process on the Service's ClusterIP (127.0.101.x: the harness
// keeps the service range on loopback) and port, with a certificate for
// <svc>.<ns>.svc from internal/certs, under a least-privilege identity.
package webhook_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook/cluster"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const (
	webhookNamespace = "gmsa-system"
	webhookService   = "gmsa-webhook"
	webhookPort      = 8443
	// testLabel selects the namespaces the webhooks act on.
	testLabel = "gmsa-e2e"

	mutatingName   = "pod-mutate.gmsa.io"
	validatingName = "pod-validate.gmsa.io"
)

var (
	env       *harness.Env
	k8s       client.Client
	clientset *kubernetes.Clientset
	ctx       context.Context

	// ca signs every serving certificate of the suite; it is the caBundle.
	ca *certs.KeyPair
	// volume holds tls.crt and tls.key as the kubelet mounts a Secret.
	volume *harness.SecretVolume
	// webhookAddr is <ClusterIP>:<port>, where the API server calls.
	webhookAddr string
	// metricsURL is the webhook's /metrics.
	metricsURL string
	// httpsClient trusts ca and checks the Service's DNS name.
	httpsClient *http.Client

	stopWebhook context.CancelFunc
	webhookDone chan error
)

func TestWebhook(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Admission webhook end-to-end Suite")
}

var _ = BeforeSuite(func() {
	ctx = context.Background()
	var err error
	env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.101.0/24"})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client
	clientset, err = kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())

	By("creating the webhook's namespace and Service, and reading its loopback ClusterIP")
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhookNamespace}})).To(Succeed())
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: webhookService, Namespace: webhookNamespace},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: webhookPort}}},
	}
	Expect(k8s.Create(ctx, svc)).To(Succeed())
	ip := net.ParseIP(svc.Spec.ClusterIP)
	Expect(ip).NotTo(BeNil())
	Expect(ip.IsLoopback()).To(BeTrue(), "ClusterIP %s is not on loopback", ip)
	webhookAddr = net.JoinHostPort(ip.String(), strconv.Itoa(webhookPort))

	By("issuing the serving certificate for <svc>.<ns>.svc into a Secret-like volume")
	ca, err = certs.NewCA("gmsa-webhook-ca", time.Now(), 24*time.Hour)
	Expect(err).NotTo(HaveOccurred())
	volume, err = harness.NewSecretVolume(GinkgoT().TempDir(), servingFiles())
	Expect(err).NotTo(HaveOccurred())
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	httpsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: webhookService + "." + webhookNamespace + ".svc"},
	}}

	By("creating a credspec before the webhook starts (initial list) and one after (watch)")
	Expect(k8s.Create(ctx, credSpec("webapp1", webapp1Spec))).To(Succeed())

	By("serving the webhook under its least-privilege identity")
	webhookConfig := webhookIdentity()
	var webhookCtx context.Context
	webhookCtx, stopWebhook = context.WithCancel(context.Background())
	webhookDone = make(chan error, 1)
	metricsAddr := make(chan net.Addr, 1)
	go func() {
		defer GinkgoRecover()
		webhookDone <- cluster.Run(webhookCtx, cluster.Config{
			CertFile:      filepath.Join(volume.Dir, "tls.crt"),
			KeyFile:       filepath.Join(volume.Dir, "tls.key"),
			Addr:          webhookAddr,
			MetricsAddr:   "127.0.0.1:0",
			Version:       "e2e",
			KubeConfig:    webhookConfig,
			ShutdownDelay: -1,
			Log:           zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)),
			Listening:     func(_, m net.Addr) { metricsAddr <- m },
		})
	}()
	var m net.Addr
	Eventually(metricsAddr).WithTimeout(20 * time.Second).Should(Receive(&m))
	metricsURL = "http://" + m.String() + "/metrics"
	Expect(k8s.Create(ctx, credSpec("webapp2", webapp2Spec))).To(Succeed())
	Expect(k8s.Create(ctx, credSpec("nocontent", nil))).To(Succeed())
	Eventually(func() (int, error) {
		resp, err := httpsClient.Get("https://" + webhookAddr + "/health")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}).WithTimeout(30*time.Second).Should(Equal(http.StatusNoContent), "webhook never became ready")

	By("registering the mutating and validating webhooks through clientConfig.service with the CA in caBundle")
	registerWebhooks()

	By("waiting until the API server calls the webhook")
	probe := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probe", Labels: map[string]string{testLabel: "true"}}}
	Expect(k8s.Create(ctx, probe)).To(Succeed())
	Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: probe.Name}})).To(Succeed())
	Eventually(func() error {
		return k8s.Create(ctx, gmsaPod("probe", "app", in(probe.Name), podLevel("does-not-exist", "")), client.DryRunAll)
	}).WithTimeout(30 * time.Second).Should(deniedBy(mutatingName, "cred spec does-not-exist does not exist"))
})

var _ = AfterSuite(func() {
	if stopWebhook != nil {
		stopWebhook()
		Eventually(webhookDone).WithTimeout(30 * time.Second).Should(Receive(BeNil()))
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// webhookIdentity returns a config that impersonates the webhook's service
// account, bound to exactly what DESIGN.md grants it: get/list/watch
// gmsacredentialspecs and create localsubjectaccessreviews.
func webhookIdentity() *rest.Config {
	const sa = "gmsa-webhook"
	Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: webhookNamespace}})).To(Succeed())
	Expect(k8s.Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "gmsa-webhook"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"windows.k8s.io"}, Resources: []string{"gmsacredentialspecs"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}, Verbs: []string{"create"}},
		},
	})).To(Succeed())
	Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "gmsa-webhook"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "gmsa-webhook"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: webhookNamespace}},
	})).To(Succeed())
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: cluster.ServiceAccountUser(webhookNamespace, sa),
		Groups:   append(cluster.ServiceAccountGroups(webhookNamespace), "system:authenticated"),
	}
	return cfg
}

func registerWebhooks() {
	path := func(p string) *string { return &p }
	port := int32(webhookPort)
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	ref := func(p string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: webhookNamespace, Name: webhookService, Path: path(p), Port: &port},
			CABundle: ca.CertPEM,
		}
	}
	rules := []admissionregistrationv1.RuleWithOperations{
		{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}},
		{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/ephemeralcontainers"}}},
	}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{testLabel: "true"}}
	Expect(k8s.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "gmsa-webhook"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: mutatingName, ClientConfig: ref("/mutate"), Rules: rules, FailurePolicy: &fail, SideEffects: &none,
			TimeoutSeconds: &timeout, AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: selector,
		}},
	})).To(Succeed())
	Expect(k8s.Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "gmsa-webhook"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: validatingName, ClientConfig: ref("/validate"), Rules: rules, FailurePolicy: &fail, SideEffects: &none,
			TimeoutSeconds: &timeout, AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: selector,
		}},
	})).To(Succeed())
}

// servingFiles issues a new serving certificate signed by ca.
func servingFiles() map[string][]byte {
	leaf, err := certs.NewServingCert(ca, certs.ServiceDNSNames(webhookService, webhookNamespace), time.Now(), time.Hour)
	Expect(err).NotTo(HaveOccurred())
	return map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM}
}

// credSpec is a GMSACredentialSpec; content nil leaves out the credspec field.
func credSpec(name string, content map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "windows.k8s.io/v1",
		"kind":       "GMSACredentialSpec",
		"metadata":   map[string]any{"name": name},
	}}
	if content != nil {
		u.Object["credspec"] = content
	}
	return u
}
