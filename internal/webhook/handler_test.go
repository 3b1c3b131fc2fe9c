package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
)

const (
	testContent = `{"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":"WebApp1","Scope":"CONTOSO"}]},"CmsPlugins":["ActiveDirectory"]}`
	testImage   = "registry.example/secret-app:v7"
)

type mapCredSpecs map[string]string

func (m mapCredSpecs) CredSpec(name string) (admission.CredSpec, bool, error) {
	c, ok := m[name]
	return admission.CredSpec{Content: c}, ok, nil
}

// allowList lets exactly the listed "namespace/sa/credspec" use credspecs.
type allowList map[string]bool

func (a allowList) MayUse(_ context.Context, ns, sa, name string) (bool, string, error) {
	return a[ns+"/"+sa+"/"+name], "", nil
}

// logBuffer collects log lines, safe for concurrent use.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logger(verbosity int) logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lines = append(b.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: verbosity})
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

func newTestHandler(t testing.TB, log logr.Logger, m *Metrics) http.Handler {
	t.Helper()
	h, err := NewHandler(HandlerOptions{
		Reviewer: &admission.Reviewer{
			CredSpecs:  mapCredSpecs{"webapp1": testContent},
			Authorizer: allowList{"ns1/default/webapp1": true},
		},
		Version: "v1.2.3",
		Metrics: m,
		Log:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testPod is the JSON shape of a corev1.Pod, reduced to what these tests
// set (k8s.io/api/core/v1 would make the fuzzing build much slower).
type testPod struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName string `json:"serviceAccountName,omitempty"`
		SecurityContext    *struct {
			WindowsOptions *testWindowsOptions `json:"windowsOptions,omitempty"`
		} `json:"securityContext,omitempty"`
		Containers          []testContainer `json:"containers"`
		EphemeralContainers []testContainer `json:"ephemeralContainers,omitempty"`
	} `json:"spec"`
}

type testContainer struct {
	Name            string `json:"name"`
	Image           string `json:"image"`
	SecurityContext *struct {
		WindowsOptions *testWindowsOptions `json:"windowsOptions,omitempty"`
	} `json:"securityContext,omitempty"`
}

type testWindowsOptions struct {
	GMSACredentialSpecName *string `json:"gmsaCredentialSpecName,omitempty"`
	GMSACredentialSpec     *string `json:"gmsaCredentialSpec,omitempty"`
}

func gmsaPod(name, content string) *testPod {
	w := &testWindowsOptions{GMSACredentialSpecName: &name}
	if content != "" {
		w.GMSACredentialSpec = &content
	}
	p := &testPod{APIVersion: "v1", Kind: "Pod"}
	p.Metadata.Name, p.Metadata.Namespace = "web", "ns1"
	p.Spec.SecurityContext = &struct {
		WindowsOptions *testWindowsOptions `json:"windowsOptions,omitempty"`
	}{WindowsOptions: w}
	p.Spec.Containers = []testContainer{{Name: "main", Image: testImage}}
	return p
}

func reviewBody(t testing.TB, kind string, op admissionv1.Operation, pod *testPod) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "uid-1",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "ns1",
			Operation: op,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	b, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func do(h http.Handler, method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// decodeReview checks that the answer is an AdmissionReview with a response.
func decodeReview(t *testing.T, rec *httptest.ResponseRecorder) admissionv1.AdmissionReview {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, rec.Body)
	}
	if review.Kind != "AdmissionReview" || review.Response == nil {
		t.Fatalf("answer is not an AdmissionReview with a response: %s", rec.Body)
	}
	return review
}

