// Package manager wires the gmsa-operator controllers into a
// controller-runtime manager. The manager binary and the test suites build
// their manager here, so tests run exactly what ships.
package manager

import (
	"context"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/controllers"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/metrics"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
)

// LeaderElectionID is the name of the leader election Lease.
const LeaderElectionID = "gmsa-operator.gmsa.io"

// Options configure the manager.
type Options struct {
	// MetricsAddr is the metrics endpoint's address; "0" disables it.
	MetricsAddr string
	// SecureMetrics serves metrics over HTTPS with authentication.
	SecureMetrics bool
	// ProbeAddr is the address of /healthz and /readyz; "" or "0" disables
	// them.
	ProbeAddr string
	// LeaderElection turns leader election on.
	LeaderElection bool
	// LeaderElectionNamespace is where the Lease lives.
	LeaderElectionNamespace string
	// MaxConcurrentReconciles is how many objects of one kind are
	// reconciled at once; 0 means 4.
	MaxConcurrentReconciles int
	// OperatorImage is the operator's own image, the webhook's default
	// image (cmd/manager reads it from RELATED_IMAGE_WEBHOOK).
	OperatorImage string
	// SyncPeriod, when set, makes every watched object be reconciled again
	// at this interval (tests use it to force a resync).
	SyncPeriod *time.Duration
}

// ManagedSelector selects the objects the operator generates. The cache
// holds only those of the kinds a large cluster has many of (RBAC objects,
// Secrets, Deployments...), so memory does not grow with the cluster.
func ManagedSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{gmsav1alpha1.LabelManagedBy: gmsav1alpha1.ManagedByValue})
}

// New returns a manager with every gmsa-operator controller registered and
// health checks in place. It does not start it.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	metrics.Register()
	metricsAddr := opts.MetricsAddr
	if metricsAddr == "" {
		metricsAddr = "0"
	}
	// cert-manager's kinds are cached and watched only when its CRDs are
	// installed (a cache of a kind the API server lacks fails to start).
	direct, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	ctx := context.Background()
	certManager, err := crdInstalled(ctx, direct, "certificates.cert-manager.io")
	if err != nil {
		return nil, err
	}
	policyAPI, err := PolicyAPIServed(cfg)
	if err != nil {
		return nil, err
	}
	managed := cache.ByObject{Label: ManagedSelector()}
	byObject := map[client.Object]cache.ByObject{
		&rbacv1.ClusterRole{}:           managed,
		&rbacv1.RoleBinding{}:           managed,
		&rbacv1.ClusterRoleBinding{}:    managed,
		&corev1.Secret{}:                managed,
		&corev1.Service{}:               managed,
		&corev1.ServiceAccount{}:        managed,
		&appsv1.Deployment{}:            managed,
		&policyv1.PodDisruptionBudget{}: managed,
		// Only the webhook Service's endpoints.
		&discoveryv1.EndpointSlice{}:                              {Label: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: stack.WebhookName})},
		&admissionregistrationv1.MutatingWebhookConfiguration{}:   managed,
		&admissionregistrationv1.ValidatingWebhookConfiguration{}: managed,
		// Only the one CRD the operator installs, not every CRD of the
		// cluster (some are megabytes).
		&apiextensionsv1.CustomResourceDefinition{}: {Field: fields.OneTermEqualSelector("metadata.name", credspeccrd.Name)},
		// Every namespace, as metadata only (one informer, shared by both
		// controllers); of the ones the operator did not make, only what
		// the GmsaAccount controller reads (name, deletion) is kept.
		&corev1.Namespace{}: {Transform: trimNamespace},
	}
	if policyAPI {
		byObject[&admissionregistrationv1.MutatingAdmissionPolicy{}] = managed
		byObject[&admissionregistrationv1.MutatingAdmissionPolicyBinding{}] = managed
		byObject[&admissionregistrationv1.ValidatingAdmissionPolicy{}] = managed
		byObject[&admissionregistrationv1.ValidatingAdmissionPolicyBinding{}] = managed
		byObject[&gmsav1alpha1.GmsaCredSpecSet{}] = managed
	}
	if certManager {
		byObject[&cmapi.Certificate{}] = managed
		// Issuers and ClusterIssuers are cached whole: a GmsaStack may name
		// one of the user's, and they are few.
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme.New(),
		Cache: cache.Options{
			SyncPeriod: opts.SyncPeriod,
			// Nothing reads managedFields from the cache: dropping them
			// saves a large share of its memory.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         byObject,
		},
		// Credspecs have no Go type here: read them as unstructured objects,
		// from the cache like everything else.
		Client:                        client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		Metrics:                       metricsOptions(metricsAddr, opts.SecureMetrics),
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	workers := opts.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 4
	}
	stacks := &controllers.GmsaStackReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Recorder:      mgr.GetEventRecorder("gmsa-operator"),
		OperatorImage: opts.OperatorImage,
		CertManager:   certManager,
		PolicyAPI:     policyAPI,
	}
	if err := stacks.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up GmsaStack controller: %w", err)
	}
	accounts := &controllers.GmsaAccountReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("gmsa-operator"),
		MaxConcurrentReconciles: workers,
		PolicyAPI:               policyAPI,
	}
	// The GmsaAccount controller watches credspecs, which exist only once
	// the GMSACredentialSpec CRD does, and the GmsaStack controller may be
	// the one that installs it: start the GmsaAccount controller once the
	// CRD is there.
	if err := mgr.Add(&afterCRD{reader: mgr.GetAPIReader(), setup: func(ctx context.Context) error {
		if err := stacks.WatchCredSpecs(mgr); err != nil {
			return fmt.Errorf("watch GMSACredentialSpecs for Policy mode: %w", err)
		}
		return accounts.SetupWithManager(ctx, mgr)
	}}); err != nil {
		return nil, err
	}
	if opts.ProbeAddr != "" && opts.ProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return nil, fmt.Errorf("add health check: %w", err)
		}
		if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
			return nil, fmt.Errorf("add ready check: %w", err)
		}
	}
	return mgr, nil
}

