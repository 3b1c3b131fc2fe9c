package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// Defaults of a CertReloader.
const (
	// DefaultCertPollInterval is how often the files are re-read even when
	// no file event arrived (a safety net for missed events).
	DefaultCertPollInterval = 10 * time.Second
	// certRetryInterval is how soon a failed load is retried: a non-atomic
	// writer may have replaced the certificate but not yet the key.
	certRetryInterval = 250 * time.Millisecond
	// certDebounce groups the burst of events of one update.
	certDebounce = 20 * time.Millisecond
)

// CertReloader serves the certificate and key read from two files and
// reloads them when they change, without a restart: the files may be
// rewritten in place or, as the kubelet does for a mounted Secret,
// replaced through the atomic swap of the `..data` symlink of their
// directory, any number of times. It watches the files' directories (not
// the files, whose inodes a swap replaces) and also re-reads the files
// periodically. A pair that does not load (for example a key that does not
// match the certificate yet) is ignored: the previous one stays in use.
type CertReloader struct {
	certFile, keyFile string
	pollInterval      time.Duration
	log               logr.Logger
	metrics           *Metrics

	current atomic.Pointer[loadedCert]
	loadMu  sync.Mutex // serializes Load
}

type loadedCert struct {
	cert             *tls.Certificate
	certPEM, keyPEM  []byte
	notAfter, loaded time.Time
}

// NewCertReloader returns a reloader for certFile and keyFile (PEM).
// pollInterval <= 0 means DefaultCertPollInterval. metrics may be nil.
func NewCertReloader(certFile, keyFile string, pollInterval time.Duration, log logr.Logger, metrics *Metrics) *CertReloader {
	if pollInterval <= 0 {
		pollInterval = DefaultCertPollInterval
	}
	return &CertReloader{certFile: certFile, keyFile: keyFile, pollInterval: pollInterval, log: log, metrics: metrics}
}

// Load reads both files and, if they hold a valid pair different from the
// one in use, switches to it. It returns an error, and keeps the pair in
// use, if the files cannot be read or do not form a valid pair.
func (r *CertReloader) Load() error {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("read serving certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("read serving key: %w", err)
	}
	if cur := r.current.Load(); cur != nil && bytes.Equal(cur.certPEM, certPEM) && bytes.Equal(cur.keyPEM, keyPEM) {
		return nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load serving certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	if pair.Leaf == nil {
		return errors.New("load serving certificate: no leaf certificate")
	}
	r.current.Store(&loadedCert{cert: &pair, certPEM: certPEM, keyPEM: keyPEM, notAfter: pair.Leaf.NotAfter, loaded: time.Now()})
	r.metrics.setCertNotAfter(pair.Leaf.NotAfter)
	r.log.Info("serving certificate loaded", "subject", pair.Leaf.Subject.CommonName, "dnsNames", pair.Leaf.DNSNames,
		"serial", pair.Leaf.SerialNumber.String(), "notAfter", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// GetCertificate returns the pair in use; it fits tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cur := r.current.Load()
	if cur == nil {
		return nil, errors.New("no serving certificate loaded")
	}
	return cur.cert, nil
}

// Loaded reports whether a certificate has been loaded.
func (r *CertReloader) Loaded() bool { return r.current.Load() != nil }

// NotAfter is the expiry of the certificate in use (zero before the first
// load).
func (r *CertReloader) NotAfter() time.Time {
	if cur := r.current.Load(); cur != nil {
		return cur.notAfter
	}
	return time.Time{}
}

// Run reloads the pair whenever the files change, until ctx is done. It
// loads once at start; call Load first to fail fast on a missing pair.
// File events come from the directories of both files; if they cannot be
// watched, periodic re-reading still picks changes up.
func (r *CertReloader) Run(ctx context.Context) {
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		r.log.Error(err, "cannot watch certificate files; relying on periodic reloads", "interval", r.pollInterval)
	} else {
		defer watcher.Close()
		for _, dir := range uniqueDirs(r.certFile, r.keyFile) {
			if err := watcher.Add(dir); err != nil {
				r.log.Error(err, "cannot watch certificate directory; relying on periodic reloads", "dir", dir, "interval", r.pollInterval)
			}
		}
		events, watchErrs = watcher.Events, watcher.Errors
	}

	poll := time.NewTicker(r.pollInterval)
	defer poll.Stop()
	var soon <-chan time.Time // debounce or retry timer
	reload := func() {
		if err := r.Load(); err != nil {
			r.log.Error(err, "serving certificate not reloaded; keeping the current one")
			soon = time.After(certRetryInterval)
			return
		}
		soon = nil
	}
	reload()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			r.log.V(1).Info("certificate directory changed", "file", ev.Name, "op", ev.Op.String())
			if soon == nil {
				soon = time.After(certDebounce)
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			r.log.Error(err, "certificate watch error")
		case <-soon:
			reload()
		case <-poll.C:
			reload()
		}
	}
}

func uniqueDirs(files ...string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, f := range files {
		d := filepath.Dir(f)
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}
