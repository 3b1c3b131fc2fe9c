package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
)

// secretVolume is a directory laid out as the kubelet lays out a mounted
// Secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>, and an update
// is an atomic rename of the ..data symlink (pkg/volume/util/atomic_writer.go).
type secretVolume struct {
	t   *testing.T
	dir string
	gen int
}

func newSecretVolume(t *testing.T, files map[string][]byte) *secretVolume {
	v := &secretVolume{t: t, dir: t.TempDir()}
	v.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// update writes files into a new timestamped directory, swaps ..data to it
// and removes the previous directory.
func (v *secretVolume) update(files map[string][]byte) {
	v.gen++
	ts := fmt.Sprintf("..2026_03_01_12_00_%02d.%d", v.gen, 1000+v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		v.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), content, 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(v.dir, "..data_tmp")); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(v.dir, "..data_tmp"), filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			v.t.Fatal(err)
		}
	}
}

func servingPair(t *testing.T, ca *certs.KeyPair) map[string][]byte {
	t.Helper()
	leaf, err := certs.NewServingCert(ca, certs.ServiceDNSNames("gmsa-webhook", "gmsa-system"), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM}
}

func testCA(t *testing.T) *certs.KeyPair {
	t.Helper()
	ca, err := certs.NewCA("test-ca", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func servedSerial(t *testing.T, r *CertReloader) *big.Int {
	t.Helper()
	c, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber
}

func serialOf(t *testing.T, files map[string][]byte) *big.Int {
	t.Helper()
	c, err := certs.ParseCertificate(files["tls.crt"])
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCertReloaderFollowsKubeletSwaps swaps the Secret volume three times;
// the periodic re-read is an hour away, so only file events can explain
// the reloads. Upstream's reloader watches the files and misses every swap
// after the first.
func TestCertReloaderFollowsKubeletSwaps(t *testing.T) {
	ca := testCA(t)
	first := servingPair(t, ca)
	vol := newSecretVolume(t, first)
	m := NewMetrics()
	r := NewCertReloader(filepath.Join(vol.dir, "tls.crt"), filepath.Join(vol.dir, "tls.key"), time.Hour, logr.Discard(), m)
	if r.Loaded() {
		t.Fatal("loaded before Load")
	}
	if _, err := r.GetCertificate(nil); err == nil {
		t.Fatal("GetCertificate without a certificate succeeded")
	}
	if err := r.Load(); err != nil {
		t.Fatal(err)
	}
	if got, want := servedSerial(t, r), serialOf(t, first); got.Cmp(want) != 0 {
		t.Fatalf("serving serial %s, want %s", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	time.Sleep(100 * time.Millisecond) // let the watch start

	for i := range 3 {
		next := servingPair(t, ca)
		vol.update(next)
		want := serialOf(t, next)
		eventually(t, 5*time.Second, fmt.Sprintf("swap %d to be served", i+1), func() bool { return servedSerial(t, r).Cmp(want) == 0 })
		notAfter, _ := certs.NotAfter(next["tls.crt"])
		if !r.NotAfter().Equal(notAfter) {
			t.Errorf("NotAfter = %s, want %s", r.NotAfter(), notAfter)
		}
	}
}

func TestCertReloaderInPlaceWritesAndBadPairs(t *testing.T) {
	ca := testCA(t)
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "crt"), filepath.Join(dir, "key")
	write := func(files map[string][]byte) {
		if err := os.WriteFile(crt, files["tls.crt"], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(key, files["tls.key"], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	first := servingPair(t, ca)
	write(first)
	r := NewCertReloader(crt, key, time.Hour, logr.Discard(), nil)
	if err := r.Load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	time.Sleep(100 * time.Millisecond)

	// A certificate with someone else's key does not load: the old pair stays.
	second := servingPair(t, ca)
	if err := os.WriteFile(crt, second["tls.crt"], 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := servedSerial(t, r); got.Cmp(serialOf(t, first)) != 0 {
		t.Fatalf("a mismatched pair replaced the served certificate")
	}
	if err := r.Load(); err == nil {
		t.Error("Load of a mismatched pair succeeded")
	}
	// Once the key follows, the new pair is served.
	if err := os.WriteFile(key, second["tls.key"], 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the rewritten pair to be served", func() bool { return servedSerial(t, r).Cmp(serialOf(t, second)) == 0 })
}

func TestCertReloaderPollsWithoutEvents(t *testing.T) {
	ca := testCA(t)
	first := servingPair(t, ca)
	vol := newSecretVolume(t, first)
	r := NewCertReloader(filepath.Join(vol.dir, "tls.crt"), filepath.Join(vol.dir, "tls.key"), 200*time.Millisecond, logr.Discard(), nil)
	if err := r.Load(); err != nil {
		t.Fatal(err)
	}
	// No Run: Load alone picks up a change.
	next := servingPair(t, ca)
	vol.update(next)
	if err := r.Load(); err != nil {
		t.Fatal(err)
	}
	if servedSerial(t, r).Cmp(serialOf(t, next)) != 0 {
		t.Error("Load did not switch to the new pair")
	}
	if err := NewCertReloader(filepath.Join(vol.dir, "nope"), filepath.Join(vol.dir, "tls.key"), 0, logr.Discard(), nil).Load(); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
