package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

type runningServer struct {
	srv     *Server
	https   string
	metrics string
	client  *http.Client
	done    chan error
	cancel  context.CancelFunc
}

// startServer serves handler on loopback with a fresh certificate; ready
// decides the readiness check.
func startServer(t *testing.T, handler http.Handler, ready *atomic.Bool, delay time.Duration) *runningServer {
	t.Helper()
	ca := testCA(t)
	pair := servingPair(t, ca)
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(crt, pair["tls.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pair["tls.key"], 0o600); err != nil {
		t.Fatal(err)
	}
	certs := NewCertReloader(crt, key, time.Hour, logr.Discard(), nil)
	if err := certs.Load(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan [2]net.Addr, 1)
	rs := &runningServer{done: make(chan error, 1)}
	rs.srv = &Server{
		Addr:        "127.0.0.1:0",
		MetricsAddr: "127.0.0.1:0",
		Handler:     handler,
		Certs:       certs,
		Metrics:     NewMetrics(),
		Checks: []Check{{Name: "test", Check: func() error {
			if !ready.Load() {
				return errors.New("not yet")
			}
			return nil
		}}},
		ShutdownDelay:   delay,
		ShutdownTimeout: 5 * time.Second,
		Log:             logr.Discard(),
		Listening:       func(h, m net.Addr) { listening <- [2]net.Addr{h, m} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs.cancel = cancel
	go func() { rs.done <- rs.srv.Run(ctx) }()
	select {
	case addrs := <-listening:
		rs.https, rs.metrics = addrs[0].String(), addrs[1].String()
	case err := <-rs.done:
		t.Fatalf("server did not start: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	rs.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "gmsa-webhook.gmsa-system.svc"},
	}}
	t.Cleanup(func() {
		cancel()
		<-rs.done
	})
	return rs
}

func (rs *runningServer) get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := rs.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerTLSFloorAndProbes(t *testing.T) {
	var ready atomic.Bool
	rs := startServer(t, newTestHandler(t, logr.Discard(), nil), &ready, -1)

	// TLS 1.1 is refused, 1.2 is accepted.
	old := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}
	if c, err := tls.Dial("tcp", rs.https, old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	tls12 := rs.client.Transport.(*http.Transport).TLSClientConfig.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	c, err := tls.Dial("tcp", rs.https, tls12)
	if err != nil {
		t.Fatalf("TLS 1.2 handshake: %v", err)
	}
	c.Close()

	if code, body := rs.get(t, "https://"+rs.https+"/health"); code != 503 || !strings.Contains(body, "test: not yet") {
		t.Errorf("/health before ready: %d %q, want 503 naming the failing check", code, body)
	}
	if code, _ := rs.get(t, "http://"+rs.metrics+"/readyz"); code != 503 {
		t.Errorf("/readyz before ready: %d, want 503", code)
	}
	if code, _ := rs.get(t, "http://"+rs.metrics+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d, want 200 (liveness does not wait for readiness)", code)
	}
	ready.Store(true)
	if code, _ := rs.get(t, "https://"+rs.https+"/health"); code != 204 {
		t.Errorf("/health when ready: %d, want 204", code)
	}
	if code, _ := rs.get(t, "http://"+rs.metrics+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d, want 200", code)
	}
	if code, body := rs.get(t, "https://"+rs.https+"/info"); code != 200 || body != `{"version":"v1.2.3"}` {
		t.Errorf("/info: %d %q", code, body)
	}
	if code, body := rs.get(t, "http://"+rs.metrics+"/metrics"); code != 200 || !strings.Contains(body, "gmsa_webhook_certificate_not_after_timestamp_seconds") {
		t.Errorf("/metrics: %d, certificate expiry missing", code)
	}
}

// TestServerGracefulShutdown: once asked to stop, the server reports not
// ready, keeps serving during the delay, lets the in-flight request finish,
// then stops accepting connections.
func TestServerGracefulShutdown(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		_, _ = w.Write([]byte("done"))
	})
	rs := startServer(t, slow, &ready, 300*time.Millisecond)

	inFlight := make(chan error, 1)
	go func() {
		resp, err := rs.client.Get("https://" + rs.https + "/slow")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "done" {
				err = errors.New("in-flight request got " + resp.Status + " " + string(b))
			}
		}
		inFlight <- err
	}()
	<-started
	rs.cancel()

	// During the delay: still serving, but not ready.
	deadline := time.Now().Add(2 * time.Second)
	for {
		code, _ := rs.get(t, "https://"+rs.https+"/health")
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health still %d after shutdown began", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // past the delay: Shutdown is waiting for /slow
	close(release)
	if err := <-inFlight; err != nil {
		t.Fatalf("in-flight request failed: %v", err)
	}
	select {
	case err := <-rs.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the last request")
	}
	rs.done <- nil // for the cleanup
	if c, err := net.DialTimeout("tcp", rs.https, time.Second); err == nil {
		c.Close()
		t.Error("still accepting connections after shutdown")
	}
}

func TestServerFailsOnBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &Server{Addr: ln.Addr().String(), Handler: http.NotFoundHandler(), Certs: NewCertReloader("x", "y", 0, logr.Discard(), nil), Log: logr.Discard()}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Errorf("Run on a busy address: %v, want a listen error", err)
	}
}

