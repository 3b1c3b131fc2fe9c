package stack

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/gmsa-operator/gmsa-operator/internal/certs"
)

// Keys of the operator's CA Secret (SelfSigned mode).
const (
	// CACertKey and CAKeyKey hold the CA that signs the serving certificate.
	CACertKey = "ca.crt"
	CAKeyKey  = "ca.key"
	// NextCACertKey and NextCAKeyKey hold the CA that takes over at the next
	// renewal; it is trusted (in caBundle) from the moment it is made.
	NextCACertKey = "next.crt"
	NextCAKeyKey  = "next.key"
	// PreviousCACertKey holds the CA that signed the serving certificate
	// before the last rollover; it stays trusted until every webhook replica
	// serves a certificate of the new CA.
	PreviousCACertKey = "previous.crt"
)

// Keys of the serving certificate Secret (kubernetes.io/tls), mounted into
// the webhook pods.
const (
	TLSCertKey = "tls.crt"
	TLSKeyKey  = "tls.key"
)

// CAPropagationDelay is how long a new CA must have been in the webhook
// configurations' caBundle before it signs the serving certificate: the API
// servers watch the configurations and need a moment to see the new bundle.
const CAPropagationDelay = 15 * time.Second

// CertInput is what the certificate plan depends on.
type CertInput struct {
	// CA and TLS are the data of the two Secrets; nil when missing.
	CA, TLS map[string][]byte
	// DNSNames the serving certificate must cover.
	DNSNames []string
	// Duration and RenewBefore as in the GmsaStack spec (defaults applied).
	Duration, RenewBefore time.Duration
	// Now is the current time.
	Now time.Time
	// PublishedBundle is the caBundle that both webhook configurations
	// have now (nil when either lacks it).
	PublishedBundle []byte
	// RolledOut is true when every webhook replica runs with the pod
	// template of the stored CA (CAID of CA[CACertKey]): the Deployment
	// finished its rollout.
	RolledOut bool
}

// CertPlan is the certificate material the stack should have.
type CertPlan struct {
	// CA and TLS are the desired data of the two Secrets.
	CA, TLS map[string][]byte
	// Bundle is the caBundle for the webhook configurations: current CA,
	// then the next and previous ones while they are trusted.
	Bundle []byte
	// CAID identifies the current CA; it goes into the pod template so that
	// a CA rollover rolls the webhook pods.
	CAID string
	// NotAfter is the serving certificate's expiry.
	NotAfter time.Time
	// RequeueAfter is when the plan next changes by itself (a renewal is
	// due, or a CA may be promoted).
	RequeueAfter time.Duration
	// Changes says, for people, what this plan changed; empty when the
	// material is as it was.
	Changes []string
}

// CAValidity is the lifetime of a CA the operator makes: two serving
// certificate lifetimes.
func CAValidity(duration time.Duration) time.Duration { return 2 * duration }

