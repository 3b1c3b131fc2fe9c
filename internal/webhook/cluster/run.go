// Package cluster connects the gMSA admission webhook to a cluster: the
// informer-backed store of credential specs, the LocalSubjectAccessReview
// authorizer, and Run, which serves the webhook with both (the whole of
// cmd/webhook but for flags and environment).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook"
)

// Defaults of Config.
const (
	DefaultAddr        = ":443"
	DefaultMetricsAddr = ":8080"
)

// DefaultQPS and DefaultBurst are the webhook's client rate limits towards
// the API server (QPS, BURST): in practice, LocalSubjectAccessReviews, one
// per distinct question (SharedAuthorizer), each answered from the API
// server's memory. A client-side wait is added to a pod's admission and,
// past the webhook's timeoutSeconds, fails it, so the limits are set for a
// burst of distinct questions (a restart of the Windows pods of hundreds of
// namespaces) to pass without waiting: 400 at once, 200 a second after
// that. They still bound a webhook gone wrong; API Priority and Fairness
// protects the API server from the rest.
const (
	DefaultQPS   = 200
	DefaultBurst = 400
)

// Config is everything Run needs.
type Config struct {
	// CertFile and KeyFile are the PEM serving certificate and key
	// (TLS_CRT, TLS_KEY); they are reloaded when they change.
	CertFile, KeyFile string
	// Addr is the HTTPS listen address; default DefaultAddr.
	Addr string
	// MetricsAddr is the plain-HTTP address of /metrics, /healthz and
	// /readyz; default DefaultMetricsAddr, "0" disables it.
	MetricsAddr string
	// RandomHostname is upstream's RANDOM_HOSTNAME.
	RandomHostname bool
	// Version is reported by /info.
	Version string
	// KubeConfig reaches the API server, to watch credential specs and
	// create LocalSubjectAccessReviews.
	KubeConfig *rest.Config
	// Authorizer replaces the LocalSubjectAccessReview authorizer (the
	// benchmark uses it to leave the API server's time out); nil uses it,
	// behind a SharedAuthorizer. A replacement is used as it is.
	Authorizer admission.Authorizer
	// AuthorizationCacheTTL is how long an authorization decision is
	// reused (SharedAuthorizer); 0 means DefaultDecisionTTL, a negative
	// value reuses none (identical reviews in flight are still shared).
	AuthorizationCacheTTL time.Duration
	// AuthorizationCacheSize bounds the decisions kept; 0 means
	// DefaultDecisionCacheSize.
	AuthorizationCacheSize int
	// ShutdownDelay and ShutdownTimeout: see webhook.Server.
	ShutdownDelay, ShutdownTimeout time.Duration
	// CertPollInterval is the certificate files' re-read interval; 0 means
	// webhook.DefaultCertPollInterval.
	CertPollInterval time.Duration
	// Log is the logger; the zero value discards.
	Log logr.Logger
	// Listening, if set, is called once both listeners are bound.
	Listening func(httpsAddr, metricsAddr net.Addr)
}

// Run serves the webhook until ctx is done, then shuts down gracefully. It
// fails at once if the certificate cannot be loaded or an address cannot be
// bound. The webhook is ready (GET /health answers 204, /readyz 200) once
// the certificate is loaded and the credential spec cache has synced.
func Run(ctx context.Context, cfg Config) error {
	if cfg.KubeConfig == nil {
		return errors.New("webhook: no kubeconfig")
	}
	log := cfg.Log
	metrics := webhook.NewMetrics()

	certs := webhook.NewCertReloader(cfg.CertFile, cfg.KeyFile, cfg.CertPollInterval, log.WithName("certs"), metrics)
	if err := certs.Load(); err != nil {
		return err
	}

	restCfg := rest.CopyConfig(cfg.KubeConfig)
	restCfg.UserAgent = "gmsa-webhook/" + cfg.Version
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	store, err := NewCredSpecStore(dyn, log.WithName("credspecs"), metrics)
	if err != nil {
		return err
	}
	authz := cfg.Authorizer
	if authz == nil {
		cs, err := kubernetes.NewForConfig(restCfg)
		if err != nil {
			return fmt.Errorf("create clientset: %w", err)
		}
		ttl := cfg.AuthorizationCacheTTL
		if ttl == 0 {
			ttl = DefaultDecisionTTL
		}
		authz = NewSharedAuthorizer(NewSARAuthorizer(cs.AuthorizationV1(), metrics),
			SharedAuthorizerOptions{TTL: ttl, Size: cfg.AuthorizationCacheSize, Metrics: metrics})
	}

	h, err := webhook.NewHandler(webhook.HandlerOptions{
		Reviewer: &admission.Reviewer{CredSpecs: store, Authorizer: authz, RandomHostname: cfg.RandomHostname},
		Version:  cfg.Version,
		Metrics:  metrics,
		Log:      log.WithName("admission"),
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { store.Run(ctx) })
	wg.Go(func() { certs.Run(ctx) })
	wg.Go(func() {
		if store.WaitForSync(ctx) {
			log.Info("credspec cache synced")
		}
	})

	srv := &webhook.Server{
		Addr:        orDefault(cfg.Addr, DefaultAddr),
		MetricsAddr: orDefault(cfg.MetricsAddr, DefaultMetricsAddr),
		Handler:     h,
		Certs:       certs,
		Metrics:     metrics,
		Checks: []webhook.Check{
			{Name: "certificate", Check: func() error {
				if !certs.Loaded() {
					return errors.New("no serving certificate loaded")
				}
				return nil
			}},
			{Name: "credspec-cache", Check: func() error {
				if !store.HasSynced() {
					return ErrNotSynced
				}
				return nil
			}},
		},
		ShutdownDelay:   cfg.ShutdownDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Log:             log,
		Listening:       cfg.Listening,
	}
	return srv.Run(ctx)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
