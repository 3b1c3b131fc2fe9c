// Package admission makes the gMSA admission decisions for pods: the
// mutation that expands a credential spec name into its JSON content, and
// the validation that checks authorization, name/content consistency and
// immutability. It is the same contract as the upstream webhook
// (kubernetes-sigs/windows-gmsa), with the same denial messages.
//
// The package is pure: credential specs and authorization come in through
// the CredSpecs and Authorizer interfaces, and it never talks to the API
// server itself. It covers the pod-level windowsOptions and those of every
// container, init container and ephemeral container.
package admission

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultServiceAccount is the service account a pod without
// spec.serviceAccountName runs as.
const DefaultServiceAccount = "default"

// EphemeralContainersSubresource is the subresource through which ephemeral
// containers are added to a running pod (kubectl debug).
const EphemeralContainersSubresource = "ephemeralcontainers"

// CredSpec is what admission needs of a GMSACredentialSpec object.
type CredSpec struct {
	// Content is the object's credspec field in the form CanonicalJSON
	// returns; empty when the object has no credspec field.
	Content string
	// Account is the name of the GmsaAccount that generates the credential
	// spec, empty when no GmsaAccount does. It only feeds denial hints.
	Account string
}

// SimilarNames is implemented by CredSpecs that can find a credential spec
// whose name differs from a given name only in case, for the "did you
// mean" hint of a denial (the Kubernetes docs' own sample names
// "WebApp1"; object names are lower case).
type SimilarNames interface {
	// SameNameIgnoringCase returns the name of a credential spec that equals
	// name when compared case-insensitively but differs from it, if any.
	SameNameIgnoringCase(name string) (string, bool)
}

// Denial reasons: machine-readable causes of a refusal. The response
// carries one in its audit annotation DenialReasonKey (the API server
// records it in the audit log as <webhook>/denial-reason), and the webhook
// counts admissions by it. The message, not the reason, is what users see,
// as with the upstream webhook.
const (
	ReasonNotFound           = "NotFound"           // no credential spec of that name
	ReasonNoContent          = "NoContent"          // the credential spec has no credspec field
	ReasonLookupError        = "LookupError"        // the credential spec could not be read
	ReasonUnauthorized       = "Unauthorized"       // the service account may not use the credential spec
	ReasonAuthorizationError = "AuthorizationError" // the authorization check could not be made
	ReasonUnnamed            = "Unnamed"            // content without a name
	ReasonContentMismatch    = "ContentMismatch"    // content given by the user differs
	ReasonImmutable          = "Immutable"          // gMSA settings changed on UPDATE
	ReasonBadRequest         = "BadRequest"         // not a well-formed pod admission request
	ReasonInternalError      = "InternalError"      // the webhook could not build its answer
)

// Reasons are every denial reason.
var Reasons = []string{ReasonNotFound, ReasonNoContent, ReasonLookupError, ReasonUnauthorized, ReasonAuthorizationError,
	ReasonUnnamed, ReasonContentMismatch, ReasonImmutable, ReasonBadRequest, ReasonInternalError}

// DenialReasonKey is the audit annotation that carries a denial's reason.
const DenialReasonKey = "denial-reason"

// DenialReason returns the reason of a denial, or "" for a response that
// allows the request.
func DenialReason(resp *admissionv1.AdmissionResponse) string {
	if resp == nil || resp.Allowed {
		return ""
	}
	return resp.AuditAnnotations[DenialReasonKey]
}

// CredSpecs looks credential specs up by name. Implementations must be safe
// for concurrent use and should answer from memory.
type CredSpecs interface {
	// CredSpec returns the credential spec called name; found is false if
	// there is none. err reports a lookup that could not be answered (for
	// example a cache that has not synced yet), never "not found".
	CredSpec(name string) (spec CredSpec, found bool, err error)
}

// Authorizer decides whether a service account may `use` a credential spec.
// Implementations must be safe for concurrent use.
type Authorizer interface {
	// MayUse reports whether service account serviceAccount of namespace
	// may use the credential spec called credSpecName; reason explains a
	// refusal when the authorizer gives one. err reports a check that could
	// not be made.
	MayUse(ctx context.Context, namespace, serviceAccount, credSpecName string) (allowed bool, reason string, err error)
}

