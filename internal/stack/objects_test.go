package stack

import (
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// TestNamespaceSelectorExcludes: the spec's namespaceSelector names the
// namespaces to exclude; the webhook configurations send exactly the others
// (outside the built-in exclusions).
func TestNamespaceSelectorExcludes(t *testing.T) {
	namespaces := map[string]map[string]string{
		"team-a":      {"team": "a"},
		"team-b":      {"team": "b"},
		"no-team":     {},
		"kube-system": {},
		"gmsa-system": {},
		"disabled":    {DisabledLabel: "true"},
	}
	cases := []struct {
		exclude *metav1.LabelSelector
		sent    []string
	}{
		{nil, []string{"no-team", "team-a", "team-b"}},
		{&metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}, []string{"no-team", "team-b"}},
		{&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}}, []string{"no-team"}},
		{&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"a"}}}}, []string{"team-a"}},
		{&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}}, []string{"no-team"}},
		{&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpDoesNotExist}}}, []string{"team-a", "team-b"}},
	}
	for _, c := range cases {
		s := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: gmsav1alpha1.GmsaStackSpec{Webhook: &gmsav1alpha1.WebhookSpec{NamespaceSelector: c.exclude}}}
		cfg, err := Resolve(s, "img")
		if err != nil {
			t.Fatal(err)
		}
		m, v := cfg.WebhookConfigurations(nil)
		for _, sel := range []*metav1.LabelSelector{m.Webhooks[0].NamespaceSelector, v.Webhooks[0].NamespaceSelector} {
			selector, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil {
				t.Fatal(err)
			}
			var sent []string
			for _, name := range []string{"disabled", "gmsa-system", "kube-system", "no-team", "team-a", "team-b"} {
				l := labels.Set{"kubernetes.io/metadata.name": name}
				for k, val := range namespaces[name] {
					l[k] = val
				}
				if selector.Matches(l) {
					sent = append(sent, name)
				}
			}
			if strings.Join(sent, ",") != strings.Join(c.sent, ",") {
				t.Errorf("exclude %v: sent to the webhook %v, want %v", c.exclude, sent, c.sent)
			}
		}
	}
}

func TestResolveRefusesWhatItCannotDo(t *testing.T) {
	two := &gmsav1alpha1.GmsaStack{Spec: gmsav1alpha1.GmsaStackSpec{Webhook: &gmsav1alpha1.WebhookSpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "1", "b": "2"}}}}}
	if _, err := Resolve(two, "img"); err == nil || !strings.Contains(err.Error(), "spec.webhook.namespaceSelector") {
		t.Errorf("two requirements: got %v", err)
	}
	if _, err := Resolve(&gmsav1alpha1.GmsaStack{}, ""); err == nil || !strings.Contains(err.Error(), "spec.webhook.image") {
		t.Errorf("no image at all: got %v", err)
	}
	c, err := Resolve(&gmsav1alpha1.GmsaStack{Spec: gmsav1alpha1.GmsaStackSpec{Webhook: &gmsav1alpha1.WebhookSpec{Image: "upstream:1"}}}, "own:1")
	if err != nil || c.OwnImage || c.Image != "upstream:1" {
		t.Errorf("foreign image: %+v %v", c, err)
	}
	if d := c.Deployment(""); len(d.Spec.Template.Spec.Containers[0].Command) != 0 {
		t.Errorf("a foreign image must run its own entrypoint, got command %v", d.Spec.Template.Spec.Containers[0].Command)
	}
}

// cert-manager refuses a Certificate whose commonName is over 64 bytes; the
// longest namespace name (63 characters) must still give valid ones.
func TestCertManagerCommonNamesFit(t *testing.T) {
	for _, ns := range []string{"gmsa-system", strings.Repeat("n", 26), strings.Repeat("n", 37), strings.Repeat("n", 63)} {
		s := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: gmsav1alpha1.GmsaStackSpec{Namespace: ns,
			Certificates: &gmsav1alpha1.CertificatesSpec{Source: gmsav1alpha1.CertificateSourceCertManager}}}
		cfg, err := Resolve(s, "img")
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range cfg.CertManagerObjects() {
			c, ok := obj.(*cmapi.Certificate)
			if !ok {
				continue
			}
			if len(c.Spec.CommonName) > MaxCommonName {
				t.Errorf("namespace of %d characters: Certificate %s has a commonName of %d bytes", len(ns), c.Name, len(c.Spec.CommonName))
			}
			if !c.Spec.IsCA && len(c.Spec.DNSNames) == 0 {
				t.Errorf("Certificate %s has no DNS names", c.Name)
			}
		}
	}
	if got := caCommonName([]string{"gmsa-webhook.gmsa-system.svc"}); got != "gmsa-operator CA for gmsa-webhook.gmsa-system.svc" {
		t.Errorf("a CA name that fits is kept whole: %q", got)
	}
}
