package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzHandler feeds arbitrary requests to the HTTP handler. Whatever the
// input, it must not panic, must answer with one of the documented status
// codes, and every POST of JSON to /mutate or /validate must get an
// AdmissionReview with a response (a denial explains itself).
func FuzzHandler(f *testing.F) {
	seed := func(kind string, op admissionv1.Operation, sub string, pod, old *testPod) []byte {
		review := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
				Namespace: "ns1", Operation: op, SubResource: sub},
		}
		if pod != nil {
			review.Request.Object = runtime.RawExtension{Raw: must(json.Marshal(pod))}
		}
		if old != nil {
			review.Request.OldObject = runtime.RawExtension{Raw: must(json.Marshal(old))}
		}
		return must(json.Marshal(review))
	}
	withEphemeral := gmsaPod("webapp1", testContent)
	withEphemeral.Spec.EphemeralContainers = []testContainer{{Name: "debug", SecurityContext: &struct {
		WindowsOptions *testWindowsOptions `json:"windowsOptions,omitempty"`
	}{WindowsOptions: &testWindowsOptions{GMSACredentialSpecName: ptr("webapp1")}}}}
	for _, body := range [][]byte{
		seed("Pod", admissionv1.Create, "", gmsaPod("webapp1", ""), nil),
		seed("Pod", admissionv1.Create, "", gmsaPod("webapp1", testContent), nil),
		seed("Pod", admissionv1.Create, "", gmsaPod("missing", "{}"), nil),
		seed("Pod", admissionv1.Update, "", gmsaPod("webapp1", testContent), gmsaPod("webapp1", "")),
		seed("Pod", admissionv1.Update, "ephemeralcontainers", withEphemeral, gmsaPod("webapp1", testContent)),
		seed("Pod", admissionv1.Delete, "", nil, gmsaPod("webapp1", "")),
		seed("Deployment", admissionv1.Create, "", gmsaPod("webapp1", ""), nil),
		[]byte(`{"request":{"kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"securityContext":{"windowsOptions":{"gmsaCredentialSpec":"{"}}}]}}}}`),
		[]byte(`{"request":{"kind":{"kind":"Pod"},"operation":"UPDATE","object":null,"oldObject":7}}`),
		[]byte(`{}`), []byte(`null`), []byte(``), []byte(`[`),
	} {
		for _, path := range []string{"/mutate", "/validate"} {
			f.Add("POST", path, "application/json", body)
		}
	}
	f.Add("GET", "/health", "", []byte(nil))
	f.Add("GET", "/info", "", []byte(nil))
	f.Add("DELETE", "/mutate", "text/plain", []byte("x"))

	h := newTestHandler(f, logr.Discard(), NewMetrics())
	f.Fuzz(func(t *testing.T, method, path, contentType string, body []byte) {
		req, err := http.NewRequest(method, "https://webhook.test/", bytes.NewReader(body))
		if err != nil {
			t.Skip() // not a request a server could receive
		}
		req.URL.Path = path
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusOK, http.StatusNoContent, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("%s %s (%q): unexpected status %d", method, path, contentType, rec.Code)
		}
		if (path == MutatePath || path == ValidatePath) && rec.Code == http.StatusOK {
			var review admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
				t.Fatalf("answer is not an AdmissionReview with a response (%v): %s", err, rec.Body)
			}
			if r := review.Response; !r.Allowed && (r.Result == nil || r.Result.Message == "") {
				t.Fatalf("denial without a message: %s", rec.Body)
			}
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func ptr(s string) *string { return &s }