// Reviewer answers admission requests for pods. Its fields are read-only
// once it is in use; it is safe for concurrent use.
type Reviewer struct {
	// CredSpecs finds the content of a credential spec by name.
	CredSpecs CredSpecs
	// Authorizer checks that the pod's service account may use a
	// credential spec.
	Authorizer Authorizer
	// RandomHostname makes Mutate give a pod that is created with a gMSA
	// name and no spec.hostname a random hostname of 15 characters (the
	// NetBIOS limit), as upstream's RANDOM_HOSTNAME does.
	RandomHostname bool
	// NewHostname returns the random hostname; nil means 15 random
	// lowercase hexadecimal characters.
	NewHostname func() string
}

// Mutate answers a request to the mutating webhook. On Pod CREATE, every
// gMSA name without content gets the content of the credential spec of that
// name, through a JSON patch; a name whose credential spec does not exist
// or has no content is denied. On an UPDATE of the ephemeralcontainers
// subresource, the same applies to the ephemeral containers being added.
// Any other request is allowed unchanged. The response carries the
// request's UID.
func (r *Reviewer) Mutate(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	in, denial := fromAdmissionRequest(req)
	if denial != nil {
		return denial
	}
	return r.MutateRequest(ctx, in)
}

// Validate answers a request to the validating webhook. On Pod CREATE (and
// for the ephemeral containers being added through the ephemeralcontainers
// subresource): content without a name is denied; every name needs the
// Authorizer's consent for the pod's service account; content must equal
// the credential spec's content as JSON (key order and whitespace do not
// matter). On any Pod UPDATE, changing any gMSA name or content is denied.
// Any other request is allowed. The response carries the request's UID.
func (r *Reviewer) Validate(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	in, denial := fromAdmissionRequest(req)
	if denial != nil {
		return denial
	}
	return r.ValidateRequest(ctx, in)
}

// MutateRequest is Mutate for a Request decoded straight from the wire.
func (r *Reviewer) MutateRequest(_ context.Context, req *Request) *admissionv1.AdmissionResponse {
	resp := r.mutate(req)
	resp.UID = req.UID
	return resp
}

// ValidateRequest is Validate for a Request decoded straight from the wire.
func (r *Reviewer) ValidateRequest(ctx context.Context, req *Request) *admissionv1.AdmissionResponse {
	resp := r.validate(ctx, req)
	resp.UID = req.UID
	return resp
}

func (r *Reviewer) mutate(req *Request) *admissionv1.AdmissionResponse {
	pod, oldPod, denial := checkRequest(req)
	if denial != nil {
		return denial
	}
	var targets []gmsaOptions
	switch {
	case req.Operation == admissionv1.Create:
		targets = pod.gmsaOptions()
	case req.Operation == admissionv1.Update && req.SubResource == EphemeralContainersSubresource:
		targets = addedEphemeralContainers(pod, oldPod)
	default:
		return allowed()
	}

	var patch []patchOperation
	hasName := false
	for _, o := range targets {
		if o.name == nil {
			continue
		}
		hasName = true
		if o.content != nil {
			// Content given by the user: the validating webhook checks it.
			continue
		}
		spec, denial := r.lookUp(*o.name)
		if denial != nil {
			return denial
		}
		patch = append(patch, patchOperation{Op: "add", Path: o.path + "/gmsaCredentialSpec", Value: spec.Content})
	}
	if hasName && r.RandomHostname && req.Operation == admissionv1.Create && pod.Spec.Hostname == "" {
		patch = append(patch, patchOperation{Op: "add", Path: "/spec/hostname", Value: r.newHostname()})
	}
	if len(patch) == 0 {
		return allowed()
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return denied(http.StatusInternalServerError, ReasonInternalError, fmt.Sprintf("unable to encode the JSON patch: %v", err))
	}
	patchType := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: body, PatchType: &patchType}
}

