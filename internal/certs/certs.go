// Package certs generates and reads the certificate material of the admission
// webhook: a certificate authority (CA) key pair and a serving certificate it
// signs for a Service's DNS names. Keys are ECDSA P-256; everything is
// PEM-encoded so that it can be stored in a Secret and mounted as files.
//
// The package is pure: it does no I/O and takes the current time as an
// argument, so callers (the GmsaStack controller, tests) decide when a
// certificate is due for renewal with NeedsRenewal.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ClockSkew is how far before "now" a new certificate becomes valid, so that
// a client whose clock is slightly behind accepts it at once.
const ClockSkew = 5 * time.Minute

// PEM block types written by this package.
const (
	certificateBlock = "CERTIFICATE"
	privateKeyBlock  = "PRIVATE KEY"
)

// KeyPair is a certificate with its private key, both parsed and
// PEM-encoded. CertPEM holds exactly one certificate; KeyPEM is PKCS #8.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA returns a self-signed CA key pair named commonName, valid from
// now-ClockSkew until now+validity. It may sign serving certificates only
// (path length 0).
func NewCA(commonName string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if commonName == "" {
		return nil, errors.New("new CA: empty common name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("new CA %q: validity %s is not positive", commonName, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: generate key: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	return sign(tmpl, tmpl, key, key)
}

// NewServingCert returns a TLS server key pair for dnsNames (the first one is
// also the common name), signed by ca and valid from now-ClockSkew until
// now+validity, but never after the CA itself expires.
func NewServingCert(ca *KeyPair, dnsNames []string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, errors.New("new serving certificate: no CA")
	}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("new serving certificate: %q is not a CA certificate", ca.Cert.Subject.CommonName)
	}
	if len(dnsNames) == 0 {
		return nil, errors.New("new serving certificate: no DNS names")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("new serving certificate for %q: validity %s is not positive", dnsNames[0], validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new serving certificate for %q: generate key: %w", dnsNames[0], err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new serving certificate for %q: %w", dnsNames[0], err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dnsNames[0]},
		DNSNames:              append([]string(nil), dnsNames...),
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	return sign(tmpl, ca.Cert, key, ca.Key)
}

// ServiceDNSNames returns the names a client may use for a Service, the
// one the API server uses for a clientConfig.service webhook first:
// <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local, <svc>.<ns>, <svc>.
func ServiceDNSNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		service + "." + namespace,
		service,
	}
}

// ParseKeyPair parses a PEM certificate (the first CERTIFICATE block; further
// blocks, such as intermediates, are ignored) and its PEM private key
// (PKCS #8, SEC 1 EC or PKCS #1 RSA), and checks that they belong together.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("private key does not match certificate %q", cert.Subject.CommonName)
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: encodePEM(certificateBlock, cert.Raw), KeyPEM: append([]byte(nil), keyPEM...)}, nil
}

// ParseCertificate returns the first certificate of a PEM bundle.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertificates returns every certificate of a PEM bundle, in order (for
// example the CAs of a caBundle during a rollover). Blocks of other types
// are skipped; a bundle without any certificate is an error.
func ParseCertificates(bundle []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bundle
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != certificateBlock {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d of PEM bundle: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE block in PEM data")
	}
	return certs, nil
}

// ParsePrivateKey parses a PEM private key: PKCS #8 ("PRIVATE KEY"), SEC 1
// ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY").
func ParsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block in private key data")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case privateKeyBlock:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported private key PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// NotAfter returns the expiry of the first certificate of a PEM bundle.
func NotAfter(certPEM []byte) (time.Time, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return time.Time{}, err
	}
	return cert.NotAfter, nil
}

// NeedsRenewal reports whether a certificate should be replaced at now: it
// is not yet valid, or it expires within renewBefore.
func NeedsRenewal(cert *x509.Certificate, now time.Time, renewBefore time.Duration) bool {
	return now.Before(cert.NotBefore) || !now.Add(renewBefore).Before(cert.NotAfter)
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key of %q: %w", tmpl.Subject.CommonName, err)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: encodePEM(certificateBlock, der),
		KeyPEM:  encodePEM(privateKeyBlock, keyDER),
	}, nil
}

func encodePEM(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}

// randomSerial returns a positive 128-bit serial number (RFC 5280 allows up
// to 20 octets).
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// subjectKeyID is the SHA-256 of the public key, truncated to 20 bytes as in
// RFC 7093 method 1.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// publicKeysEqual relies on every standard library public key type having
// an Equal method.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
