// Package manager wires the gmsa-operator controllers into a
// controller-runtime manager. The manager binary and the test suites build
// their manager here, so tests run exactly what ships.
package manager

import (
	"fmt"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

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
}

// New returns a manager with every gmsa-operator controller registered and
// health checks in place. It does not start it.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	metricsAddr := opts.MetricsAddr
	if metricsAddr == "" {
		metricsAddr = "0"
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme.New(),
		Metrics: metricsserver.Options{
			BindAddress:   metricsAddr,
			SecureServing: opts.SecureMetrics,
		},
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
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
