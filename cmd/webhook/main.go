// Command webhook is the gMSA admission webhook: it expands
// gmsaCredentialSpecName into the JSON credential spec (POST /mutate) and
// checks that the pod's service account may `use` it (POST /validate).
//
// It is configured like the upstream webhook (kubernetes-sigs/windows-gmsa),
// so either image runs under the same Deployment:
//
//	TLS_CRT, TLS_KEY   serving certificate and key files (required; reloaded when they change)
//	HTTPS_PORT         HTTPS port (default 443)
//	LOG_LEVEL          panic, fatal, error, warn, info (default), debug or trace
//	RANDOM_HOSTNAME    true: give gMSA pods without spec.hostname a random one
//	QPS, BURST         client rate limits towards the API server
//	AUTHZ_CACHE_TTL    how long an authorization decision is reused (Go duration, default 2s; 0 reuses none)
//	AUTHZ_CACHE_SIZE   most authorization decisions kept (default 4096)
//	--cert-reload      accepted; certificates are always reloaded
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gmsa-operator/gmsa-operator/internal/webhook"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook/cluster"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		certReload      bool
		showVersion     bool
		metricsAddr     string
		shutdownDelay   time.Duration
		shutdownTimeout time.Duration
	)
	flag.BoolVar(&certReload, "cert-reload", true, "Accepted for compatibility with the upstream webhook; the certificate is always reloaded when its files change.")
	flag.BoolVar(&showVersion, "version", false, "Print the version and exit.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", cluster.DefaultMetricsAddr, "Plain-HTTP address of /metrics, /healthz and /readyz; 0 disables it.")
	flag.DurationVar(&shutdownDelay, "shutdown-delay", webhook.DefaultShutdownDelay, "How long to keep serving, not ready, after SIGTERM, before closing the listener.")
	flag.DurationVar(&shutdownTimeout, "shutdown-timeout", webhook.DefaultShutdownTimeout, "How long to wait for in-flight requests at shutdown.")
	flag.Parse()
	if showVersion {
		fmt.Println(version)
		return nil
	}

	env, err := parseEnv(os.LookupEnv)
	log := newLogger(env.logLevel)
	klog.SetLogger(log.WithName("client-go"))
	for _, w := range env.warnings {
		log.Info("warning: " + w)
	}
	if err != nil {
		return err
	}
	if !certReload {
		log.Info("--cert-reload=false is ignored: the certificate is always reloaded when its files change")
	}

	kubeConfig, err := ctrlconfig.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	kubeConfig.QPS, kubeConfig.Burst = env.qps, env.burst

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting gMSA webhook", "version", version, "httpsPort", env.port, "randomHostname", env.randomHostname, "logLevel", env.logLevel)
	return cluster.Run(ctx, cluster.Config{
		CertFile:               env.certFile,
		KeyFile:                env.keyFile,
		Addr:                   ":" + strconv.Itoa(env.port),
		MetricsAddr:            metricsAddr,
		RandomHostname:         env.randomHostname,
		Version:                version,
		KubeConfig:             kubeConfig,
		AuthorizationCacheTTL:  env.authzCacheTTL,
		AuthorizationCacheSize: env.authzCacheSize,
		ShutdownDelay:          shutdownDelay,
		ShutdownTimeout:        shutdownTimeout,
		Log:                    log,
	})
}

// settings is the configuration read from the environment.
type settings struct {
	certFile, keyFile string
	port              int
	logLevel          string
	randomHostname    bool
	qps               float32
	burst             int
	// authzCacheTTL is cluster.Config.AuthorizationCacheTTL: negative
	// when AUTHZ_CACHE_TTL is 0.
	authzCacheTTL  time.Duration
	authzCacheSize int
	// warnings are problems that do not stop the webhook.
	warnings []string
}

// logLevels are upstream's LOG_LEVEL values, most verbose last.
var logLevels = []string{"panic", "fatal", "error", "warn", "info", "debug", "trace"}

// Client rate limits: see cluster.DefaultQPS.
const (
	defaultQPS   = cluster.DefaultQPS
	defaultBurst = cluster.DefaultBurst
)

// parseEnv reads the upstream webhook's environment variables. An unknown
// LOG_LEVEL is a warning (info is used), as upstream; missing TLS files and
// unparsable numbers or booleans are errors.
func parseEnv(lookup func(string) (string, bool)) (settings, error) {
	s := settings{port: 443, logLevel: "info", qps: defaultQPS, burst: defaultBurst,
		authzCacheTTL: cluster.DefaultDecisionTTL, authzCacheSize: cluster.DefaultDecisionCacheSize}
	var errs []error
	if v, ok := lookup("LOG_LEVEL"); ok {
		if l := strings.ToLower(strings.TrimSpace(v)); slices.Contains(logLevels, l) {
			s.logLevel = l
		} else {
			s.warnings = append(s.warnings, fmt.Sprintf("unknown LOG_LEVEL %q, using info; valid levels are %s", v, strings.Join(logLevels, ", ")))
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"TLS_CRT", &s.certFile}, {"TLS_KEY", &s.keyFile}} {
		v, ok := lookup(f.name)
		if !ok || v == "" {
			errs = append(errs, fmt.Errorf("environment variable %s is required (path of the serving certificate's PEM file)", f.name))
		}
		*f.dst = v
	}
	if v, ok := lookup("HTTPS_PORT"); ok {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("HTTPS_PORT %q is not a port number", v))
		}
		s.port = p
	}
	if v, ok := lookup("RANDOM_HOSTNAME"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("RANDOM_HOSTNAME %q is not a boolean", v))
		}
		s.randomHostname = b
	}
	if v, ok := lookup("QPS"); ok {
		q, err := strconv.ParseFloat(v, 32)
		if err != nil || q <= 0 {
			errs = append(errs, fmt.Errorf("QPS %q is not a positive number", v))
		}
		s.qps = float32(q)
	}
	if v, ok := lookup("BURST"); ok {
		b, err := strconv.Atoi(v)
		if err != nil || b <= 0 {
			errs = append(errs, fmt.Errorf("BURST %q is not a positive integer", v))
		}
		s.burst = b
	}
	if v, ok := lookup("AUTHZ_CACHE_TTL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("AUTHZ_CACHE_TTL %q is not a duration of 0 or more (such as 2s)", v))
		}
		s.authzCacheTTL = d
		if d == 0 {
			s.authzCacheTTL = -1
		}
	}
	if v, ok := lookup("AUTHZ_CACHE_SIZE"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("AUTHZ_CACHE_SIZE %q is not a positive integer", v))
		}
		s.authzCacheSize = n
	}
	return s, errors.Join(errs...)
}

// newLogger returns a JSON logger at an upstream LOG_LEVEL: debug is V(1),
// trace V(2); warn and above keep only errors.
func newLogger(level string) logr.Logger {
	zl := map[string]zapcore.Level{
		"panic": zapcore.PanicLevel, "fatal": zapcore.FatalLevel, "error": zapcore.ErrorLevel,
		"warn": zapcore.WarnLevel, "info": zapcore.InfoLevel, "debug": -1, "trace": -2,
	}[level]
	return zap.New(zap.Level(zl), zap.WriteTo(os.Stdout))
}
