package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// baseline decodes the review and allows it: the floor any handler pays.
var baseline = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var review admissionv1.AdmissionReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil || review.Request == nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	out, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true},
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
})

// BenchmarkHandler measures the handler without network or TLS, next to
// the baseline: the difference is what gMSA admission adds per request.
func BenchmarkHandler(b *testing.B) {
	h := newTestHandler(b, logr.Discard(), NewMetrics())
	mutate := reviewBody(b, "Pod", admissionv1.Create, gmsaPod("webapp1", ""))
	validate := reviewBody(b, "Pod", admissionv1.Create, gmsaPod("webapp1", testContent))
	for _, bc := range []struct {
		name string
		h    http.Handler
		path string
		body []byte
	}{
		{"baseline/mutate-body", baseline, "/mutate", mutate},
		{"mutate", h, "/mutate", mutate},
		{"baseline/validate-body", baseline, "/validate", validate},
		{"validate", h, "/validate", validate},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", bc.path, bytes.NewReader(bc.body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				bc.h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