func (r *Reviewer) validate(ctx context.Context, req *Request) *admissionv1.AdmissionResponse {
	pod, oldPod, denial := checkRequest(req)
	if denial != nil {
		return denial
	}
	switch req.Operation {
	case admissionv1.Create:
		return r.validateNew(ctx, req.Namespace, pod, pod.gmsaOptions())
	case admissionv1.Update:
		if req.SubResource == EphemeralContainersSubresource {
			added := addedEphemeralContainers(pod, oldPod)
			if denial := unchanged(pod, oldPod, added); denial != nil {
				return denial
			}
			return r.validateNew(ctx, req.Namespace, pod, added)
		}
		if denial := unchanged(pod, oldPod, nil); denial != nil {
			return denial
		}
		return allowed()
	default:
		return allowed()
	}
}

// validateNew checks gMSA options that are being created. The order
// matters: authorization comes before any look-up, so that a service
// account that may not use a credential spec learns nothing about it
// (neither whether it exists nor whether a guessed content matches).
func (r *Reviewer) validateNew(ctx context.Context, namespace string, pod *Pod, opts []gmsaOptions) *admissionv1.AdmissionResponse {
	var names []string
	for _, o := range opts {
		if o.name == nil {
			if o.content != nil {
				return denied(http.StatusUnprocessableEntity, ReasonUnnamed, fmt.Sprintf(
					"%s %q has a GMSA cred spec set, but does not define the name of the corresponding resource", o.kind, o.owner))
			}
			continue
		}
		if !slices.Contains(names, *o.name) {
			names = append(names, *o.name)
		}
	}
	if len(names) == 0 {
		return allowed()
	}

	sa := pod.serviceAccount()
	for _, name := range names {
		ok, reason, err := r.Authorizer.MayUse(ctx, namespace, sa, name)
		if err != nil {
			return denied(http.StatusInternalServerError, ReasonAuthorizationError, fmt.Sprintf(
				"unable to check whether service account %q may `use` GMSA cred spec %q: %v", sa, name, err))
		}
		if !ok {
			msg := fmt.Sprintf("service account %q is not authorized to `use` GMSA cred spec %q", sa, name)
			if reason != "" {
				msg += fmt.Sprintf(", reason: %q", reason)
			}
			return denied(http.StatusForbidden, ReasonUnauthorized, msg+r.unauthorizedHint(namespace, sa, name))
		}
	}

	for _, o := range opts {
		if o.name == nil || o.content == nil {
			continue
		}
		spec, denial := r.lookUp(*o.name)
		if denial != nil {
			return denial
		}
		if equal, err := SameJSON(*o.content, spec.Content); !equal {
			msg := fmt.Sprintf("the GMSA cred spec contents for %s %q does not match the contents of GMSA resource %q", o.kind, o.owner, *o.name)
			if err != nil {
				msg += ": " + err.Error()
			}
			return denied(http.StatusUnprocessableEntity, ReasonContentMismatch, msg)
		}
	}
	return allowed()
}

// lookUp finds a credential spec that must exist and have content.
func (r *Reviewer) lookUp(name string) (CredSpec, *admissionv1.AdmissionResponse) {
	spec, found, err := r.CredSpecs.CredSpec(name)
	switch {
	case err != nil:
		return CredSpec{}, denied(http.StatusInternalServerError, ReasonLookupError, fmt.Sprintf("unable to retrieve the contents of cred spec %s: %v", name, err))
	case !found:
		return CredSpec{}, denied(http.StatusNotFound, ReasonNotFound, fmt.Sprintf("cred spec %s does not exist", name)+r.notFoundHint(name))
	case spec.Content == "":
		return CredSpec{}, denied(http.StatusExpectationFailed, ReasonNoContent, fmt.Sprintf("cred spec %s does not have a credspec key", name))
	}
	return spec, nil
}

