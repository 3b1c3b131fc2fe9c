// Package doctor_test runs `kubectl gmsa doctor` and `kubectl gmsa migrate`
// (the plugin's code, in process, with the kubeconfig a user would have)
// against a real kube-apiserver (1.37.1), etcd and kube-controller-manager
// with the operator's manager running, and asserts what a user sees: the
// lines printed and the exit code.
//
// Stand-ins, as in test/stack and test/policy: the test plays the kubelet
// for the webhook pods (harness.Kubelet serves the webhook's real code on
// the Service's loopback ClusterIP, port 443, so the suite needs root), and
// plays the EndpointSlice controller, which the harness does not run
// (EndpointSlices refuse loopback addresses): it mirrors the webhook pods'
// readiness into an EndpointSlice with TEST-NET-1 addresses (192.0.2.0/24,
// RFC 5737). Nothing ever dials them: the API server calls the webhook on the
// Service's ClusterIP.
package doctor_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/internal/plugin"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const (
	operatorImage = "gmsa-operator:e2e"
	namespace     = "gmsa-system"
)

var (
	env       *harness.Env
	k8s       client.Client
	cancelMgr context.CancelFunc
	mgrDone   chan error
	kl        *harness.Kubelet
	stopEPs   context.CancelFunc
	epsDone   chan struct{}
	// endpointsDown makes the EndpointSlice stand-in report every webhook
	// endpoint not ready, as the real controller does when the pods are
	// not ready.
	endpointsDown atomic.Bool
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

	mgr, err := manager.New(env.Config, manager.Options{OperatorImage: operatorImage})
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	cancelMgr = cancel
	mgrDone = make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		mgrDone <- mgr.Start(ctx)
	}()
	kl = harness.StartKubelet(harness.KubeletOptions{
		Client: k8s, Config: env.Config, Namespace: namespace, PodIP: "127.0.112.250", Log: GinkgoWriter,
		Images: []string{operatorImage},
	})
	epCtx, epCancel := context.WithCancel(context.Background())
	stopEPs, epsDone = epCancel, make(chan struct{})
	go func() {
		defer close(epsDone)
		for epCtx.Err() == nil {
			if err := syncEndpoints(epCtx); err != nil && epCtx.Err() == nil {
				fmt.Fprintf(GinkgoWriter, "endpointslice stand-in: %v\n", err)
			}
			select {
			case <-epCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
})

var _ = AfterSuite(func() {
	if stopEPs != nil {
		stopEPs()
		<-epsDone
	}
	if kl != nil {
		kl.Stop()
	}
	if cancelMgr != nil {
		cancelMgr()
		Eventually(mgrDone, 30*time.Second).Should(Receive(BeNil()))
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// syncEndpoints plays the EndpointSlice controller for the webhook Service:
// one endpoint per webhook pod, ready when the pod is Ready.
func syncEndpoints(ctx context.Context) error {
	pods := &corev1.PodList{}
	if err := k8s.List(ctx, pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/name": stack.WebhookName}); err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName + "-standin", Namespace: namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: stack.WebhookName, discoveryv1.LabelManagedBy: "doctor-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(stack.ContainerPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for i, p := range pods.Items {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		ready := !endpointsDown.Load()
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = ready && c.Status == corev1.ConditionTrue
			}
		}
		if len(p.Status.Conditions) == 0 {
			ready = false
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("192.0.2.%d", i+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
		})
	}
	live := &discoveryv1.EndpointSlice{}
	err := k8s.Get(ctx, client.ObjectKeyFromObject(slice), live)
	if apierrors.IsNotFound(err) {
		return client.IgnoreAlreadyExists(k8s.Create(ctx, slice))
	}
	if err != nil {
		return err
	}
	live.Endpoints, live.Ports = slice.Endpoints, slice.Ports
	return client.IgnoreNotFound(k8s.Update(ctx, live))
}

// kubectlGmsa runs `kubectl gmsa args...` with the administrator's
// kubeconfig and returns stdout, stderr and the exit code.
func kubectlGmsa(stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	args = append(args, "--kubeconfig", env.Kubeconfig)
	code = plugin.Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, "test")
	fmt.Fprintf(GinkgoWriter, "$ kubectl gmsa %s\n%s%s(exit %d)\n", strings.Join(args, " "), out.String(), errOut.String(), code)
	return out.String(), errOut.String(), code
}