func TestHandlerAdmission(t *testing.T) {
	h := newTestHandler(t, logr.Discard(), nil)

	t.Run("mutate expands the name, echoing the UID, in admission.k8s.io/v1", func(t *testing.T) {
		review := decodeReview(t, do(h, "POST", "/mutate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", ""))))
		if review.APIVersion != "admission.k8s.io/v1" || review.Response.UID != "uid-1" || !review.Response.Allowed {
			t.Fatalf("response %+v", review)
		}
		want := `[{"op":"add","path":"/spec/securityContext/windowsOptions/gmsaCredentialSpec","value":` + fmt.Sprintf("%q", testContent) + `}]`
		if string(review.Response.Patch) != want {
			t.Errorf("patch = %s\n want %s", review.Response.Patch, want)
		}
	})
	t.Run("validate denies an unauthorized service account with upstream's message", func(t *testing.T) {
		pod := gmsaPod("webapp1", testContent)
		pod.Spec.ServiceAccountName = "other"
		review := decodeReview(t, do(h, "POST", "/validate", "application/json", reviewBody(t, "Pod", admissionv1.Create, pod)))
		r := review.Response
		if r.Allowed || r.Result == nil || r.Result.Code != 403 ||
			!strings.HasPrefix(r.Result.Message, "service account \"other\" is not authorized to `use` GMSA cred spec \"webapp1\"; ") ||
			r.AuditAnnotations[admission.DenialReasonKey] != admission.ReasonUnauthorized {
			t.Errorf("response %+v %+v", r, r.Result)
		}
	})
	t.Run("a content type with parameters is JSON too", func(t *testing.T) {
		review := decodeReview(t, do(h, "POST", "/validate", "application/json; charset=utf-8", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", testContent))))
		if !review.Response.Allowed {
			t.Errorf("denied: %+v", review.Response.Result)
		}
	})
	t.Run("an admission.k8s.io/v1beta1 request gets a v1beta1 answer", func(t *testing.T) {
		body := bytes.Replace(reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", "")), []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1)
		if review := decodeReview(t, do(h, "POST", "/mutate", "application/json", body)); review.APIVersion != "admission.k8s.io/v1beta1" {
			t.Errorf("apiVersion = %q", review.APIVersion)
		}
	})
}

func TestHandlerMalformedInput(t *testing.T) {
	h := newTestHandler(t, logr.Discard(), nil)
	for _, tc := range []struct {
		name string
		body []byte
		code int32
		msg  string
	}{
		{"not JSON", []byte("hello"), 400, "unable to decode the body as an admission review: invalid character 'h' looking for beginning of value"},
		{"empty body", nil, 400, "unable to decode the body as an admission review: unexpected end of JSON input"},
		{"JSON of the wrong shape", []byte(`{"request":[]}`), 400, "unable to decode the body as an admission review: json: cannot unmarshal array into Go struct field review.request of type admission.Request"},
		{"object that is not a pod", []byte(`{"request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":"nope"}}}}`), 400,
			"unable to decode the body as an admission review: json: cannot unmarshal string into Go struct field .request.object.spec.containers of type []admission.containerView"},
		{"no object", []byte(`{"request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":null}}`), 400, "unable to decode the pod: no object in the request"},
		{"no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "no request in the admission review"},
		{"not a Pod", reviewBody(t, "Service", admissionv1.Create, gmsaPod("webapp1", "")), 400, "expected a Pod object, got a Service"},
		{"too large", bytes.Repeat([]byte(" "), MaxRequestBytes+1), 413, fmt.Sprintf("request body larger than %d bytes", MaxRequestBytes)},
	} {
		for _, path := range []string{"/mutate", "/validate"} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				r := decodeReview(t, do(h, "POST", path, "application/json", tc.body)).Response
				if r.Allowed || r.Result == nil || r.Result.Code != tc.code || r.Result.Message != tc.msg {
					t.Errorf("response allowed=%v result=%+v\n want denied %d %q", r.Allowed, r.Result, tc.code, tc.msg)
				}
			})
		}
	}
}

