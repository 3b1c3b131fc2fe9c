// Package admissionconfig checks, against a real API server, the webhook
// configurations a GmsaStack registers (internal/stack): with every webhook
// replica down and failurePolicy Fail, a pod that mentions no gMSA is still
// admitted, and a pod that mentions one is refused.
package admissionconfig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gmsa-operator/gmsa-operator/internal/stack"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

var (
	env *harness.Env
	k8s client.Client
	ctx = context.Background()
)

func TestAdmissionConfig(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Admission configuration Suite")
}

func selfSignedCA() []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

var _ = BeforeSuite(func() {
	var err error
	env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.104.0/24", NoControllerManager: true})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client

	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "gmsa-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "opted-out", Labels: map[string]string{stack.DisabledLabel: "true"}}},
	} {
		Expect(k8s.Create(ctx, ns)).To(Succeed())
	}
	// The webhook's Service exists, but no replica serves it.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "gmsa-webhook", Namespace: "gmsa-system"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}},
	}
	Expect(k8s.Create(ctx, svc)).To(Succeed())
	Expect(svc.Spec.ClusterIP).To(HavePrefix("127.0.104."))

	mutating, validating := stack.WebhookConfigurations(stack.AdmissionOptions{
		Name: "gmsa-webhook", Namespace: "gmsa-system", ServiceName: "gmsa-webhook", Port: 443,
		CABundle: selfSignedCA(), FailurePolicy: admissionregistrationv1.Fail, TimeoutSeconds: 5,
	})
	// The API server accepts them: the CEL match condition compiles.
	Expect(k8s.Create(ctx, mutating)).To(Succeed())
	Expect(k8s.Create(ctx, validating)).To(Succeed())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

func pod(name, ns string, mutate func(p *corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeSelector:                 map[string]string{"kubernetes.io/os": "windows"},
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "windows/servercore:ltsc2022"}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func gmsaName(name string) *corev1.WindowsSecurityContextOptions {
	return &corev1.WindowsSecurityContextOptions{GMSACredentialSpecName: &name}
}

var _ = Describe("webhook configurations with no webhook running (failurePolicy Fail)", func() {
	It("admits a pod that mentions no gMSA, and updates of it", func() {
		// The configurations take effect asynchronously; a gMSA pod being
		// refused proves they are active before the plain pod is tried.
		Eventually(func() error {
			return k8s.Create(ctx, pod("probe", "apps", func(p *corev1.Pod) {
				p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: gmsaName("webapp1")}
			}), client.DryRunAll)
		}, 30*time.Second).Should(MatchError(ContainSubstring("failed calling webhook")))

		plain := pod("plain", "apps", nil)
		Expect(k8s.Create(ctx, plain)).To(Succeed())
		plain.Labels = map[string]string{"changed": "yes"}
		Expect(k8s.Update(ctx, plain)).To(Succeed())
	})

	DescribeTable("refuses a pod that mentions a gMSA, wherever it does",
		func(mutate func(p *corev1.Pod)) {
			err := k8s.Create(ctx, pod("gmsa", "apps", mutate))
			Expect(err).To(MatchError(ContainSubstring("failed calling webhook")))
		},
		Entry("pod-level name", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: gmsaName("webapp1")}
		}),
		Entry("container-level name", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{WindowsOptions: gmsaName("webapp1")}
		}),
		Entry("init container content without a name", func(p *corev1.Pod) {
			content := `{"CmsPlugins":["ActiveDirectory"]}`
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "windows/servercore:ltsc2022",
				SecurityContext: &corev1.SecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{GMSACredentialSpec: &content}}}}
		}),
	)

	It("never sends pods of excluded namespaces to the webhook", func() {
		for _, ns := range []string{"opted-out", "gmsa-system"} {
			Expect(k8s.Create(ctx, pod("gmsa", ns, func(p *corev1.Pod) {
				p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: gmsaName("webapp1")}
			}))).To(Succeed(), ns)
		}
	})
})
