package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCA(t *testing.T, validity time.Duration) *certs.KeyPair {
	t.Helper()
	ca, err := certs.NewCA("gmsa-webhook-ca", now, validity)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func TestNewCA(t *testing.T) {
	ca := newCA(t, 365*24*time.Hour)
	c := ca.Cert
	if !c.IsCA || !c.MaxPathLenZero || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA=%v MaxPathLenZero=%v KeyUsage=%b, want a CA that may sign leaf certificates only", c.IsCA, c.MaxPathLenZero, c.KeyUsage)
	}
	if c.Subject.CommonName != "gmsa-webhook-ca" {
		t.Errorf("CommonName = %q", c.Subject.CommonName)
	}
	if want := now.Add(-certs.ClockSkew); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %s, want %s", c.NotBefore, want)
	}
	if want := now.Add(365 * 24 * time.Hour); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %s, want %s", c.NotAfter, want)
	}
	if _, ok := ca.Key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("key type %T, want ECDSA", ca.Key)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if block, _ := pem.Decode(ca.KeyPEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Errorf("KeyPEM is not a PKCS #8 PEM block")
	}
}

func TestNewCARejectsBadInput(t *testing.T) {
	if _, err := certs.NewCA("", now, time.Hour); err == nil {
		t.Error("NewCA with an empty name succeeded")
	}
	if _, err := certs.NewCA("ca", now, 0); err == nil {
		t.Error("NewCA with zero validity succeeded")
	}
}

func TestServingCertVerifiesForServiceNames(t *testing.T) {
	ca := newCA(t, 365*24*time.Hour)
	names := certs.ServiceDNSNames("gmsa-webhook", "gmsa-system")
	if names[0] != "gmsa-webhook.gmsa-system.svc" {
		t.Fatalf("first DNS name = %q, want the name the API server dials", names[0])
	}
	leaf, err := certs.NewServingCert(ca, names, now, 90*24*time.Hour)
	if err != nil {
		t.Fatalf("NewServingCert: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range names {
		_, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("verify for %q: %v", name, err)
		}
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: "other.gmsa-system.svc", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("certificate verified for a name it was not issued for")
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: names[0], Roots: roots, CurrentTime: now.Add(91 * 24 * time.Hour)}); err == nil {
		t.Error("certificate verified after its validity")
	}
	if leaf.Cert.IsCA {
		t.Error("serving certificate is a CA")
	}
	if _, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM); err != nil {
		t.Errorf("crypto/tls rejects the PEM pair: %v", err)
	}
}

func TestServingCertNeverOutlivesCA(t *testing.T) {
	ca := newCA(t, 24*time.Hour)
	leaf, err := certs.NewServingCert(ca, []string{"a.b.svc"}, now, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("leaf NotAfter %s, want capped at CA NotAfter %s", leaf.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestNewServingCertRejectsBadInput(t *testing.T) {
	ca := newCA(t, time.Hour)
	leaf, err := certs.NewServingCert(ca, []string{"a.b.svc"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"no CA":        func() error { _, err := certs.NewServingCert(nil, []string{"a"}, now, time.Hour); return err },
		"leaf as CA":   func() error { _, err := certs.NewServingCert(leaf, []string{"a"}, now, time.Hour); return err },
		"no DNS names": func() error { _, err := certs.NewServingCert(ca, nil, now, time.Hour); return err },
		"no validity":  func() error { _, err := certs.NewServingCert(ca, []string{"a"}, now, 0); return err },
	} {
		if call() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseKeyPairRoundTrip(t *testing.T) {
	ca := newCA(t, time.Hour)
	leaf, err := certs.NewServingCert(ca, []string{"a.b.svc"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A mounted tls.crt often carries the chain; the leaf comes first.
	bundle := append(append([]byte(nil), leaf.CertPEM...), ca.CertPEM...)
	got, err := certs.ParseKeyPair(bundle, leaf.KeyPEM)
	if err != nil {
		t.Fatalf("ParseKeyPair: %v", err)
	}
	if got.Cert.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Errorf("parsed serial %s, want the leaf's %s", got.Cert.SerialNumber, leaf.Cert.SerialNumber)
	}
	if _, err := certs.ParseKeyPair(leaf.CertPEM, ca.KeyPEM); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("ParseKeyPair with the wrong key: err = %v, want a mismatch error", err)
	}
}

func TestParsePrivateKeyFormats(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, p := range map[string][]byte{
		"SEC 1":   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"PKCS #1": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}),
	} {
		if _, err := certs.ParsePrivateKey(p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, p := range map[string][]byte{
		"empty":        nil,
		"garbage":      []byte("not pem"),
		"unknown type": pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: []byte{1}}),
		"corrupt":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := certs.ParsePrivateKey(p); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func TestParseCertificatesBundle(t *testing.T) {
	old, current := newCA(t, time.Hour), newCA(t, 2*time.Hour)
	// A caBundle during a CA rollover: two CAs, maybe with other blocks.
	bundle := append(append(append([]byte(nil), old.CertPEM...), old.KeyPEM...), current.CertPEM...)
	got, err := certs.ParseCertificates(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(old.Cert) || !got[1].Equal(current.Cert) {
		t.Errorf("got %d certificates, want the two CAs in order", len(got))
	}
	if _, err := certs.ParseCertificates(old.KeyPEM); err == nil {
		t.Error("a bundle without certificates parsed")
	}
	if _, err := certs.ParseCertificate([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil {
		t.Error("a corrupt certificate parsed")
	}
}

func TestNotAfterAndNeedsRenewal(t *testing.T) {
	ca := newCA(t, 100*time.Hour)
	got, err := certs.NotAfter(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(100 * time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %s, want %s", got, want)
	}
	if _, err := certs.NotAfter([]byte("x")); err == nil {
		t.Error("NotAfter of garbage succeeded")
	}
	for _, tc := range []struct {
		at          time.Time
		renewBefore time.Duration
		want        bool
	}{
		{now, 10 * time.Hour, false},
		{now.Add(89 * time.Hour), 10 * time.Hour, false},
		{now.Add(90 * time.Hour), 10 * time.Hour, true},
		{now.Add(101 * time.Hour), 0, true},
		{now.Add(-time.Hour), 0, true}, // not yet valid
	} {
		if got := certs.NeedsRenewal(ca.Cert, tc.at, tc.renewBefore); got != tc.want {
			t.Errorf("NeedsRenewal(at %s, renewBefore %s) = %v, want %v", tc.at, tc.renewBefore, got, tc.want)
		}
	}
}

// TestServesTLS proves the pair works end to end with crypto/tls: a client
// that trusts only the CA completes a handshake for the Service name.
func TestServesTLS(t *testing.T) {
	ca, err := certs.NewCA("ca", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := certs.NewServingCert(ca, certs.ServiceDNSNames("svc", "ns"), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "svc.ns.svc"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	conn.Close()
}
