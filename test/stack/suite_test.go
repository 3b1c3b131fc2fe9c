// Package stack_test is the end-to-end story of a GmsaStack on a real
// kube-apiserver, etcd and kube-controller-manager, with the operator's
// manager running. The test plays the kubelet: it serves cmd/webhook's
// code on the Service's loopback ClusterIP (127.0.106.x:443) with the
// certificate files taken from the operator's Secret, laid out as the
// kubelet mounts a Secret, and marks the webhook pods Ready only when that
// server answers its readiness check over TLS, trusted through the Secret's
// CA. The API server then calls the webhook over TLS with the certificate
// the operator made.
package stack_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const (
	// operatorImage is the manager's own image (RELATED_IMAGE_WEBHOOK).
	operatorImage = "gmsa-operator:e2e"
	// brokenImage never becomes ready: the fake kubelet does not run it.
	brokenImage = "gmsa-operator:broken"
	namespace   = "gmsa-system"
)

var (
	env       *harness.Env
	k8s       client.Client
	clientset *kubernetes.Clientset
	mgr       *harness.InProcessManager
	kl        *harness.Kubelet
	// requests records the permissions the manager's requests needed.
	requests = &harness.RequestRecorder{}
)

func TestStack(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "GmsaStack end-to-end suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	if os.Geteuid() != 0 {
		Skip("the API server calls the webhook on the Service's port 443: serving it on loopback needs root")
	}
	cmCRDs, err := harness.CertManagerCRDs()
	Expect(err).NotTo(HaveOccurred())
	env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.106.0/24", NoCredentialSpecCRD: true, ExtraCRDPaths: []string{cmCRDs}})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client
	clientset = kubernetes.NewForConfigOrDie(env.Config)

	By("installing an older revision of the GMSACredentialSpec CRD, as an earlier operator did, with a credspec in it")
	installOldCRD()

	By("starting the manager as the operator's ServiceAccount, with only the RBAC config/default grants it, and its own image given as RELATED_IMAGE_WEBHOOK")
	operatorConfig, err := env.InstallOperatorRBAC(context.Background())
	Expect(err).NotTo(HaveOccurred())
	operatorConfig.WrapTransport = requests.Wrap
	mgr, err = harness.RunManager(operatorConfig, manager.Options{OperatorImage: operatorImage})
	Expect(err).NotTo(HaveOccurred())

	kl = harness.StartKubelet(harness.KubeletOptions{
		Client: k8s, Config: env.Config, Namespace: namespace, PodIP: "192.0.2.60", Log: GinkgoWriter,
		Images: []string{operatorImage, "gmsa-operator:e2e-v2"},
	})
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
