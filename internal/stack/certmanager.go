package stack

import (
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// Names of the cert-manager objects the stack makes in CertManager mode.
const (
	// SelfSignedIssuerName bootstraps the CA chain (no issuerRef given).
	SelfSignedIssuerName = "gmsa-webhook-selfsigned"
	// CAIssuerName signs the serving certificate with the CA in
	// CASecretName (no issuerRef given).
	CAIssuerName = "gmsa-webhook-ca"
	// CACertificateName is the CA Certificate (no issuerRef given).
	CACertificateName = "gmsa-webhook-ca"
	// ServingCertificateName is the serving Certificate; the webhook
	// configurations name it in cert-manager.io/inject-ca-from.
	ServingCertificateName = WebhookName
)

// CertManagerObjects returns the cert-manager Issuers and Certificates of
// the stack: with an issuerRef, only the serving Certificate issued by it;
// without, a self-signed Issuer, a CA Certificate, a CA Issuer and the
// serving Certificate it signs. Secrets cert-manager writes carry the
// stack's labels, so the operator's label-restricted cache sees them.
func (c Config) CertManagerObjects() []client.Object {
	issuer := cmmeta.IssuerReference{Name: CAIssuerName, Kind: cmapi.IssuerKind, Group: "cert-manager.io"}
	var objs []client.Object
	if c.IssuerRef != nil {
		issuer = cmmeta.IssuerReference{Name: c.IssuerRef.Name, Kind: c.IssuerRef.Kind, Group: c.IssuerRef.Group}
	} else {
		objs = append(objs,
			&cmapi.Issuer{
				TypeMeta:   typeMeta(cmapi.SchemeGroupVersion.String(), cmapi.IssuerKind),
				ObjectMeta: c.meta(SelfSignedIssuerName, true),
				Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
			},
			&cmapi.Certificate{
				TypeMeta:   typeMeta(cmapi.SchemeGroupVersion.String(), cmapi.CertificateKind),
				ObjectMeta: c.meta(CACertificateName, true),
				Spec: cmapi.CertificateSpec{
					IsCA:       true,
					CommonName: caCommonName(c.DNSNames()),
					// Ten serving lifetimes: cainjector swaps caBundle to a
					// new CA at once, so the CA should change rarely.
					Duration:       &metav1.Duration{Duration: CertManagerCAValidity(c.Duration)},
					RenewBefore:    &metav1.Duration{Duration: c.Duration + c.RenewBefore},
					SecretName:     CASecretName,
					SecretTemplate: &cmapi.CertificateSecretTemplate{Labels: c.Labels()},
					PrivateKey:     &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmapi.RotationPolicyAlways},
					IssuerRef:      cmmeta.IssuerReference{Name: SelfSignedIssuerName, Kind: cmapi.IssuerKind, Group: "cert-manager.io"},
				},
			},
			&cmapi.Issuer{
				TypeMeta:   typeMeta(cmapi.SchemeGroupVersion.String(), cmapi.IssuerKind),
				ObjectMeta: c.meta(CAIssuerName, true),
				Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: CASecretName}}},
			},
		)
	}
	objs = append(objs, &cmapi.Certificate{
		TypeMeta:   typeMeta(cmapi.SchemeGroupVersion.String(), cmapi.CertificateKind),
		ObjectMeta: c.meta(ServingCertificateName, true),
		Spec: cmapi.CertificateSpec{
			CommonName:     servingCommonName(c.DNSNames()),
			DNSNames:       c.DNSNames(),
			Duration:       &metav1.Duration{Duration: c.Duration},
			RenewBefore:    &metav1.Duration{Duration: c.RenewBefore},
			SecretName:     TLSSecretName,
			SecretTemplate: &cmapi.CertificateSecretTemplate{Labels: c.Labels()},
			PrivateKey:     &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmapi.RotationPolicyAlways},
			Usages:         []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature},
			IssuerRef:      issuer,
		},
	})
	return objs
}

// CertManagerIssuerRef is the issuer the serving certificate names, and
// whether the operator makes it itself.
func (c Config) CertManagerIssuerRef() (ref gmsav1alpha1.IssuerReference, own bool) {
	if c.IssuerRef != nil {
		return *c.IssuerRef, false
	}
	return gmsav1alpha1.IssuerReference{Name: CAIssuerName, Kind: cmapi.IssuerKind, Group: "cert-manager.io"}, true
}

// CertManagerCAValidity is the lifetime of the CA Certificate the operator
// asks cert-manager for: ten serving certificate lifetimes. cainjector
// replaces caBundle with a new CA as soon as cert-manager issues a serving
// certificate from it, while pods may still serve the old certificate until
// they reload it; a long-lived CA makes that window rare.
func CertManagerCAValidity(duration time.Duration) time.Duration { return 10 * duration }
