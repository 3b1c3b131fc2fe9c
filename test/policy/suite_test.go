// Package policy_test proves Policy mode on a real kube-apiserver (1.37.1),
// etcd and kube-controller-manager with the operator's manager running: the
// API server fills in and checks credspecs itself with the admission
// policies the operator installs, with no webhook. The same pods go through
// Webhook mode too (the test plays the kubelet for the webhook, as
// test/stack does), and both modes must give the same answers.
package policy_test

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
	operatorImage = "gmsa-operator:e2e"
	namespace     = "gmsa-system"
)

var (
	env       *harness.Env
	k8s       client.Client
	clientset *kubernetes.Clientset
	mgr       *harness.InProcessManager
	kl        *harness.Kubelet
	requests  = &harness.RequestRecorder{}
)

func TestPolicy(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	RunSpecs(t, "Policy mode suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	if os.Geteuid() != 0 {
		Skip("Webhook mode, the parity baseline, serves the webhook on the Service's port 443 on loopback: that needs root")
	}
	var err error
	env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.107.0/24", NoCredentialSpecCRD: true})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client
	clientset = kubernetes.NewForConfigOrDie(env.Config)

	By("starting the manager as the operator's ServiceAccount, with only the RBAC config/default grants it")
	operatorConfig, err := env.InstallOperatorRBAC(context.Background())
	Expect(err).NotTo(HaveOccurred())
	operatorConfig.WrapTransport = requests.Wrap
	mgr, err = harness.RunManager(operatorConfig, manager.Options{OperatorImage: operatorImage})
	Expect(err).NotTo(HaveOccurred())
	kl = harness.StartKubelet(harness.KubeletOptions{
		Client: k8s, Config: env.Config, Namespace: namespace, PodIP: "192.0.2.70", Log: GinkgoWriter,
		Images: []string{operatorImage},
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