// PlanCertificates computes the SelfSigned certificate material. The
// rollover is safe by construction:
//   - when the serving certificate is due and the CA cannot cover a whole
//     new serving certificate (or lives longer than the spec now allows), a
//     next CA is made and put in caBundle, and the renewal waits;
//   - once the next CA has been in both webhook configurations for
//     CAPropagationDelay, it becomes the CA and signs the new serving
//     certificate; the old CA stays in caBundle, as previous;
//   - the previous CA leaves caBundle once the webhook pods have rolled out
//     with the new certificate, so caBundle ends with the new CA alone.
//
// Material that cannot be parsed, or does not belong together, is replaced.
func PlanCertificates(in CertInput) (CertPlan, error) {
	p := CertPlan{}
	caValidity := CAValidity(in.Duration)
	var ca, next *certs.KeyPair
	var previous []byte
	if in.CA != nil {
		// A CA that is not valid now (expired, or from a clock that ran
		// ahead) is not used.
		if kp, err := certs.ParseKeyPair(in.CA[CACertKey], in.CA[CAKeyKey]); err == nil && kp.Cert.IsCA && validAt(kp.Cert, in.Now) {
			ca = kp
		}
		if kp, err := certs.ParseKeyPair(in.CA[NextCACertKey], in.CA[NextCAKeyKey]); err == nil && kp.Cert.IsCA && validAt(kp.Cert, in.Now) {
			next = kp
		}
		if c, err := certs.ParseCertificate(in.CA[PreviousCACertKey]); err == nil && in.Now.Before(c.NotAfter) {
			previous = in.CA[PreviousCACertKey]
		}
	}
	var serving *certs.KeyPair
	if in.TLS != nil {
		if kp, err := certs.ParseKeyPair(in.TLS[TLSCertKey], in.TLS[TLSKeyKey]); err == nil {
			serving = kp
		}
	}
	// The CA that the API servers trust for the certificate the pods serve
	// now, if any: the one to keep in caBundle if the stored CA was lost.
	servedCA := trustedIssuer(serving, in)
	if ca == nil {
		kp, err := certs.NewCA(caCommonName(in.DNSNames), in.Now, caValidity)
		if err != nil {
			return p, err
		}
		ca, next, previous = kp, nil, nil
		if servedCA != nil {
			// The CA Secret was deleted or damaged while the webhook
			// serves a certificate the API servers trust: keep trusting
			// it until the new CA has taken over, as in a rollover.
			previous = encodeCert(servedCA)
			p.Changes = append(p.Changes, "created a new CA (none valid was stored); the CA of the certificate being served stays trusted until the new one has taken over")
		} else {
			p.Changes = append(p.Changes, "created a new CA (none valid was stored)")
		}
	}
	due := time.Time{} // when the plan next changes by itself
	promoted, reissued := false, false
	if reason := servingProblem(serving, ca, in); reason != "" {
		tooLong := ca.Cert.NotAfter.Sub(ca.Cert.NotBefore) > caValidity+certs.ClockSkew+time.Minute
		covers := !tooLong && !in.Now.Add(in.Duration).After(ca.Cert.NotAfter)
		// A usable certificate may wait for the next CA to be trusted.
		usable := serving != nil && signedBy(serving.Cert, ca.Cert) && in.Now.Before(serving.Cert.NotAfter) && sameNames(serving.Cert.DNSNames, in.DNSNames)
		signer := ca
		if !covers {
			if next == nil {
				kp, err := certs.NewCA(caCommonName(in.DNSNames), in.Now, caValidity)
				if err != nil {
					return p, err
				}
				next = kp
				p.Changes = append(p.Changes, "created the next CA; it is trusted from now on and signs once the API servers have it")
			}
			trustedSince := next.Cert.NotBefore.Add(certs.ClockSkew + CAPropagationDelay)
			switch {
			case published(in.PublishedBundle, next.Cert) && !in.Now.Before(trustedSince):
				previous, ca, next, signer, promoted = ca.CertPEM, next, nil, next, true
				p.Changes = append(p.Changes, "promoted the next CA; the previous one stays trusted until every webhook replica serves the new certificate")
			case usable:
				signer = nil
				due = later(trustedSince, in.Now.Add(5*time.Second))
			}
		}
		// A signer the API servers do not trust yet (a CA made to replace a
		// lost one) waits while the served certificate is still trusted.
		if signer != nil && servedCA != nil && !trusted(in, signer.Cert) {
			due = later(signer.Cert.NotBefore.Add(certs.ClockSkew+CAPropagationDelay), in.Now.Add(5*time.Second))
			signer = nil
		}
		if signer != nil {
			kp, err := certs.NewServingCert(signer, in.DNSNames, in.Now, in.Duration)
			if err != nil {
				return p, err
			}
			serving, reissued = kp, true
			p.Changes = append(p.Changes, "issued a new serving certificate ("+reason+")")
		}
	}
	// The previous CA leaves once every replica serves the new one.
	if previous != nil && !promoted && !reissued && in.RolledOut && signedBy(serving.Cert, ca.Cert) {
		previous = nil
		p.Changes = append(p.Changes, "removed the previous CA from caBundle: every webhook replica serves a certificate of the current CA")
	}

	p.CA = map[string][]byte{CACertKey: ca.CertPEM, CAKeyKey: ca.KeyPEM}
	p.Bundle = append([]byte(nil), ca.CertPEM...)
	if next != nil {
		p.CA[NextCACertKey], p.CA[NextCAKeyKey] = next.CertPEM, next.KeyPEM
		p.Bundle = append(p.Bundle, next.CertPEM...)
	}
	if previous != nil {
		p.CA[PreviousCACertKey] = previous
		p.Bundle = append(p.Bundle, previous...)
	}
	p.TLS = map[string][]byte{TLSCertKey: serving.CertPEM, TLSKeyKey: serving.KeyPEM, CACertKey: p.Bundle}
	// The pods roll when the CA that signed what they serve changes.
	p.CAID = CAID(ca.CertPEM)
	if !signedBy(serving.Cert, ca.Cert) && previous != nil {
		p.CAID = CAID(previous)
	}
	p.NotAfter = serving.Cert.NotAfter
	if renew := serving.Cert.NotAfter.Add(-in.RenewBefore); due.IsZero() || renew.Before(due) {
		due = renew
	}
	p.RequeueAfter = max(due.Sub(in.Now), time.Second)
	return p, nil
}

