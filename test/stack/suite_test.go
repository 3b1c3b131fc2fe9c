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
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook/cluster"
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
	cancelMgr context.CancelFunc
	mgrDone   chan error
	kl        *kubelet
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

	By("starting the manager with its own image given as RELATED_IMAGE_WEBHOOK")
	mgr, err := manager.New(rest.CopyConfig(env.Config), manager.Options{OperatorImage: operatorImage})
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	cancelMgr = cancel
	mgrDone = make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		mgrDone <- mgr.Start(ctx)
	}()

	kl = startKubelet()
})

var _ = AfterSuite(func() {
	if kl != nil {
		kl.stop()
	}
	if cancelMgr != nil {
		cancelMgr()
		Eventually(mgrDone, 30*time.Second).Should(Receive(BeNil()))
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// webhookIdentity impersonates the webhook's ServiceAccount: the server the
// test runs has exactly the RBAC the operator gave the webhook.
func webhookIdentity() *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + stack.WebhookName,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	return cfg
}

// kubelet plays the kubelet for the webhook pods: it mounts the serving
// certificate Secret into a directory (kubelet layout, updated in place),
// runs the webhook on the Service's ClusterIP and port, and keeps the pods'
// Ready condition equal to the webhook's readiness (GET /health over TLS,
// trusted through the Secret's ca.crt). Pods of an image it does not know
// never become ready.
type kubelet struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	serving bool // the test's switch: false stops the webhook
	server  *server
	volume  *harness.SecretVolume
	secret  string // resourceVersion of the mounted Secret
	bundle  []byte // the mounted ca.crt
	addr    string
	images  map[string]bool
	healthy bool
}

type server struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startKubelet() *kubelet {
	ctx, cancel := context.WithCancel(context.Background())
	k := &kubelet{cancel: cancel, done: make(chan struct{}), serving: true, images: map[string]bool{operatorImage: true, "gmsa-operator:e2e-v2": true}}
	go func() {
		defer close(k.done)
		for ctx.Err() == nil {
			if err := k.sync(ctx); err != nil && ctx.Err() == nil {
				GinkgoWriter.Printf("kubelet: %v\n", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		k.stopServer()
	}()
	return k
}

func (k *kubelet) stop() {
	k.cancel()
	<-k.done
}

// setServing switches the webhook on or off (every replica down).
func (k *kubelet) setServing(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.serving = on
	if !on {
		k.stopServer()
	}
}

func (k *kubelet) stopServer() {
	if k.server != nil {
		k.server.cancel()
		<-k.server.done
		k.server = nil
		k.healthy = false
	}
}

func (k *kubelet) sync(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	svc := &corev1.Service{}
	secret := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}, svc); err != nil {
		k.stopServer()
		return client.IgnoreNotFound(err)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.TLSSecretName}, secret); err != nil {
		k.stopServer()
		return client.IgnoreNotFound(err)
	}
	files := map[string][]byte{stack.TLSCertKey: secret.Data[stack.TLSCertKey], stack.TLSKeyKey: secret.Data[stack.TLSKeyKey]}
	switch {
	case k.volume == nil:
		dir, err := os.MkdirTemp(env.Dir, "tls-")
		if err != nil {
			return err
		}
		if k.volume, err = harness.NewSecretVolume(dir, files); err != nil {
			return err
		}
	case secret.ResourceVersion != k.secret:
		if err := k.volume.Update(files); err != nil {
			return err
		}
	}
	k.secret, k.bundle = secret.ResourceVersion, secret.Data[stack.CACertKey]
	k.addr = net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(svc.Spec.Ports[0].Port))
	if k.server != nil && k.server.addr != k.addr {
		k.stopServer() // a new Service, a new ClusterIP
	}
	if k.serving && k.server == nil {
		sctx, cancel := context.WithCancel(context.Background())
		s := &server{addr: k.addr, cancel: cancel, done: make(chan error, 1)}
		go func() {
			s.done <- cluster.Run(sctx, cluster.Config{
				CertFile: filepath.Join(k.volume.Dir, stack.TLSCertKey), KeyFile: filepath.Join(k.volume.Dir, stack.TLSKeyKey),
				Addr: k.addr, MetricsAddr: "0", Version: "e2e", KubeConfig: webhookIdentity(), ShutdownDelay: -1,
				CertPollInterval: 100 * time.Millisecond,
				Log:              zap.New(zap.WriteTo(GinkgoWriter)),
			})
		}()
		k.server = s
	}
	k.healthy = k.server != nil && k.probe() == nil

	pods := &corev1.PodList{}
	if err := k8s.List(ctx, pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/name": stack.WebhookName}); err != nil {
		return err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		ready := k.healthy && k.images[p.Spec.Containers[0].Image]
		if podReady(p) == ready && p.Status.Phase == corev1.PodRunning {
			continue
		}
		setPodReady(p, ready)
		if err := k8s.Status().Update(ctx, p); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// probe is the readiness probe: GET /health over TLS, trusting the CA
// bundle mounted with the certificate.
func (k *kubelet) probe() error {
	roots := x509.NewCertPool()
	cas, err := certs.ParseCertificates(k.bundle)
	if err != nil {
		return err
	}
	for _, c := range cas {
		roots.AddCert(c)
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: stack.WebhookName + "." + namespace + ".svc", MinVersion: tls.VersionTLS12,
	}}}
	resp, err := c.Get("https://" + k.addr + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return errors.New(resp.Status)
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setPodReady(p *corev1.Pod, ready bool) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = "127.0.106.250"
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
	}
	c := p.Spec.Containers[0]
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: ready, Started: &ready,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
	}}
}
