// Package webhook serves the gMSA admission decisions of package admission
// over HTTPS with the interface of the upstream webhook
// (kubernetes-sigs/windows-gmsa): POST /mutate and POST /validate
// (admission.k8s.io/v1 AdmissionReview), GET /health and GET /info. It holds
// the HTTP handler, the server (TLS 1.2 minimum, readiness, graceful
// shutdown, a plain-HTTP port for /metrics, /healthz and /readyz), the
// serving certificate reloader and the Prometheus metrics. It does not talk
// to the API server: package webhook/cluster connects it to a cluster.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
)

// Paths served on the HTTPS port, as upstream.
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
	HealthPath   = "/health"
	InfoPath     = "/info"
)

// MaxRequestBytes bounds an admission request body. An AdmissionReview of
// an UPDATE carries two objects of at most about 1.5 MiB each (etcd's
// limit).
const MaxRequestBytes = 8 << 20

const jsonContentType = "application/json"

// Reviewer makes the admission decisions; *admission.Reviewer is one.
type Reviewer interface {
	MutateRequest(ctx context.Context, req *admission.Request) *admissionv1.AdmissionResponse
	ValidateRequest(ctx context.Context, req *admission.Request) *admissionv1.AdmissionResponse
}

// review is an AdmissionReview as it arrives, decoded in one pass with only
// what admission reads (see admission.Request).
type review struct {
	metav1.TypeMeta
	Request *admission.Request `json:"request"`
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Reviewer decides; required.
	Reviewer Reviewer
	// Version is reported by GET /info.
	Version string
	// Metrics records requests; nil records nothing.
	Metrics *Metrics
	// Log receives one line per denial at info level (never credential
	// spec content nor whole pods), one per request at V(1).
	Log logr.Logger
}

// handler is the http.Handler of the HTTPS port.
type handler struct {
	HandlerOptions
	info []byte
}

// NewHandler returns the handler of the HTTPS port. Malformed input (a
// wrong path, method or content type, a body that is not an
// AdmissionReview, a review without a request) gets an error answer, never
// a panic: HTTP 404, 405 and 415 with a text message for the first three,
// and an AdmissionReview that denies with code 400 and a message for the
// others (as upstream, so that the API server shows the message).
func NewHandler(opts HandlerOptions) (http.Handler, error) {
	if opts.Reviewer == nil {
		return nil, errors.New("webhook handler: no reviewer")
	}
	info, err := json.Marshal(map[string]string{"version": opts.Version})
	if err != nil {
		return nil, fmt.Errorf("encode /info: %w", err)
	}
	return &handler{HandlerOptions: opts, info: info}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case MutatePath, ValidatePath:
		h.serveAdmission(w, r)
	case HealthPath:
		// Server answers /health from its readiness checks; a bare
		// handler is always healthy.
		w.WriteHeader(http.StatusNoContent)
	case InfoPath:
		w.Header().Set("Content-Type", jsonContentType)
		_, _ = w.Write(h.info)
	default:
		http.Error(w, fmt.Sprintf("unknown path %s", r.URL.Path), http.StatusNotFound)
	}
}

