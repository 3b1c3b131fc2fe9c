// Package metrics holds the operator's own Prometheus metrics: the
// readiness of each GmsaStack and GmsaAccount, the admission mode a stack
// runs, and the expiry of every certificate a stack keeps. They live in
// controller-runtime's registry, so the manager's metrics endpoint serves
// them beside the controllers' own. The alert rules and the dashboard in
// config/prometheus are written against these names.
//
// Every series names its object by the label name (both kinds are
// cluster-scoped), never namespace: Prometheus sets namespace to the
// scraped pod's. The series of an object are removed when it is deleted.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// Metric names, for the rules, the dashboard and the tests.
const (
	StackReady                  = "gmsa_stack_ready"
	StackAdmissionMode          = "gmsa_stack_admission_mode"
	StackCertificateNotAfter    = "gmsa_stack_certificate_not_after_timestamp_seconds"
	AccountReady                = "gmsa_account_ready"
	labelName, labelReason      = "name", "reason"
	labelMode, labelCertificate = "mode", "certificate"
)

var (
	stackReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: StackReady,
		Help: "1 when the GmsaStack's Ready condition is True, else 0; reason is the Ready condition's reason.",
	}, []string{labelName, labelReason})
	stackMode = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: StackAdmissionMode,
		Help: "1 for the admission mode (Webhook or Policy) the GmsaStack runs; absent while its spec cannot be served or it is not the cluster's active stack.",
	}, []string{labelName, labelMode})
	stackCerts = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: StackCertificateNotAfter,
		Help: "Expiry (notAfter, Unix seconds) of each certificate the GmsaStack keeps: serving, ca, and next-ca or previous-ca around a CA rollover.",
	}, []string{labelName, labelCertificate})
	accountReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: AccountReady,
		Help: "1 when the GmsaAccount's Ready condition is True, else 0; reason is the Ready condition's reason.",
	}, []string{labelName, labelReason})

	register sync.Once
)

// collectors are every metric of the package.
func collectors() prometheus.Collector {
	return multi{stackReady, stackMode, stackCerts, accountReady}
}

type multi []prometheus.Collector

func (m multi) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m {
		c.Describe(ch)
	}
}

func (m multi) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m {
		c.Collect(ch)
	}
}

// Register adds the metrics to controller-runtime's registry, once per
// process however often it is called.
func Register() {
	register.Do(func() {
		ctrlmetrics.Registry.MustRegister(collectors())
	})
}

// SetStackStatus records a GmsaStack's readiness from the conditions about
// to be written, and the admission mode it runs ("" for none).
func SetStackStatus(name string, conditions []metav1.Condition, mode gmsav1alpha1.AdmissionMode) {
	setReady(stackReady, name, conditions)
	stackMode.DeletePartialMatch(prometheus.Labels{labelName: name})
	if mode != "" {
		stackMode.WithLabelValues(name, string(mode)).Set(1)
	}
}

// SetStackCertificates replaces the GmsaStack's certificate expiries with
// notAfter (by certificate, as stack.CertificateExpiries names them); an
// empty map removes them (Policy mode keeps no certificate).
func SetStackCertificates(name string, notAfter map[string]time.Time) {
	stackCerts.DeletePartialMatch(prometheus.Labels{labelName: name})
	for cert, t := range notAfter {
		stackCerts.WithLabelValues(name, cert).Set(float64(t.Unix()))
	}
}

// DeleteStack removes every series of a GmsaStack that no longer exists.
func DeleteStack(name string) {
	for _, v := range []*prometheus.GaugeVec{stackReady, stackMode, stackCerts} {
		v.DeletePartialMatch(prometheus.Labels{labelName: name})
	}
}

// SetAccountStatus records a GmsaAccount's readiness from the conditions
// about to be written.
func SetAccountStatus(name string, conditions []metav1.Condition) {
	setReady(accountReady, name, conditions)
}

// DeleteAccount removes the series of a GmsaAccount that no longer exists.
func DeleteAccount(name string) {
	accountReady.DeletePartialMatch(prometheus.Labels{labelName: name})
}

// setReady keeps exactly one series per object: 1 or 0, with the Ready
// condition's reason (the series of the previous reason goes).
func setReady(v *prometheus.GaugeVec, name string, conditions []metav1.Condition) {
	ready, reason := 0.0, "Unknown"
	if c := meta.FindStatusCondition(conditions, gmsav1alpha1.ConditionReady); c != nil {
		reason = c.Reason
		if c.Status == metav1.ConditionTrue {
			ready = 1
		}
	}
	v.DeletePartialMatch(prometheus.Labels{labelName: name})
	v.WithLabelValues(name, reason).Set(ready)
}