// notFoundHint is appended to "cred spec X does not exist": a credential
// spec whose name differs only in case is most likely the one meant (pod
// validation refuses upper case after mutation, so the user can never use
// the name as written).
func (r *Reviewer) notFoundHint(name string) string {
	similar, ok := r.CredSpecs.(SimilarNames)
	if !ok {
		return ""
	}
	if other, found := similar.SameNameIgnoringCase(name); found {
		return fmt.Sprintf("; did you mean %s (names are case-sensitive)", other)
	}
	return ""
}

// unauthorizedHint is appended to an authorization refusal. It names the
// GmsaAccount that generates the credential spec and what to add to it, or
// the credential spec that was probably meant, and never reveals content
// or which other service accounts may use it.
func (r *Reviewer) unauthorizedHint(namespace, serviceAccount, name string) string {
	spec, found, err := r.CredSpecs.CredSpec(name)
	switch {
	case err != nil:
		return ""
	case !found:
		return r.notFoundHint(name)
	case spec.Account != "":
		return fmt.Sprintf("; GmsaAccount %q generates this cred spec: add {namespace: %s, name: %s} to its spec.serviceAccounts", spec.Account, namespace, serviceAccount)
	default:
		return fmt.Sprintf("; no GmsaAccount generates this cred spec: add {namespace: %s, name: %s} to the spec.serviceAccounts of a GmsaAccount with spec.credentialSpec.existing.name %s", namespace, serviceAccount, name)
	}
}

func (r *Reviewer) newHostname() string {
	if r.NewHostname != nil {
		return r.NewHostname()
	}
	return RandomHostname()
}

// unchanged denies any difference in gMSA names or contents between pod and
// oldPod, ignoring the options in skip (ephemeral containers being added).
// Options are matched by owner: the pod, or a container of the same kind and
// name; options that disappear count as changed too.
func unchanged(pod, oldPod *Pod, skip []gmsaOptions) *admissionv1.AdmissionResponse {
	type key struct{ kind, owner string }
	before := map[key]gmsaOptions{}
	for _, o := range oldPod.gmsaOptions() {
		before[key{o.kind, o.owner}] = o
	}
	skipped := map[key]bool{}
	for _, o := range skip {
		skipped[key{o.kind, o.owner}] = true
	}
	check := func(now, then gmsaOptions) *admissionv1.AdmissionResponse {
		var modified []string
		if !equalPointers(now.name, then.name) {
			modified = append(modified, "name")
		}
		if !equalPointers(now.content, then.content) {
			modified = append(modified, "contents")
		}
		if len(modified) == 0 {
			return nil
		}
		return denied(http.StatusForbidden, ReasonImmutable, fmt.Sprintf("cannot update an existing pod's GMSA settings (GMSA %s modified on %s %q)",
			strings.Join(modified, " and "), now.kind, now.owner))
	}
	for _, o := range pod.gmsaOptions() {
		k := key{o.kind, o.owner}
		if skipped[k] {
			continue
		}
		then := before[k]
		delete(before, k)
		if denial := check(o, then); denial != nil {
			return denial
		}
	}
	for k, then := range before {
		if denial := check(gmsaOptions{kind: k.kind, owner: k.owner}, then); denial != nil {
			return denial
		}
	}
	return nil
}

// addedEphemeralContainers returns the gMSA options of the ephemeral
// containers of pod that oldPod does not have (by name: ephemeral
// containers can be neither renamed nor removed).
func addedEphemeralContainers(pod, oldPod *Pod) []gmsaOptions {
	existing := map[string]bool{}
	for _, c := range oldPod.Spec.EphemeralContainers {
		existing[c.Name] = true
	}
	var added []gmsaOptions
	for _, o := range pod.gmsaOptions() {
		if o.kind == ephemeralContainerKind && !existing[o.owner] {
			added = append(added, o)
		}
	}
	return added
}

