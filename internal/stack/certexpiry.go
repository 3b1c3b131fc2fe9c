package stack

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
)

// Names of the certificates a stack keeps, as CertificateExpiries reports
// them (the certificate label of gmsa_stack_certificate_not_after_timestamp_seconds).
const (
	CertificateServing    = "serving"     // the webhook's serving certificate
	CertificateCA         = "ca"          // the CA that signed it
	CertificateNextCA     = "next-ca"     // a CA trusted ahead of a rollover (SelfSigned)
	CertificatePreviousCA = "previous-ca" // a CA still trusted after a rollover (SelfSigned)
)

// CertificateExpiries returns the notAfter of each certificate the stack
// keeps once plan's writes are done: the Secrets the plan writes, else
// those the snapshot read (CertManager mode, where cert-manager writes
// them). Policy mode keeps none. Certificates that are missing or do not
// parse are left out.
func CertificateExpiries(cfg Config, snap Snapshot, plan Plan) map[string]time.Time {
	out := map[string]time.Time{}
	if plan.Mode == gmsav1alpha1.AdmissionModePolicy {
		return out
	}
	var caData, tlsData map[string][]byte
	if snap.CASecret != nil {
		caData = snap.CASecret.Data
	}
	if snap.TLSSecret != nil {
		tlsData = snap.TLSSecret.Data
	}
	for _, a := range plan.Actions {
		sec, ok := a.Object.(*corev1.Secret)
		if !ok || a.Delete || sec.Namespace != cfg.Namespace {
			continue
		}
		switch sec.Name {
		case CASecretName:
			caData = sec.Data
		case TLSSecretName:
			tlsData = sec.Data
		}
	}
	add := func(data map[string][]byte, key, name string) {
		if t, err := certs.NotAfter(data[key]); err == nil {
			out[name] = t
		}
	}
	add(tlsData, TLSCertKey, CertificateServing)
	if cfg.CertSource == gmsav1alpha1.CertificateSourceCertManager {
		// cert-manager records the issuing CA beside the certificate.
		add(tlsData, CACertKey, CertificateCA)
		return out
	}
	add(caData, CACertKey, CertificateCA)
	add(caData, NextCACertKey, CertificateNextCA)
	add(caData, PreviousCACertKey, CertificatePreviousCA)
	return out
}
