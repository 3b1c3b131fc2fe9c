// Package manager wires the gmsa-operator controllers into a
// controller-runtime manager. The manager binary and the test suites build
// their manager here, so tests run exactly what ships.
package manager

import (
	"context"
	"fmt"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/controllers"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
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
	metricsAddr := opts.MetricsAddr
	if metricsAddr == "" {
		metricsAddr = "0"
	}
	managed := cache.ByObject{Label: ManagedSelector()}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme.New(),
		Cache: cache.Options{
			SyncPeriod: opts.SyncPeriod,
			// Nothing reads managedFields from the cache: dropping them
			// saves a large share of its memory.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&rbacv1.ClusterRole{}: managed,
				&rbacv1.RoleBinding{}: managed,
			},
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
	ctx := context.Background()
	workers := opts.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 4
	}
	if err := (&controllers.GmsaAccountReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("gmsa-operator"),
		MaxConcurrentReconciles: workers,
	}).SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("set up GmsaAccount controller: %w", err)
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
