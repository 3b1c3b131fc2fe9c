package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook/cluster"
)

// webhookIdentity impersonates the webhook's ServiceAccount: the server the
// kubelet runs has exactly the RBAC the operator gave the webhook.
func (k *Kubelet) webhookIdentity() *rest.Config {
	cfg := rest.CopyConfig(k.opts.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + k.opts.Namespace + ":" + stack.WebhookName,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + k.opts.Namespace, "system:authenticated"},
	}
	return cfg
}

// Kubelet plays the kubelet for the webhook pods: it mounts the serving
// certificate Secret into a directory (kubelet layout, updated in place),
// runs the webhook on the Service's ClusterIP and port, and keeps the pods'
// Ready condition equal to the webhook's readiness (GET /health over TLS,
// trusted through the Secret's ca.crt). Pods of an image it does not know
// never become ready.
type Kubelet struct {
	opts   KubeletOptions
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	serving bool // the test's switch: false stops the webhook
	server  *server
	volume  *SecretVolume
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

// KubeletOptions configure StartKubelet.
type KubeletOptions struct {
	// Client and Config reach the API server as an administrator.
	Client client.Client
	Config *rest.Config
	// Namespace of the webhook (its Service, Secret and pods).
	Namespace string
	// Images are the images whose pods become ready; others never do.
	Images []string
	// PodIP is the IP the pods report. Nothing connects to it (the webhook
	// serves on the Service's ClusterIP), but EndpointSlices publish it, and
	// they refuse loopback addresses: use a documentation address
	// (192.0.2.0/24).
	PodIP string
	// Log receives the kubelet's and the webhook's messages.
	Log io.Writer
	// MetricsAddr is where the webhook serves /metrics (plain HTTP, as the
	// pods' metrics port does); empty for nowhere.
	MetricsAddr string
}

// StartKubelet starts playing the kubelet for a GmsaStack's webhook.
func StartKubelet(o KubeletOptions) *Kubelet {
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kubelet{opts: o, cancel: cancel, done: make(chan struct{}), serving: true, images: map[string]bool{}}
	for _, img := range o.Images {
		k.images[img] = true
	}
	go func() {
		defer close(k.done)
		for ctx.Err() == nil {
			if err := k.sync(ctx); err != nil && ctx.Err() == nil {
				fmt.Fprintf(k.opts.Log, "kubelet: %v\n", err)
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

func (k *Kubelet) metricsAddr() string {
	if k.opts.MetricsAddr == "" {
		return "0"
	}
	return k.opts.MetricsAddr
}

// Stop stops the kubelet and the webhook it serves.
func (k *Kubelet) Stop() {
	k.cancel()
	<-k.done
}

// SetServing switches the webhook on or off (every replica down).
func (k *Kubelet) SetServing(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.serving = on
	if !on {
		k.stopServer()
	}
}

func (k *Kubelet) stopServer() {
	if k.server != nil {
		k.server.cancel()
		<-k.server.done
		k.server = nil
		k.healthy = false
	}
}

func (k *Kubelet) sync(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	// Pods are bound, removed and given their readiness even when there is
	// nothing to serve (the stack is being torn down).
	serr := k.syncServer(ctx)
	if err := k.syncPods(ctx); err != nil {
		return err
	}
	return serr
}

// syncServer runs the webhook on the Service's ClusterIP with the mounted
// Secret, and probes it.
func (k *Kubelet) syncServer(ctx context.Context) error {
	svc := &corev1.Service{}
	secret := &corev1.Secret{}
	if err := k.opts.Client.Get(ctx, client.ObjectKey{Namespace: k.opts.Namespace, Name: stack.WebhookName}, svc); err != nil {
		k.stopServer()
		return client.IgnoreNotFound(err)
	}
	if err := k.opts.Client.Get(ctx, client.ObjectKey{Namespace: k.opts.Namespace, Name: stack.TLSSecretName}, secret); err != nil {
		k.stopServer()
		return client.IgnoreNotFound(err)
	}
	files := map[string][]byte{stack.TLSCertKey: secret.Data[stack.TLSCertKey], stack.TLSKeyKey: secret.Data[stack.TLSKeyKey]}
	switch {
	case k.volume == nil:
		dir, err := os.MkdirTemp("", "gmsa-kubelet-tls-")
		if err != nil {
			return err
		}
		if k.volume, err = NewSecretVolume(dir, files); err != nil {
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
				Addr: k.addr, MetricsAddr: k.metricsAddr(), Version: "e2e", KubeConfig: k.webhookIdentity(), ShutdownDelay: -1,
				CertPollInterval: 100 * time.Millisecond,
				Log:              zap.New(zap.WriteTo(k.opts.Log)),
			})
		}()
		k.server = s
	}
	k.healthy = k.server != nil && k.probe() == nil
	return nil
}

// syncPods binds the webhook pods, removes deleted ones and keeps their
// Ready condition equal to the webhook's health.
func (k *Kubelet) syncPods(ctx context.Context) error {
	pods := &corev1.PodList{}
	if err := k.opts.Client.List(ctx, pods, client.InNamespace(k.opts.Namespace), client.MatchingLabels{"app.kubernetes.io/name": stack.WebhookName}); err != nil {
		return err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if !p.DeletionTimestamp.IsZero() {
			// A pod on a Node is deleted gracefully: the kubelet removes it
			// once its containers stopped. The webhook server is shared, so
			// nothing stops here.
			if p.Spec.NodeName != "" {
				if err := k.opts.Client.Delete(ctx, p, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
					return fmt.Errorf("remove deleted pod %s/%s: %w", p.Namespace, p.Name, err)
				}
			}
			continue
		}
		if p.Spec.NodeName == "" {
			// As the scheduler would: kube-controller-manager's EndpointSlice
			// controller publishes only pods on a Node it knows.
			if err := k.bind(ctx, p); err != nil {
				return err
			}
			continue // the next pass sees the bound pod
		}
		ready := k.healthy && k.images[p.Spec.Containers[0].Image]
		if podReady(p) == ready && p.Status.Phase == corev1.PodRunning {
			continue
		}
		setPodReady(p, ready, k.opts.PodIP)
		if err := k.opts.Client.Status().Update(ctx, p); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// NodeName is the Node the stand-in kubelet binds the webhook pods to.
const NodeName = "harness-node"

// bind puts p on the harness Node (made on first use).
func (k *Kubelet) bind(ctx context.Context, p *corev1.Pod) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: NodeName, Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelHostname: NodeName}}}
	if err := k.opts.Client.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Node %s: %w", NodeName, err)
	}
	binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
		Target: corev1.ObjectReference{Kind: "Node", Name: NodeName}}
	if err := k.opts.Client.SubResource("binding").Create(ctx, p, binding); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("bind pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// probe is the readiness probe: GET /health over TLS, trusting the CA
// bundle mounted with the certificate.
func (k *Kubelet) probe() error {
	roots := x509.NewCertPool()
	cas, err := certs.ParseCertificates(k.bundle)
	if err != nil {
		return err
	}
	for _, c := range cas {
		roots.AddCert(c)
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: stack.WebhookName + "." + k.opts.Namespace + ".svc", MinVersion: tls.VersionTLS12,
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

func setPodReady(p *corev1.Pod, ready bool, ip string) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
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