func (h *handler) serveAdmission(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := r.URL.Path
	if r.Method != http.MethodPost {
		h.Metrics.observeRequest(path, "", ResultInvalid, "", time.Since(start))
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("expected a POST request on %s, got %s", path, r.Method), http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		h.Metrics.observeRequest(path, "", ResultInvalid, "", time.Since(start))
		http.Error(w, fmt.Sprintf("expected content type %s on %s, got %q", jsonContentType, path, ct), http.StatusUnsupportedMediaType)
		return
	}

	review, resp := h.review(w, r)
	out := admissionv1.AdmissionReview{TypeMeta: responseType(review.TypeMeta), Response: resp}
	body, err := json.Marshal(out)
	if err != nil {
		h.Log.Error(err, "encode admission response", "path", path)
		http.Error(w, "cannot encode the admission response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", jsonContentType)
	if _, err := w.Write(body); err != nil {
		h.Log.V(1).Info("write admission response", "path", path, "error", err.Error())
	}

	operation, result, reason := "", ResultInvalid, ""
	if review.Request != nil {
		operation = operationLabel(review.Request.Operation)
		result = resultOf(resp)
		reason = admission.DenialReason(resp)
	}
	h.Metrics.observeRequest(path, operation, result, reason, time.Since(start))
	h.logAnswer(path, review.Request, resp, result)
}

// operationLabel bounds the operation label to the operations that exist:
// the request is client input, and every label value is a new series.
func operationLabel(op admissionv1.Operation) string {
	switch op {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect:
		return string(op)
	}
	return "other"
}

// review decodes the request and decides. The returned review's Request is
// nil when the body was not a usable AdmissionReview.
func (h *handler) review(w http.ResponseWriter, r *http.Request) (review, *admissionv1.AdmissionResponse) {
	var review review
	body, err := readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return review, admission.Denied(http.StatusRequestEntityTooLarge, admission.ReasonBadRequest, fmt.Sprintf("request body larger than %d bytes", MaxRequestBytes))
		}
		return review, admission.Denied(http.StatusBadRequest, admission.ReasonBadRequest, fmt.Sprintf("unable to read the request body: %v", err))
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		review.Request = nil
		return review, admission.Denied(http.StatusBadRequest, admission.ReasonBadRequest, fmt.Sprintf("unable to decode the body as an admission review: %v", err))
	}
	if review.Request == nil {
		return review, admission.Denied(http.StatusBadRequest, admission.ReasonBadRequest, "no request in the admission review")
	}
	return review, h.decide(r, review.Request)
}

// decide calls the reviewer; a panic in a decision is a denial with a clear
// message rather than a dropped connection.
func (h *handler) decide(r *http.Request, req *admission.Request) (resp *admissionv1.AdmissionResponse) {
	defer func() {
		if p := recover(); p != nil {
			h.Log.Error(fmt.Errorf("%v", p), "admission decision panicked", "path", r.URL.Path, "uid", string(req.UID), "stack", string(debug.Stack()))
			resp = admission.Denied(http.StatusInternalServerError, admission.ReasonInternalError, "internal error in the gMSA webhook; see its logs")
			resp.UID = req.UID
		}
	}()
	if r.URL.Path == MutatePath {
		return h.Reviewer.MutateRequest(r.Context(), req)
	}
	return h.Reviewer.ValidateRequest(r.Context(), req)
}

// readBody reads the request body, at most MaxRequestBytes. With a
// Content-Length (which net/http holds the body to) it reads into a buffer
// of exactly that size rather than growing one.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if n := r.ContentLength; n > 0 && n <= MaxRequestBytes {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

// logAnswer logs denials at info level and everything at V(1). The fields
// are metadata and the denial message: admission messages never contain
// credential spec content. The patch (which does) is logged at V(2) only.
func (h *handler) logAnswer(path string, req *admission.Request, resp *admissionv1.AdmissionResponse, result string) {
	if resp.Allowed && !h.Log.V(1).Enabled() {
		return // nothing to log: spare the allocations on the hot path
	}
	kv := []any{"path", path, "result", result}
	if req != nil {
		kv = append(kv, "uid", string(req.UID), "operation", string(req.Operation), "namespace", req.Namespace, "name", req.Name,
			"subresource", req.SubResource, "user", req.UserInfo.Username)
	}
	if resp.Result != nil {
		kv = append(kv, "code", resp.Result.Code, "reason", admission.DenialReason(resp), "message", resp.Result.Message)
	}
	switch {
	case !resp.Allowed:
		h.Log.Info("admission denied", kv...)
	case h.Log.V(2).Enabled() && resp.Patch != nil:
		h.Log.V(2).Info("admission answered", append(kv, "patch", string(resp.Patch))...)
	default:
		h.Log.V(1).Info("admission answered", kv...)
	}
}

func resultOf(resp *admissionv1.AdmissionResponse) string {
	switch {
	case !resp.Allowed:
		return ResultDenied
	case len(resp.Patch) > 0:
		return ResultMutated
	default:
		return ResultAllowed
	}
}

// responseType answers in the request's admission.k8s.io version: v1, or
// v1beta1 (same structure) for an old API server.
func responseType(req metav1.TypeMeta) metav1.TypeMeta {
	apiVersion := "admission.k8s.io/v1"
	if req.APIVersion == "admission.k8s.io/v1beta1" {
		apiVersion = req.APIVersion
	}
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"}
}

func isJSON(contentType string) bool {
	if contentType == jsonContentType { // what the API server sends
		return true
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == jsonContentType
}
