package webhook

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
)

// Results of an admission request, as counted by
// gmsa_webhook_admission_requests_total.
const (
	ResultAllowed = "allowed" // allowed unchanged
	ResultMutated = "mutated" // allowed with a patch
	ResultDenied  = "denied"  // a decision against the pod
	ResultInvalid = "invalid" // not a well-formed admission request
)

// Metrics are the webhook's Prometheus metrics, in a registry of their own
// (with the Go runtime and process collectors).
type Metrics struct {
	registry     *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authz        prometheus.Histogram
	authzAnswers *prometheus.CounterVec
	certNotAfter prometheus.Gauge
	credSpecs    prometheus.Gauge
}

// NewMetrics registers the webhook's metrics in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmsa_webhook_admission_requests_total",
			Help: "Admission requests answered, by path (/mutate, /validate), operation (CREATE, UPDATE, DELETE, CONNECT, other; empty when the body is not a review), result (allowed, mutated, denied, invalid) and, for denials, reason (NotFound, NoContent, Unauthorized, ContentMismatch, Immutable, Unnamed, BadRequest, LookupError, AuthorizationError, InternalError; empty otherwise).",
		}, []string{"path", "operation", "result", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gmsa_webhook_admission_duration_seconds",
			Help:    "Time to answer an admission request, from reading its body to writing the response, by path.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17), // 100µs to 6.5s
		}, []string{"path"}),
		authz: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gmsa_webhook_authorization_duration_seconds",
			Help:    "Time of one LocalSubjectAccessReview against the API server.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17),
		}),
		authzAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gmsa_webhook_authorization_answers_total",
			Help: "Authorization answers, by source: review (a LocalSubjectAccessReview of this request's own), shared (the review another request had in flight for the same question), cache (a decision younger than AUTHZ_CACHE_TTL).",
		}, []string{"source"}),
		certNotAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gmsa_webhook_certificate_not_after_timestamp_seconds",
			Help: "Expiry (notAfter, Unix seconds) of the serving certificate in use.",
		}),
		credSpecs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gmsa_webhook_credspecs",
			Help: "GMSACredentialSpec objects in the webhook's cache.",
		}),
	}
	m.registry.MustRegister(m.requests, m.duration, m.authz, m.authzAnswers, m.certNotAfter, m.credSpecs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Denials of pod creations exist at 0 from the start: Prometheus's
	// increase() counts nothing for the sample that creates a series, so
	// the first denials of a kind would never reach an alert.
	for _, path := range []string{MutatePath, ValidatePath} {
		for _, reason := range admission.Reasons {
			m.requests.WithLabelValues(path, "CREATE", ResultDenied, reason)
		}
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the registry holding the metrics (for tests and for adding
// collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) observeRequest(path, operation, result, reason string, took time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(path, operation, result, reason).Inc()
	m.duration.WithLabelValues(path).Observe(took.Seconds())
}

// ObserveAuthorization records the duration of one authorization check.
func (m *Metrics) ObserveAuthorization(took time.Duration) {
	if m == nil {
		return
	}
	m.authz.Observe(took.Seconds())
}

// ObserveAuthorizationAnswer counts one authorization answer by its source
// (review, shared or cache).
func (m *Metrics) ObserveAuthorizationAnswer(source string) {
	if m == nil {
		return
	}
	m.authzAnswers.WithLabelValues(source).Inc()
}

func (m *Metrics) setCertNotAfter(t time.Time) {
	if m == nil {
		return
	}
	m.certNotAfter.Set(float64(t.Unix()))
}

// SetCredSpecs records how many credential specs the cache holds.
func (m *Metrics) SetCredSpecs(n int) {
	if m == nil {
		return
	}
	m.credSpecs.Set(float64(n))
}