// servingProblem says why the serving certificate must be (re)issued, or ""
// when it is fine.
func servingProblem(serving, ca *certs.KeyPair, in CertInput) string {
	switch {
	case serving == nil:
		return "none valid was stored"
	case !signedBy(serving.Cert, ca.Cert):
		return "not signed by the current CA"
	case !sameNames(serving.Cert.DNSNames, in.DNSNames):
		return "the Service's DNS names changed"
	case certs.NeedsRenewal(serving.Cert, in.Now, in.RenewBefore):
		return "due for renewal"
	case serving.Cert.NotAfter.Sub(serving.Cert.NotBefore) > in.Duration+certs.ClockSkew+time.Minute:
		return "valid for longer than spec.certificates.duration"
	}
	return ""
}

func signedBy(cert, ca *x509.Certificate) bool {
	return cert.CheckSignatureFrom(ca) == nil
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// published reports whether ca is in the PEM bundle.
func published(bundle []byte, ca *x509.Certificate) bool {
	cs, err := certs.ParseCertificates(bundle)
	if err != nil {
		return false
	}
	for _, c := range cs {
		if bytes.Equal(c.Raw, ca.Raw) {
			return true
		}
	}
	return false
}

// MaxCommonName is the longest commonName X.509 allows (ub-common-name);
// cert-manager refuses a Certificate with a longer one.
const MaxCommonName = 64

// caCommonName names the operator's CA after the webhook it serves, when
// that fits in a commonName.
func caCommonName(dnsNames []string) string {
	if len(dnsNames) > 0 {
		if name := fmt.Sprintf("gmsa-operator CA for %s", dnsNames[0]); len(name) <= MaxCommonName {
			return name
		}
	}
	return "gmsa-operator CA"
}

// servingCommonName is the serving certificate's commonName: its first DNS
// name when that fits, else none (clients check the DNS names).
func servingCommonName(dnsNames []string) string {
	if len(dnsNames) > 0 && len(dnsNames[0]) <= MaxCommonName {
		return dnsNames[0]
	}
	return ""
}

// CAID identifies a CA certificate (PEM) in a short, stable string.
func CAID(certPEM []byte) string {
	c, err := certs.ParseCertificate(certPEM)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:8])
}

func validAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Before(c.NotAfter)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// trusted reports whether the API servers have had ca in the published
// caBundle for CAPropagationDelay.
func trusted(in CertInput, ca *x509.Certificate) bool {
	return published(in.PublishedBundle, ca) && !in.Now.Before(ca.NotBefore.Add(certs.ClockSkew+CAPropagationDelay))
}

// trustedIssuer returns the certificate of the published caBundle that
// signed the serving certificate, when that certificate is still good for
// the Service; nil otherwise.
func trustedIssuer(serving *certs.KeyPair, in CertInput) *x509.Certificate {
	if serving == nil || !validAt(serving.Cert, in.Now) || !sameNames(serving.Cert.DNSNames, in.DNSNames) {
		return nil
	}
	cas, err := certs.ParseCertificates(in.PublishedBundle)
	if err != nil {
		return nil
	}
	for _, c := range cas {
		if signedBy(serving.Cert, c) {
			return c
		}
	}
	return nil
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
