package stack

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
)

// TestRotationNeverBreaksTrust runs the certificate plan over simulated
// time with short lifetimes, with the CA Secret deleted twice on the way,
// as the controller does: each reconcile
// publishes the bundle in the webhook configurations, and the API server
// (which sees the bundle of the previous reconcile) must trust the serving
// certificate of the current and the previous reconcile alike (pods reload
// with a delay) at every instant.
func TestRotationNeverBreaksTrust(t *testing.T) {
	const d, r = time.Minute, 30 * time.Second
	names := testDNSNames()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := CertInput{DNSNames: names, Duration: d, RenewBefore: r, Now: now}
	plan, err := PlanCertificates(in)
	if err != nil {
		t.Fatal(err)
	}
	published := plan.Bundle
	served := plan.TLS[TLSCertKey]
	firstCA := plan.CAID
	cas := map[string]bool{plan.CAID: true}
	singleAfterRollover := false
	for step := 0; step < 600; step++ {
		now = now.Add(time.Second)
		stored := plan.CA
		if step == 200 || step == 401 {
			stored = nil // a person deletes the CA Secret
		}
		plan, err = PlanCertificates(CertInput{CA: stored, TLS: plan.TLS, DNSNames: names, Duration: d, RenewBefore: r, Now: now,
			PublishedBundle: published, RolledOut: true})
		if err != nil {
			t.Fatal(err)
		}
		// The API server still uses the old bundle; pods may serve the old
		// or the new certificate.
		for _, cert := range [][]byte{served, plan.TLS[TLSCertKey]} {
			if err := verify(published, cert, names[0], now); err != nil {
				t.Fatalf("t=%ds: %s: a pod's certificate is not trusted by the published caBundle: %v", step+1, plan.Changes, err)
			}
			if err := verify(plan.Bundle, cert, names[0], now); err != nil {
				t.Fatalf("t=%ds: %s: a pod's certificate is not trusted by the new caBundle: %v", step+1, plan.Changes, err)
			}
		}
		published, served = plan.Bundle, plan.TLS[TLSCertKey]
		cas[plan.CAID] = true
		if cs, _ := certs.ParseCertificates(plan.Bundle); len(cs) == 1 && plan.CAID != firstCA {
			singleAfterRollover = true
		}
	}
	if len(cas) < 5 {
		t.Errorf("in 10 minutes of 1m certificates the CA rolled over %d times, want at least 4", len(cas)-1)
	}
	if !singleAfterRollover {
		t.Error("caBundle never came back to only the new CA after a rollover")
	}
}

// TestShorterDurationRollsOver: shortening the durations of a stack whose
// CA lives two years makes a next CA at once, keeps serving until the API
// servers trust it, then promotes it and issues a short certificate; the
// old CA is dropped only once the pods rolled out.
func TestShorterDurationRollsOver(t *testing.T) {
	names := testDNSNames()
	now := time.Now()
	plan, err := PlanCertificates(CertInput{DNSNames: names, Duration: DefaultDuration, RenewBefore: DefaultRenewBefore, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	first := plan.CAID
	in := CertInput{CA: plan.CA, TLS: plan.TLS, DNSNames: names, Duration: time.Minute, RenewBefore: 30 * time.Second, Now: now.Add(time.Second), PublishedBundle: plan.Bundle}
	plan, err = PlanCertificates(in)
	if err != nil {
		t.Fatal(err)
	}
	if plan.CA[NextCACertKey] == nil || plan.CAID != first {
		t.Fatalf("want a next CA and the old one still signing, got changes %q", plan.Changes)
	}
	in = CertInput{CA: plan.CA, TLS: plan.TLS, DNSNames: names, Duration: time.Minute, RenewBefore: 30 * time.Second, Now: now.Add(40 * time.Second), PublishedBundle: plan.Bundle}
	plan, err = PlanCertificates(in)
	if err != nil {
		t.Fatal(err)
	}
	if plan.CAID == first || plan.CA[PreviousCACertKey] == nil {
		t.Fatalf("want the next CA promoted with the old one kept as previous, got changes %q", plan.Changes)
	}
	if c, _ := certs.ParseCertificate(plan.TLS[TLSCertKey]); c.NotAfter.Sub(now) > 2*time.Minute {
		t.Fatalf("serving certificate still valid until %s", c.NotAfter)
	}
	in = CertInput{CA: plan.CA, TLS: plan.TLS, DNSNames: names, Duration: time.Minute, RenewBefore: 30 * time.Second, Now: now.Add(41 * time.Second), PublishedBundle: plan.Bundle, RolledOut: false}
	if p, _ := PlanCertificates(in); p.CA[PreviousCACertKey] == nil {
		t.Fatal("previous CA dropped before the pods rolled out")
	}
	in.RolledOut = true
	if p, _ := PlanCertificates(in); p.CA[PreviousCACertKey] != nil {
		t.Fatal("previous CA kept after the pods rolled out")
	}
}

func testDNSNames() []string { return certs.ServiceDNSNames(WebhookName, "gmsa-system") }

func verify(bundle, certPEM []byte, name string, now time.Time) error {
	roots := x509.NewCertPool()
	cs, err := certs.ParseCertificates(bundle)
	if err != nil {
		return err
	}
	for _, c := range cs {
		roots.AddCert(c)
	}
	leaf, err := certs.ParseCertificate(certPEM)
	if err != nil {
		return err
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now})
	return err
}