// metricsOptions serves metrics over plain HTTP, or over HTTPS where every
// request is authenticated (TokenReview) and authorized
// (SubjectAccessReview for GET /metrics) by the API server.
func metricsOptions(addr string, secure bool) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if secure {
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return o
}

// PolicyAPIServed reports whether the API server serves
// MutatingAdmissionPolicy in admissionregistration.k8s.io/v1 (Kubernetes
// 1.36 and later), which Policy mode needs.
func PolicyAPIServed(cfg *rest.Config) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("create discovery client: %w", err)
	}
	list, err := dc.ServerResourcesForGroupVersion(admissionregistrationv1.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", admissionregistrationv1.SchemeGroupVersion, err)
	}
	for _, r := range list.APIResources {
		if r.Name == "mutatingadmissionpolicies" {
			return true, nil
		}
	}
	return false, nil
}

// crdInstalled reports whether the API server has the named CRD.
func crdInstalled(ctx context.Context, r client.Reader, name string) (bool, error) {
	err := r.Get(ctx, client.ObjectKey{Name: name}, &apiextensionsv1.CustomResourceDefinition{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("look for CRD %s: %w", name, err)
}

// afterCRD runs setup (registering a controller) once the
// GMSACredentialSpec CRD is Established, polling until then. It runs under
// leader election, as the controllers do.
type afterCRD struct {
	reader client.Reader
	setup  func(context.Context) error
}

func (a *afterCRD) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("setup")
	waited := false
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		err := a.reader.Get(ctx, client.ObjectKey{Name: credspeccrd.Name}, crd)
		if err == nil && credspeccrd.Established(crd) {
			if waited {
				log.Info("CRD is established; starting the GmsaAccount controller", "crd", credspeccrd.Name)
			}
			return a.setup(ctx)
		}
		if client.IgnoreNotFound(err) != nil {
			log.Error(err, "look for CRD", "crd", credspeccrd.Name)
		} else if !waited {
			log.Info("GmsaAccounts wait for the GMSACredentialSpec CRD (a GmsaStack installs it)", "crd", credspeccrd.Name)
		}
		waited = true
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// trimNamespace keeps, of a namespace the operator did not make, its
// identity and deletion state: the labels and annotations (kubectl's
// last-applied configuration, say) of every namespace of a large cluster
// would otherwise sit in the operator's memory for nothing. It also drops
// managedFields, as the default transform does for the other kinds.
func trimNamespace(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	o.SetManagedFields(nil)
	if o.GetLabels()[gmsav1alpha1.LabelManagedBy] != gmsav1alpha1.ManagedByValue {
		o.SetLabels(nil)
		o.SetAnnotations(nil)
	}
	return obj, nil
}
