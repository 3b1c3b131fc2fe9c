package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Defaults of Server.
const (
	DefaultShutdownDelay   = 5 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
)

// Check is one readiness condition: nil when satisfied.
type Check struct {
	Name  string
	Check func() error
}

// Server runs the HTTPS listener of the admission handler and the
// plain-HTTP listener of /metrics, /healthz (liveness) and /readyz
// (readiness, as /health on the HTTPS port).
type Server struct {
	// Addr is the HTTPS listen address.
	Addr string
	// MetricsAddr is the plain-HTTP listen address; "" or "0" disables it.
	MetricsAddr string
	// Handler is the admission handler; its /health is answered by the
	// server from Checks.
	Handler http.Handler
	// Certs provides the serving certificate.
	Certs *CertReloader
	// Metrics are served on MetricsAddr.
	Metrics *Metrics
	// Checks must all pass for readiness.
	Checks []Check
	// ShutdownDelay is how long the server keeps serving, not ready, after
	// its context is done, so that endpoints stop sending traffic before it
	// closes its listener; 0 means DefaultShutdownDelay, negative none.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests; 0 means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Log is the logger.
	Log logr.Logger
	// Listening, if set, is called once both listeners are bound.
	Listening func(httpsAddr, metricsAddr net.Addr)

	shuttingDown atomic.Bool
}

// Ready returns nil when every check passes and the server is not shutting
// down, else the first failure.
func (s *Server) Ready() error {
	if s.shuttingDown.Load() {
		return errors.New("shutting down")
	}
	for _, c := range s.Checks {
		if err := c.Check(); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	return nil
}

// Run binds both addresses, serves until ctx is done, then shuts down
// gracefully: not ready at once, serving for ShutdownDelay, then waiting up
// to ShutdownTimeout for in-flight requests to finish. It fails at once if
// an address cannot be bound.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	errorLog := log.New(newLogWriter(s.Log.WithName("http"), handshakeLogInterval), "", 0)
	https := &http.Server{
		Handler: s.withDrain(s.withHealth(s.Handler)),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.Certs.GetCertificate,
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          errorLog,
	}
	servers := []*http.Server{https}
	serveErr := make(chan error, 2)
	var metricsAddr net.Addr
	if s.MetricsAddr != "" && s.MetricsAddr != "0" {
		mln, err := net.Listen("tcp", s.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w", s.MetricsAddr, err)
		}
		metricsAddr = mln.Addr()
		plain := &http.Server{Handler: s.metricsMux(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
		servers = append(servers, plain)
		go func() { serveErr <- plain.Serve(mln) }()
	}
	go func() { serveErr <- https.ServeTLS(ln, "", "") }()
	s.Log.Info("serving", "https", ln.Addr().String(), "metrics", fmt.Sprint(metricsAddr), "minTLS", "1.2")
	if s.Listening != nil {
		s.Listening(ln.Addr(), metricsAddr)
	}

	select {
	case err := <-serveErr:
		for _, srv := range servers {
			_ = srv.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	s.shuttingDown.Store(true)
	delay := s.ShutdownDelay
	if delay == 0 {
		delay = DefaultShutdownDelay
	}
	if delay > 0 {
		s.Log.Info("shutting down: not ready, still serving", "for", delay.String())
		time.Sleep(delay)
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down: %w", err))
			_ = srv.Close()
		}
	}
	s.Log.Info("shut down")
	return errors.Join(errs...)
}

// withDrain, once the server is shutting down, answers every request with
// "Connection: close": an HTTP/1.1 client then closes the connection after
// that response instead of keeping it idle, and on HTTP/2 the server sends
// GOAWAY, so the client opens its next request on a new connection (to a
// replica still in the Service's endpoints) while this one still serves.
// Without it, the API server keeps its one keep-alive connection to a
// terminating replica until Shutdown closes it, and a request written at that
// moment fails ("write: broken pipe").
func (s *Server) withDrain(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.shuttingDown.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// withHealth answers /health from the readiness checks, as upstream's
// readiness probe expects on the HTTPS port.
func (s *Server) withHealth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != HealthPath {
			next.ServeHTTP(w, r)
			return
		}
		if err := s.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) metricsMux() http.Handler {
	mux := http.NewServeMux()
	if s.Metrics != nil {
		mux.Handle("/metrics", s.Metrics.Handler())
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

// handshakeLogInterval is the least time between two logged TLS handshake
// failures; the ones in between are counted in the next message.
const handshakeLogInterval = 10 * time.Second

// logWriter sends net/http's own error log to the logger. TLS handshake
// failures (a client that does not trust the serving certificate, an expired
// certificate, a TCP probe) are logged at the default level, at most once per
// interval with the number suppressed since the last one: they are the trace
// of admission calls that never reached the handler. The rest goes to V(1).
type logWriter struct {
	log      logr.Logger
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newLogWriter(l logr.Logger, interval time.Duration) *logWriter {
	return &logWriter{log: l, interval: interval}
}

func (w *logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if !strings.Contains(msg, "TLS handshake error") {
		w.log.V(1).Info(msg)
		return len(p), nil
	}
	w.mu.Lock()
	now := time.Now()
	if !w.last.IsZero() && now.Sub(w.last) < w.interval {
		w.suppressed++
		w.mu.Unlock()
		return len(p), nil
	}
	suppressed := w.suppressed
	w.last, w.suppressed = now, 0
	w.mu.Unlock()
	w.log.Info("TLS handshake failed", "error", msg, "suppressedSinceLast", suppressed)
	return len(p), nil
}