// checkRequest checks that the request is about a Pod and, for CREATE and
// UPDATE, carries the pod (and, for an UPDATE, the old pod). For other
// operations both pods are nil.
func checkRequest(req *Request) (pod, oldPod *Pod, denial *admissionv1.AdmissionResponse) {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" {
		kind := req.Kind.Kind
		if req.Kind.Group != "" {
			kind += "." + req.Kind.Group
		}
		return nil, nil, denied(http.StatusBadRequest, ReasonBadRequest, fmt.Sprintf("expected a Pod object, got a %s", kind))
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return nil, nil, nil
	}
	if req.Object == nil {
		return nil, nil, denied(http.StatusBadRequest, ReasonBadRequest, "unable to decode the pod: "+errNoObject.Error())
	}
	oldPod = &Pod{}
	if req.Operation == admissionv1.Update {
		if req.OldObject == nil {
			return nil, nil, denied(http.StatusBadRequest, ReasonBadRequest, "unable to decode the old pod: "+errNoObject.Error())
		}
		oldPod = req.OldObject
	}
	return req.Object, oldPod, nil
}

// fromAdmissionRequest decodes the pods of an admissionv1 request into a
// Request.
func fromAdmissionRequest(req *admissionv1.AdmissionRequest) (*Request, *admissionv1.AdmissionResponse) {
	in := &Request{
		UID: req.UID, Kind: req.Kind, Name: req.Name, Namespace: req.Namespace,
		Operation: req.Operation, SubResource: req.SubResource,
	}
	in.UserInfo.Username = req.UserInfo.Username
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return in, nil // checkRequest answers without the objects
	}
	var err error
	if in.Object, err = decodePod(req.Object.Raw); err != nil {
		return nil, withUID(req.UID, denied(http.StatusBadRequest, ReasonBadRequest, fmt.Sprintf("unable to decode the pod: %v", err)))
	}
	if in.OldObject, err = decodePod(req.OldObject.Raw); err != nil {
		return nil, withUID(req.UID, denied(http.StatusBadRequest, ReasonBadRequest, fmt.Sprintf("unable to decode the old pod: %v", err)))
	}
	return in, nil
}

// SameJSON reports whether two JSON texts hold the same value, whatever
// their key order and whitespace. Identical texts are equal without
// parsing. err says why a text that is not valid JSON does not match.
func SameJSON(a, b string) (bool, error) {
	if a == b {
		return true, nil
	}
	ca, err := CanonicalJSON([]byte(a))
	if err != nil {
		return false, err
	}
	cb, err := CanonicalJSON([]byte(b))
	if err != nil {
		return false, err
	}
	return ca == cb, nil
}

// CanonicalJSON returns the compact form of a JSON text with the keys of
// every object sorted, so that two texts of the same value have the same
// canonical form. Numbers are compared as float64, as encoding/json reads
// them.
func CanonicalJSON(raw []byte) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("not valid JSON: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("re-encode JSON: %w", err)
	}
	return string(out), nil
}

// ContentField is the field of a GMSACredentialSpec that holds the
// credential spec.
const ContentField = "credspec"

// ContentOf returns a GMSACredentialSpec's credspec field (obj is the whole
// object) as the webhook inlines it, compact JSON with sorted keys, or ""
// when it has none. Webhook mode and Policy mode both publish this form.
func ContentOf(obj map[string]any) (string, error) {
	v, ok := obj[ContentField]
	if !ok || v == nil || v == "" {
		return "", nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode the credspec field: %w", err)
	}
	return CanonicalJSON(raw)
}

// RandomHostname returns 15 random lowercase hexadecimal characters: a
// valid DNS label and NetBIOS name.
func RandomHostname() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])[:15]
}

type patchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

func allowed() *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true}
}

func denied(code int32, reason, message string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed:          false,
		Result:           &metav1.Status{Status: metav1.StatusFailure, Message: message, Code: code},
		AuditAnnotations: map[string]string{DenialReasonKey: reason},
	}
}

// Denied returns a response that refuses a request with an HTTP-like code
// and a message, for callers (the HTTP layer) that reject a request before
// a Reviewer sees it.
func Denied(code int32, reason, message string) *admissionv1.AdmissionResponse {
	return denied(code, reason, message)
}

func withUID(uid types.UID, resp *admissionv1.AdmissionResponse) *admissionv1.AdmissionResponse {
	resp.UID = uid
	return resp
}

func equalPointers(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