func TestHandlerRouting(t *testing.T) {
	h := newTestHandler(t, logr.Discard(), nil)
	body := reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", ""))
	for _, tc := range []struct {
		name, method, path, contentType string
		status                          int
		contains                        string
	}{
		{"GET on /mutate", "GET", "/mutate", "application/json", 405, "expected a POST request on /mutate, got GET"},
		{"PUT on /validate", "PUT", "/validate", "application/json", 405, "expected a POST request on /validate, got PUT"},
		{"text/plain", "POST", "/mutate", "text/plain", 415, `expected content type application/json on /mutate, got "text/plain"`},
		{"no content type", "POST", "/validate", "", 415, `got ""`},
		{"yaml", "POST", "/validate", "application/yaml", 415, `got "application/yaml"`},
		{"unknown path", "POST", "/admit", "application/json", 404, "unknown path /admit"},
		{"health", "GET", "/health", "", 204, ""},
		{"info", "GET", "/info", "", 200, `{"version":"v1.2.3"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, tc.method, tc.path, tc.contentType, body)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("got %d %q, want %d containing %q", rec.Code, rec.Body, tc.status, tc.contains)
			}
		})
	}
	if rec := do(h, "GET", "/mutate", "", nil); rec.Header().Get("Allow") != "POST" {
		t.Errorf("405 without Allow: POST")
	}
}

func TestHandlerMetrics(t *testing.T) {
	m := NewMetrics()
	h := newTestHandler(t, logr.Discard(), m)
	do(h, "POST", "/mutate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", "")))
	do(h, "POST", "/mutate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("missing", "")))
	do(h, "POST", "/validate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", testContent)))
	do(h, "POST", "/validate", "application/json", []byte("junk"))
	do(h, "GET", "/validate", "", nil)
	for _, tc := range []struct {
		path, op, result, reason string
		want                     float64
	}{
		{"/mutate", "CREATE", ResultMutated, "", 1},
		{"/mutate", "CREATE", ResultDenied, admission.ReasonNotFound, 1},
		{"/validate", "CREATE", ResultAllowed, "", 1},
		{"/validate", "", ResultInvalid, "", 2},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.path, tc.op, tc.result, tc.reason)); got != tc.want {
			t.Errorf("requests{%s,%s,%s,%s} = %v, want %v", tc.path, tc.op, tc.result, tc.reason, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("latency histogram has %d series, want one per path", n)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, name := range []string{"gmsa_webhook_admission_requests_total", "gmsa_webhook_admission_duration_seconds_bucket",
		"gmsa_webhook_certificate_not_after_timestamp_seconds", "go_goroutines"} {
		if !strings.Contains(rec.Body.String(), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestInfoLogsHoldNoCredSpecContentNorPods: at info level, denials are
// logged with their reason, but never the credspec content nor the pod.
func TestInfoLogsHoldNoCredSpecContentNorPods(t *testing.T) {
	var logs logBuffer
	h := newTestHandler(t, logs.logger(0), nil)
	mismatch := gmsaPod("webapp1", `{"CmsPlugins":["ActiveDirectory"],"Other":"x"}`)
	do(h, "POST", "/mutate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", "")))
	do(h, "POST", "/validate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", testContent)))
	do(h, "POST", "/validate", "application/json", reviewBody(t, "Pod", admissionv1.Create, mismatch))
	do(h, "POST", "/mutate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("missing", "")))
	out := logs.String()
	for _, want := range []string{`"message"="the GMSA cred spec contents for pod \"web\" does not match`, `"message"="cred spec missing does not exist"`} {
		if !strings.Contains(out, want) {
			t.Errorf("info log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"WebApp1", "CONTOSO", "ActiveDirectory", testImage} {
		if strings.Contains(out, secret) {
			t.Errorf("info log contains %q:\n%s", secret, out)
		}
	}
	// At V(2) the patch (with content) is logged: the test above can fail.
	var debug logBuffer
	h = newTestHandler(t, debug.logger(2), nil)
	do(h, "POST", "/mutate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", "")))
	if !strings.Contains(debug.String(), "WebApp1") {
		t.Errorf("V(2) log lacks the patch:\n%s", debug.String())
	}
}

func TestNewHandlerNeedsAReviewer(t *testing.T) {
	if _, err := NewHandler(HandlerOptions{}); err == nil {
		t.Error("NewHandler without a reviewer succeeded")
	}
}

// errReader fails on read, as a broken connection does.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestHandlerUnreadableBody(t *testing.T) {
	h := newTestHandler(t, logr.Discard(), nil)
	req := httptest.NewRequest("POST", "/validate", errReader{})
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := decodeReview(t, rec).Response
	if r.Allowed || r.Result.Message != "unable to read the request body: unexpected EOF" {
		t.Errorf("response %+v %+v", r, r.Result)
	}
}

type panicky struct{}

func (panicky) MutateRequest(context.Context, *admission.Request) *admissionv1.AdmissionResponse {
	panic("boom")
}

func (panicky) ValidateRequest(context.Context, *admission.Request) *admissionv1.AdmissionResponse {
	panic("boom")
}

func TestHandlerPanicInDecisionIsADenial(t *testing.T) {
	var logs logBuffer
	h, err := NewHandler(HandlerOptions{Reviewer: panicky{}, Log: logs.logger(0)})
	if err != nil {
		t.Fatal(err)
	}
	r := decodeReview(t, do(h, "POST", "/validate", "application/json", reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", "")))).Response
	if r.Allowed || r.UID != "uid-1" || r.Result.Code != 500 || !strings.Contains(r.Result.Message, "internal error") {
		t.Errorf("response %+v %+v", r, r.Result)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("the panic is not logged:\n%s", logs.String())
	}
}

func TestMetricsOperationLabelIsBounded(t *testing.T) {
	m := NewMetrics()
	h := newTestHandler(t, logr.Discard(), m)
	precreated := testutil.CollectAndCount(m.requests)
	if want := 2 * len(admission.Reasons); precreated != want {
		t.Errorf("%d series before any request, want %d: pod creation denials by path and reason, at 0", precreated, want)
	}
	for _, op := range []string{"CREATE", "FROBNICATE", "x1", "x2"} {
		body := bytes.Replace(reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", "")), []byte(`"CREATE"`), []byte(`"`+op+`"`), 1)
		do(h, "POST", "/mutate", "application/json", body)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("/mutate", "other", ResultAllowed, "")); got != 3 {
		t.Errorf("unknown operations counted under \"other\": %v, want 3", got)
	}
	if n := testutil.CollectAndCount(m.requests) - precreated; n != 2 {
		t.Errorf("%d series, want 2 (CREATE and other)", n)
	}
}

func TestHandlerBodyShorterThanContentLength(t *testing.T) {
	h := newTestHandler(t, logr.Discard(), nil)
	body := reviewBody(t, "Pod", admissionv1.Create, gmsaPod("webapp1", ""))
	req := httptest.NewRequest("POST", "/mutate", bytes.NewReader(body[:10]))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := decodeReview(t, rec).Response
	if r.Allowed || r.Result.Message != "unable to read the request body: unexpected EOF" {
		t.Errorf("response %+v %+v", r, r.Result)
	}
}
