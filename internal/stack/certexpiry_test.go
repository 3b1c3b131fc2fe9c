package stack

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
)

// TestCertificateExpiries checks which certificates a stack reports in each
// mode, and that what the plan writes wins over what was read.
func TestCertificateExpiries(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg, err := Resolve(&gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, "img")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := PlanCertificates(CertInput{DNSNames: cfg.DNSNames(), Duration: 24 * time.Hour, RenewBefore: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// A rollover in the plan: the new material has a next CA.
	next, err := certs.NewCA("next", now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	planned := map[string][]byte{CACertKey: stored.CA[CACertKey], CAKeyKey: stored.CA[CAKeyKey], NextCACertKey: next.CertPEM, NextCAKeyKey: next.KeyPEM}
	snap := Snapshot{
		CASecret:  cfg.Secret(CASecretName, corev1.SecretTypeOpaque, stored.CA),
		TLSSecret: cfg.Secret(TLSSecretName, corev1.SecretTypeTLS, stored.TLS),
	}
	writes := Plan{Mode: gmsav1alpha1.AdmissionModeWebhook, Actions: []Action{{Object: cfg.Secret(CASecretName, corev1.SecretTypeOpaque, planned)}}}
	cm := cfg
	cm.CertSource = gmsav1alpha1.CertificateSourceCertManager

	for _, tc := range []struct {
		name string
		cfg  Config
		snap Snapshot
		plan Plan
		want map[string]time.Duration // from now
	}{
		{"SelfSigned, as read", cfg, snap, Plan{Mode: gmsav1alpha1.AdmissionModeWebhook},
			map[string]time.Duration{CertificateServing: 24 * time.Hour, CertificateCA: 48 * time.Hour}},
		{"SelfSigned, the plan writes a next CA", cfg, snap, writes,
			map[string]time.Duration{CertificateServing: 24 * time.Hour, CertificateCA: 48 * time.Hour, CertificateNextCA: 48 * time.Hour}},
		{"CertManager: the serving Secret and its ca.crt", cm, snap, Plan{Mode: gmsav1alpha1.AdmissionModeWebhook},
			map[string]time.Duration{CertificateServing: 24 * time.Hour, CertificateCA: 48 * time.Hour}},
		{"nothing stored yet", cfg, Snapshot{}, Plan{Mode: gmsav1alpha1.AdmissionModeWebhook}, map[string]time.Duration{}},
		{"Policy mode keeps no certificate", cfg, snap, Plan{Mode: gmsav1alpha1.AdmissionModePolicy}, map[string]time.Duration{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CertificateExpiries(tc.cfg, tc.snap, tc.plan)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for name, d := range tc.want {
				// Certificates are valid from a little before now (clock skew).
				if at, ok := got[name]; !ok || at.Sub(now) < d-time.Hour || at.Sub(now) > d+time.Hour {
					t.Errorf("%s: got %v, want now+%s", name, got[name], d)
				}
			}
		})
	}
}