// TestServerShutdownMovesKeepAliveClients models a webhook replica leaving a
// Service under a steady stream of admission calls: the client (the API
// server) keeps one keep-alive connection per replica, and once the replica
// is shutting down new connections go to another replica (kube-proxy has
// removed its endpoint). Shutting the replica down must fail no request: the
// drain ("Connection: close", GOAWAY on HTTP/2) moves the client off its
// keep-alive connection during the shutdown delay, so no connection is left
// for Shutdown to close under a request ("write: broken pipe").
func TestServerShutdownMovesKeepAliveClients(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "http1"
		if h2 {
			name = "http2"
		}
		t.Run(name, func(t *testing.T) {
			var ready atomic.Bool
			ready.Store(true)
			var servedA, servedB atomic.Int64
			count := func(n *atomic.Int64) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					n.Add(1)
					_, _ = w.Write([]byte("ok"))
				})
			}
			a := startServer(t, count(&servedA), &ready, 400*time.Millisecond)
			b := startServer(t, count(&servedB), &ready, -1)

			// The Service: its one endpoint is A until A begins shutting down.
			var endpointRemoved atomic.Bool
			dialer := &net.Dialer{}
			tr := &http.Transport{
				TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // connection handling, not TLS, under test
				ForceAttemptHTTP2: h2,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					if endpointRemoved.Load() {
						return dialer.DialContext(ctx, network, b.https)
					}
					return dialer.DialContext(ctx, network, a.https)
				},
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

			stop := make(chan struct{})
			var failures atomic.Int64
			var firstErr atomic.Value
			var protoSeen atomic.Value
			done := make(chan struct{})
			const workers = 4
			for i := 0; i < workers; i++ {
				go func() {
					defer func() { done <- struct{}{} }()
					for {
						select {
						case <-stop:
							return
						default:
						}
						resp, err := client.Post("https://webhook.test/validate", "application/json", strings.NewReader(`{}`))
						if err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							protoSeen.Store(resp.Proto)
							if resp.StatusCode != http.StatusOK {
								err = errors.New(resp.Status)
							}
						}
						if err != nil {
							failures.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
						}
					}
				}()
			}
			time.Sleep(200 * time.Millisecond) // keep-alive connections to A in use
			endpointRemoved.Store(true)
			a.cancel()
			select {
			case err := <-a.done:
				if err != nil {
					t.Errorf("A's Run: %v", err)
				}
				a.done <- nil // for the cleanup
			case <-time.After(10 * time.Second):
				t.Fatal("A did not shut down")
			}
			time.Sleep(200 * time.Millisecond) // load goes on after A is gone
			close(stop)
			for i := 0; i < workers; i++ {
				<-done
			}
			wantProto := "HTTP/1.1"
			if h2 {
				wantProto = "HTTP/2.0"
			}
			if p, _ := protoSeen.Load().(string); p != wantProto {
				t.Errorf("protocol %q, want %q", p, wantProto)
			}
			if n := failures.Load(); n != 0 {
				t.Errorf("%d requests failed while a replica shut down (A served %d, B %d); first: %v",
					n, servedA.Load(), servedB.Load(), firstErr.Load())
			}
			if servedA.Load() == 0 || servedB.Load() == 0 {
				t.Errorf("A served %d, B %d: the load did not move from A to B", servedA.Load(), servedB.Load())
			}
		})
	}
}

func TestLogWriterRateLimitsHandshakeErrors(t *testing.T) {
	var lines []string
	l := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: 0})
	w := newLogWriter(l, time.Hour)
	for i := 0; i < 5; i++ {
		_, _ = w.Write([]byte("http: TLS handshake error from 10.0.0.1:1234: remote error: tls: bad certificate\n"))
	}
	_, _ = w.Write([]byte("http: some other server error\n")) // V(1): not at the default level
	if len(lines) != 1 || !strings.Contains(lines[0], "TLS handshake failed") || !strings.Contains(lines[0], "bad certificate") {
		t.Fatalf("default-level lines %q, want one handshake failure", lines)
	}
	w.last = time.Now().Add(-2 * time.Hour) // the interval has passed
	_, _ = w.Write([]byte("http: TLS handshake error from 10.0.0.1:1235: EOF\n"))
	if len(lines) != 2 || !strings.Contains(lines[1], `"suppressedSinceLast"=4`) {
		t.Fatalf("second line %q, want the 4 suppressed counted", lines)
	}
}
