// Command manager runs the gmsa-operator controllers: it reconciles
// GmsaStack and GmsaAccount objects into the cluster's gMSA stack.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gmsa-operator/gmsa-operator/internal/manager"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "dev"

func main() {
	if webhook, ok := asWebhook(os.Args); ok {
		// The image's entrypoint started as a webhook: a GmsaStack whose
		// spec.webhook.image names the operator's own image under another
		// name (a mirror, a digest) runs it as it runs the upstream webhook
		// image, with the upstream arguments. The webhook binary sits beside
		// this one in the image.
		err := syscall.Exec(webhook, append([]string{webhook}, os.Args[1:]...), os.Environ())
		fmt.Fprintln(os.Stderr, "manager: started with the webhook's arguments; run", webhook+":", err)
		os.Exit(1)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

// asWebhook reports whether the manager was started with the arguments the
// GmsaStack gives a webhook image it does not know as the operator's own
// (--cert-reload, which the manager has no use for), and the webhook binary
// to run instead.
func asWebhook(args []string) (string, bool) {
	if len(args) < 2 || (args[1] != "--cert-reload" && !strings.HasPrefix(args[1], "--cert-reload=")) {
		return "", false
	}
	return filepath.Join(filepath.Dir(args[0]), "webhook"), true
}

func run() error {
	var (
		metricsAddr     string
		probeAddr       string
		leaderElect     bool
		leaderElectNS   string
		secureMetrics   bool
		showVersionOnly bool
		qps             float64
		burst           int
		workers         int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with authentication and authorization through the API server.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz endpoints bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time.")
	flag.StringVar(&leaderElectNS, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to the pod's namespace.")
	flag.Float64Var(&qps, "kube-api-qps", 50, "Requests per second to the API server, sustained.")
	flag.IntVar(&burst, "kube-api-burst", 100, "Requests to the API server in a burst.")
	flag.IntVar(&workers, "max-concurrent-reconciles", 4, "Objects of one kind reconciled at once.")
	flag.BoolVar(&showVersionOnly, "version", false, "Print the version and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if err := checkLimits(qps, burst, workers); err != nil {
		return err
	}

	if showVersionOnly {
		fmt.Println(version)
		return nil
	}

	logger := zap.New(zap.UseFlagOptions(&zapOpts))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	log := ctrl.Log.WithName("setup")

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	// rest_client_rate_limiter_duration_seconds says whether the manager
	// waits on its own --kube-api-qps limit (a busy cluster's first
	// question when GmsaAccounts converge slowly).
	metrics.RegisterRESTClientMetrics(metrics.MetricRateLimiterLatency)
	mgr, err := manager.New(cfg, manager.Options{
		MetricsAddr:             metricsAddr,
		SecureMetrics:           secureMetrics,
		ProbeAddr:               probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionNamespace: leaderElectNS,
		MaxConcurrentReconciles: workers,
		OperatorImage:           os.Getenv(stack.OperatorImageEnv),
	})
	if err != nil {
		return err
	}

	log.Info("starting manager", "version", version)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// checkLimits refuses rate limits and concurrency that would stall the
// manager, naming the flag at fault.
func checkLimits(qps float64, burst, workers int) error {
	switch {
	case qps <= 0:
		return fmt.Errorf("--kube-api-qps must be greater than 0, got %v", qps)
	case burst < 1:
		return fmt.Errorf("--kube-api-burst must be at least 1, got %d", burst)
	case workers < 1:
		return fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", workers)
	}
	return nil
}
