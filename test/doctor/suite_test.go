// Package doctor_test runs `kubectl gmsa doctor` and `kubectl gmsa migrate`
// (the plugin's code, in process, with the kubeconfig a user would have)
// against a real kube-apiserver (1.37.1), etcd and kube-controller-manager
// with the operator's manager running, and asserts what a user sees: the
// lines printed and the exit code.
//
// Stand-in, as in test/stack and test/policy: the test plays the kubelet
// for the webhook pods (harness.Kubelet serves the webhook's real code on
// the Service's loopback ClusterIP, port 443, so the suite needs root). The
// pods report TEST-NET-1 addresses (192.0.2.0/24, RFC 5737), which
// kube-controller-manager's real EndpointSlice controller publishes; nothing
// ever dials them: the API server calls the webhook on the Service's
// ClusterIP.
package doctor_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/internal/plugin"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const (
	operatorImage = "gmsa-operator:e2e"
	namespace     = "gmsa-system"
)

var (
	env *harness.Env
	k8s client.Client
	mgr *harness.InProcessManager
	kl  *harness.Kubelet
)

func TestDoctor(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "kubectl gmsa suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	if os.Geteuid() != 0 {
		Skip("Webhook mode serves the webhook on the Service's port 443 on loopback: that needs root")
	}
	var err error
	env, err = harness.Start(harness.Options{ServiceCIDR: "127.0.112.0/24", NoCredentialSpecCRD: true})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client

	mgr, err = harness.RunManager(env.Config, manager.Options{OperatorImage: operatorImage})
	Expect(err).NotTo(HaveOccurred())
	kl = harness.StartKubelet(harness.KubeletOptions{
		Client: k8s, Config: env.Config, Namespace: namespace, PodIP: "192.0.2.112", Log: GinkgoWriter,
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

// kubectlGmsa runs `kubectl gmsa args...` with the administrator's
// kubeconfig and returns stdout, stderr and the exit code.
func kubectlGmsa(stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	args = append(args, "--kubeconfig", env.Kubeconfig)
	code = plugin.Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, "test")
	fmt.Fprintf(GinkgoWriter, "$ kubectl gmsa %s\n%s%s(exit %d)\n", strings.Join(args, " "), out.String(), errOut.String(), code)
	return out.String(), errOut.String(), code
}
