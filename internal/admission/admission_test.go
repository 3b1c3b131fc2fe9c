package admission_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
)

const (
	namespace = "team-a"
	uid       = types.UID("3b8e5c1a-0000-4000-8000-000000000001")
	// content is webapp1's credspec as the store returns it (canonical).
	content = `{"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":"WebApp1","Scope":"CONTOSO"}]},"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"contoso.com","NetBiosName":"CONTOSO"}}`
	// reordered is the same JSON value with other key order and whitespace.
	reordered = "{\n  \"DomainJoinConfig\": {\"NetBiosName\": \"CONTOSO\", \"DnsName\": \"contoso.com\"},\n  \"CmsPlugins\": [\"ActiveDirectory\"],\n  \"ActiveDirectoryConfig\": {\"GroupManagedServiceAccounts\": [{\"Scope\": \"CONTOSO\", \"Name\": \"WebApp1\"}]}\n}"
	other     = `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"fabrikam.com"}}`
)

// fakeCredSpecs is an in-memory credential spec store.
type fakeCredSpecs struct {
	specs map[string]admission.CredSpec
	err   error
}

// SameNameIgnoringCase makes fakeCredSpecs an admission.SimilarNames.
func (f *fakeCredSpecs) SameNameIgnoringCase(name string) (string, bool) {
	for other := range f.specs {
		if other != name && strings.EqualFold(other, name) {
			return other, true
		}
	}
	return "", false
}

func (f *fakeCredSpecs) CredSpec(name string) (admission.CredSpec, bool, error) {
	if f.err != nil {
		return admission.CredSpec{}, false, f.err
	}
	s, ok := f.specs[name]
	return s, ok, nil
}

// fakeAuthorizer allows exactly the "namespace/serviceaccount/credspec"
// triples it lists and records every question.
type fakeAuthorizer struct {
	allowed map[string]bool
	reason  string
	err     error
	asked   []string
}

func (f *fakeAuthorizer) MayUse(_ context.Context, ns, sa, name string) (bool, string, error) {
	key := ns + "/" + sa + "/" + name
	f.asked = append(f.asked, key)
	if f.err != nil {
		return false, "", f.err
	}
	if f.allowed[key] {
		return true, "", nil
	}
	return false, f.reason, nil
}

func store() *fakeCredSpecs {
	return &fakeCredSpecs{specs: map[string]admission.CredSpec{
		"webapp1": {Content: content},
		"webapp2": {Content: other},
		"empty":   {}, // a GMSACredentialSpec without a credspec field
	}}
}

func authorizer() *fakeAuthorizer {
	return &fakeAuthorizer{allowed: map[string]bool{
		namespace + "/default/webapp1": true,
		namespace + "/default/empty":   true,
		namespace + "/app/webapp1":     true,
		namespace + "/app/webapp2":     true,
	}}
}

func ptr(s string) *string { return &s }

// opts builds windowsOptions; "" leaves a field unset.
func opts(name, content string) *corev1.WindowsSecurityContextOptions {
	w := &corev1.WindowsSecurityContextOptions{}
	if name != "" {
		w.GMSACredentialSpecName = ptr(name)
	}
	if content != "" {
		w.GMSACredentialSpec = ptr(content)
	}
	return w
}

type podOption func(*corev1.Pod)

func newPod(options ...podOption) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: namespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "windows/nanoserver:ltsc2022"}}},
	}
	for _, o := range options {
		o(p)
	}
	return p
}

func serviceAccount(sa string) podOption {
	return func(p *corev1.Pod) { p.Spec.ServiceAccountName = sa }
}
func hostname(h string) podOption { return func(p *corev1.Pod) { p.Spec.Hostname = h } }

func podLevel(name, content string) podOption {
	return func(p *corev1.Pod) {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: opts(name, content)}
	}
}

// container appends a container, with windowsOptions unless name and
// content are both empty.
func container(cname, name, content string) podOption {
	return func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, newContainer(cname, name, content)) }
}

func initContainer(cname, name, content string) podOption {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, newContainer(cname, name, content))
	}
}

func ephemeral(cname, name, content string) podOption {
	return func(p *corev1.Pod) {
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers,
			corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon(newContainer(cname, name, content))})
	}
}

func newContainer(cname, name, content string) corev1.Container {
	c := corev1.Container{Name: cname, Image: "busybox"}
	if name != "" || content != "" {
		c.SecurityContext = &corev1.SecurityContext{WindowsOptions: opts(name, content)}
	}
	return c
}

func raw(t *testing.T, obj *corev1.Pod) runtime.RawExtension {
	t.Helper()
	if obj == nil {
		return runtime.RawExtension{}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

func create(t *testing.T, pod *corev1.Pod) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID:       uid,
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: namespace,
		Operation: admissionv1.Create,
		Object:    raw(t, pod),
	}
}

func update(t *testing.T, oldPod, pod *corev1.Pod) *admissionv1.AdmissionRequest {
	r := create(t, pod)
	r.Operation = admissionv1.Update
	r.OldObject = raw(t, oldPod)
	return r
}

func ephemeralUpdate(t *testing.T, oldPod, pod *corev1.Pod) *admissionv1.AdmissionRequest {
	r := update(t, oldPod, pod)
	r.SubResource = admission.EphemeralContainersSubresource
	return r
}

// viaWire decodes req from its JSON into a Request in one pass, as the
// webhook's HTTP handler does.
func viaWire(t *testing.T, req *admissionv1.AdmissionRequest) *admission.Request {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	in := &admission.Request{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, in); err != nil {
		t.Fatalf("decode the request from JSON: %v", err)
	}
	return in
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// want is the expected answer: allowed with exactly these patch operations,
// or denied with this code and message.
type want struct {
	allowed bool
	patch   []patchOp
	code    int32
	message string
}

func allow(patch ...patchOp) want { return want{allowed: true, patch: patch} }
func deny(code int32, message string) want {
	return want{code: code, message: message}
}

func add(path, value string) patchOp { return patchOp{Op: "add", Path: path, Value: value} }

func check(t *testing.T, got *admissionv1.AdmissionResponse, w want) {
	t.Helper()
	if got.UID != uid {
		t.Errorf("UID = %q, want the request's %q", got.UID, uid)
	}
	if got.Allowed != w.allowed {
		t.Fatalf("Allowed = %v, want %v (result: %+v)", got.Allowed, w.allowed, got.Result)
	}
	if !w.allowed {
		if got.Result == nil {
			t.Fatal("denied without a Result")
		}
		// The upstream webhook's message is kept as a prefix; a hint may
		// follow after "; " (TestDenialHints checks the hints).
		hint, prefixed := strings.CutPrefix(got.Result.Message, w.message)
		if got.Result.Code != w.code || !prefixed || (hint != "" && !strings.HasPrefix(hint, "; ")) {
			t.Errorf("denied with %d %q\n want %d %q", got.Result.Code, got.Result.Message, w.code, w.message)
		}
		if admission.DenialReason(got) == "" {
			t.Errorf("denial without a reason in audit annotation %s: %v", admission.DenialReasonKey, got.AuditAnnotations)
		}
		if got.Patch != nil {
			t.Errorf("denial carries a patch: %s", got.Patch)
		}
		return
	}
	if len(w.patch) == 0 {
		if got.Patch != nil || got.PatchType != nil {
			t.Errorf("patch = %s, want none", got.Patch)
		}
		return
	}
	if got.PatchType == nil || *got.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Errorf("PatchType = %v, want JSONPatch", got.PatchType)
	}
	var ops []patchOp
	if err := json.Unmarshal(got.Patch, &ops); err != nil {
		t.Fatalf("patch is not a JSON patch: %v: %s", err, got.Patch)
	}
	if fmt.Sprint(ops) != fmt.Sprint(w.patch) {
		t.Errorf("patch = %+v\n want %+v", ops, w.patch)
	}
}

const (
	podPatch = "/spec/securityContext/windowsOptions/gmsaCredentialSpec"
	msgSA    = "service account %q is not authorized to `use` GMSA cred spec %q"
)

type request func(t *testing.T) *admissionv1.AdmissionRequest

type mutateCase struct {
	name           string
	req            request
	store          *fakeCredSpecs
	randomHostname bool
	want           want
}

func TestMutate(t *testing.T) {
	for _, tc := range []mutateCase{{
		name: "pod without gMSA fields is allowed unchanged",
		req:  func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod()) },
		want: allow(),
	}, {
		name: "windowsOptions without gMSA fields is allowed unchanged",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(func(p *corev1.Pod) {
				p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{RunAsUserName: ptr("ContainerUser")}}
			}))
		},
		want: allow(),
	}, {
		name: "pod-level name is expanded into the credspec content",
		req:  func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("webapp1", ""))) },
		want: allow(add(podPatch, content)),
	}, {
		name: "container and init container names are expanded at their own index",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(container("sidecar", "webapp2", ""), initContainer("setup", "", ""), initContainer("init", "webapp1", "")))
		},
		want: allow(
			add("/spec/containers/1/securityContext/windowsOptions/gmsaCredentialSpec", other),
			add("/spec/initContainers/1/securityContext/windowsOptions/gmsaCredentialSpec", content),
		),
	}, {
		name: "pod level and every container in one patch, in order",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("webapp1", ""), container("c1", "webapp1", ""), initContainer("i0", "webapp2", "")))
		},
		want: allow(
			add(podPatch, content),
			add("/spec/containers/1/securityContext/windowsOptions/gmsaCredentialSpec", content),
			add("/spec/initContainers/0/securityContext/windowsOptions/gmsaCredentialSpec", other),
		),
	}, {
		name: "content given by the user is left for validation",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("webapp1", other), container("c1", "webapp2", "")))
		},
		want: allow(add("/spec/containers/1/securityContext/windowsOptions/gmsaCredentialSpec", other)),
	}, {
		name: "content without a name is left for validation",
		req:  func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("", content))) },
		want: allow(),
	}, {
		name: "missing credspec is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(container("c1", "nope", "")))
		},
		want: deny(http.StatusNotFound, "cred spec nope does not exist"),
	}, {
		name: "credspec without content is denied",
		req:  func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("empty", ""))) },
		want: deny(http.StatusExpectationFailed, "cred spec empty does not have a credspec key"),
	}, {
		name:  "store failure is denied, not mistaken for a missing credspec",
		req:   func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("webapp1", ""))) },
		store: &fakeCredSpecs{err: errors.New("credspec cache not synced yet")},
		want:  deny(http.StatusInternalServerError, "unable to retrieve the contents of cred spec webapp1: credspec cache not synced yet"),
	}, {
		name:           "RANDOM_HOSTNAME gives a gMSA pod without hostname a random one",
		req:            func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("webapp1", ""))) },
		randomHostname: true,
		want:           allow(add(podPatch, content), add("/spec/hostname", "0123456789abcde")),
	}, {
		name: "RANDOM_HOSTNAME applies to a gMSA pod whose content is already set",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(container("c1", "webapp1", content)))
		},
		randomHostname: true,
		want:           allow(add("/spec/hostname", "0123456789abcde")),
	}, {
		name: "RANDOM_HOSTNAME keeps a hostname the user set",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("webapp1", ""), hostname("web-0")))
		},
		randomHostname: true,
		want:           allow(add(podPatch, content)),
	}, {
		name:           "RANDOM_HOSTNAME leaves pods without gMSA alone",
		req:            func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod()) },
		randomHostname: true,
		want:           allow(),
	}, {
		name: "pod UPDATE is never mutated",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return update(t, newPod(podLevel("webapp1", "")), newPod(podLevel("webapp1", "")))
		},
		randomHostname: true,
		want:           allow(),
	}, {
		name: "ephemeral container added with a name is expanded at its index",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			before := newPod(podLevel("webapp1", content), ephemeral("debug-1", "webapp1", content))
			after := newPod(podLevel("webapp1", content), ephemeral("debug-1", "webapp1", content), ephemeral("debug-2", "webapp2", ""))
			return ephemeralUpdate(t, before, after)
		},
		randomHostname: true,
		want:           allow(add("/spec/ephemeralContainers/1/securityContext/windowsOptions/gmsaCredentialSpec", other)),
	}, {
		name: "existing ephemeral containers are not expanded again",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			before := newPod(ephemeral("debug-1", "webapp1", ""))
			after := newPod(ephemeral("debug-1", "webapp1", ""), ephemeral("debug-2", "", ""))
			return ephemeralUpdate(t, before, after)
		},
		want: allow(),
	}, {
		name: "ephemeral container added with a missing credspec is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return ephemeralUpdate(t, newPod(), newPod(ephemeral("debug", "nope", "")))
		},
		want: deny(http.StatusNotFound, "cred spec nope does not exist"),
	}, {
		name: "DELETE is allowed",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			r := create(t, nil)
			r.Operation = admissionv1.Delete
			r.OldObject = raw(t, newPod(podLevel("nope", "")))
			return r
		},
		want: allow(),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			specs := tc.store
			if specs == nil {
				specs = store()
			}
			r := &admission.Reviewer{
				CredSpecs:      specs,
				Authorizer:     &fakeAuthorizer{err: errors.New("mutate must not authorize")},
				RandomHostname: tc.randomHostname,
				NewHostname:    func() string { return "0123456789abcde" },
			}
			check(t, r.Mutate(context.Background(), tc.req(t)), tc.want)
			check(t, r.MutateRequest(context.Background(), viaWire(t, tc.req(t))), tc.want)
		})
	}
}

type validateCase struct {
	name  string
	req   request
	store *fakeCredSpecs
	authz *fakeAuthorizer
	want  want
	// asked is every authorization question expected, in order
	// ("namespace/serviceaccount/credspec"); nil means none.
	asked []string
}

func updateMsg(fields, kind, owner string) string {
	return fmt.Sprintf("cannot update an existing pod's GMSA settings (GMSA %s modified on %s %q)", fields, kind, owner)
}

func TestValidate(t *testing.T) {
	webapp1 := namespace + "/default/webapp1"
	for _, tc := range []validateCase{{
		name: "pod without gMSA fields is allowed without any authorization check",
		req:  func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(container("c1", "", ""))) },
		want: allow(),
	}, {
		name: "name with matching content, authorized",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("webapp1", content)))
		},
		want:  allow(),
		asked: []string{webapp1},
	}, {
		name: "the pod's own service account is checked",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(serviceAccount("app"), container("c1", "webapp2", other)))
		},
		want:  allow(),
		asked: []string{namespace + "/app/webapp2"},
	}, {
		name: "unauthorized service account is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(serviceAccount("app"), podLevel("empty", "")))
		},
		want:  deny(http.StatusForbidden, fmt.Sprintf(msgSA, "app", "empty")),
		asked: []string{namespace + "/app/empty"},
	}, {
		name: "an empty serviceAccountName means default, in the check and the message",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(initContainer("i", "webapp2", other)))
		},
		want:  deny(http.StatusForbidden, fmt.Sprintf(msgSA, "default", "webapp2")),
		asked: []string{namespace + "/default/webapp2"},
	}, {
		name:  "the authorizer's reason is quoted in the denial",
		req:   func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("webapp2", ""))) },
		authz: &fakeAuthorizer{reason: "no RBAC policy matched"},
		want:  deny(http.StatusForbidden, fmt.Sprintf(msgSA, "default", "webapp2")+`, reason: "no RBAC policy matched"`),
		asked: []string{namespace + "/default/webapp2"},
	}, {
		name:  "a failed authorization check denies",
		req:   func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("webapp1", ""))) },
		authz: &fakeAuthorizer{err: errors.New("connection refused")},
		want:  deny(http.StatusInternalServerError, "unable to check whether service account \"default\" may `use` GMSA cred spec \"webapp1\": connection refused"),
		asked: []string{webapp1},
	}, {
		name: "content with other key order and whitespace is allowed",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(container("c1", "webapp1", reordered)))
		},
		want:  allow(),
		asked: []string{webapp1},
	}, {
		name: "content that does not match the credspec is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(container("c1", "webapp1", other)))
		},
		want: deny(http.StatusUnprocessableEntity,
			`the GMSA cred spec contents for container "c1" does not match the contents of GMSA resource "webapp1"`),
		asked: []string{webapp1},
	}, {
		name: "pod-level mismatch names the pod",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("webapp1", `{"a":1}`)))
		},
		want: deny(http.StatusUnprocessableEntity,
			`the GMSA cred spec contents for pod "web" does not match the contents of GMSA resource "webapp1"`),
		asked: []string{webapp1},
	}, {
		name: "content that is not JSON is denied, saying so",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(initContainer("i", "webapp1", "{nope")))
		},
		want: deny(http.StatusUnprocessableEntity,
			`the GMSA cred spec contents for initContainer "i" does not match the contents of GMSA resource "webapp1": `+
				`not valid JSON: invalid character 'n' looking for beginning of object key string`),
		asked: []string{webapp1},
	}, {
		name: "content without a name is denied before any authorization check",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("webapp1", ""), container("c1", "", content)))
		},
		want: deny(http.StatusUnprocessableEntity,
			`container "c1" has a GMSA cred spec set, but does not define the name of the corresponding resource`),
	}, {
		name: "pod-level content without a name is denied",
		req:  func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("", content))) },
		want: deny(http.StatusUnprocessableEntity,
			`pod "web" has a GMSA cred spec set, but does not define the name of the corresponding resource`),
	}, {
		name: "content for a missing credspec is denied once authorized",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("gone", content)))
		},
		authz: &fakeAuthorizer{allowed: map[string]bool{namespace + "/default/gone": true}},
		want:  deny(http.StatusNotFound, "cred spec gone does not exist"),
		asked: []string{namespace + "/default/gone"},
	}, {
		name: "an unauthorized service account learns nothing about the credspec",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("gone", content)))
		},
		want:  deny(http.StatusForbidden, fmt.Sprintf(msgSA, "default", "gone")),
		asked: []string{namespace + "/default/gone"},
	}, {
		name: "a name used several times is authorized once; every name is authorized",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(serviceAccount("app"), podLevel("webapp1", content), container("c1", "webapp1", content),
				initContainer("i", "webapp2", other), container("c2", "webapp1", reordered)))
		},
		want:  allow(),
		asked: []string{namespace + "/app/webapp1", namespace + "/app/webapp2"},
	}, {
		name: "a second, unauthorized name denies the pod",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, newPod(podLevel("webapp1", content), container("c1", "webapp2", other)))
		},
		want:  deny(http.StatusForbidden, fmt.Sprintf(msgSA, "default", "webapp2")),
		asked: []string{webapp1, namespace + "/default/webapp2"},
	}, {
		name:  "a name without content (mutation skipped) only needs authorization, as upstream",
		req:   func(t *testing.T) *admissionv1.AdmissionRequest { return create(t, newPod(podLevel("webapp1", ""))) },
		want:  allow(),
		asked: []string{webapp1},
	}, {
		name: "UPDATE that keeps every gMSA field is allowed without authorization",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			before := newPod(podLevel("webapp1", content), container("c1", "webapp1", content))
			after := newPod(podLevel("webapp1", content), container("c1", "webapp1", content), func(p *corev1.Pod) {
				p.Labels = map[string]string{"tier": "web"}
				p.Spec.Containers[0].Image = "windows/nanoserver:ltsc2025"
			})
			return update(t, before, after)
		},
		authz: &fakeAuthorizer{},
		want:  allow(),
	}, {
		name: "UPDATE changing a name is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return update(t, newPod(container("c1", "webapp1", content)), newPod(container("c1", "webapp2", content)))
		},
		want: deny(http.StatusForbidden, updateMsg("name", "container", "c1")),
	}, {
		name: "UPDATE changing content, even to equal JSON, is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return update(t, newPod(podLevel("webapp1", content)), newPod(podLevel("webapp1", reordered)))
		},
		want: deny(http.StatusForbidden, updateMsg("contents", "pod", "web")),
	}, {
		name: "UPDATE changing both is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return update(t, newPod(initContainer("i", "webapp1", content)), newPod(initContainer("i", "webapp2", other)))
		},
		want: deny(http.StatusForbidden, updateMsg("name and contents", "initContainer", "i")),
	}, {
		name: "UPDATE adding gMSA fields is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return update(t, newPod(), newPod(podLevel("webapp1", "")))
		},
		want: deny(http.StatusForbidden, updateMsg("name", "pod", "web")),
	}, {
		name: "UPDATE removing windowsOptions is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return update(t, newPod(container("c1", "webapp1", content)), newPod(container("c1", "", "")))
		},
		want: deny(http.StatusForbidden, updateMsg("name and contents", "container", "c1")),
	}, {
		name: "ephemeral container added with a name and its content is authorized and allowed",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			before := newPod(serviceAccount("app"), podLevel("webapp2", other), ephemeral("debug-1", "webapp2", other))
			after := newPod(serviceAccount("app"), podLevel("webapp2", other), ephemeral("debug-1", "webapp2", other), ephemeral("debug-2", "webapp1", content))
			return ephemeralUpdate(t, before, after)
		},
		want:  allow(),
		asked: []string{namespace + "/app/webapp1"},
	}, {
		name: "ephemeral container added by an unauthorized service account is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return ephemeralUpdate(t, newPod(), newPod(ephemeral("debug", "webapp2", other)))
		},
		want:  deny(http.StatusForbidden, fmt.Sprintf(msgSA, "default", "webapp2")),
		asked: []string{namespace + "/default/webapp2"},
	}, {
		name: "ephemeral container added with foreign content is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return ephemeralUpdate(t, newPod(), newPod(ephemeral("debug", "webapp1", other)))
		},
		want: deny(http.StatusUnprocessableEntity,
			`the GMSA cred spec contents for ephemeralContainer "debug" does not match the contents of GMSA resource "webapp1"`),
		asked: []string{webapp1},
	}, {
		name: "ephemeral container added with content and no name is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return ephemeralUpdate(t, newPod(), newPod(ephemeral("debug", "", content)))
		},
		want: deny(http.StatusUnprocessableEntity,
			`ephemeralContainer "debug" has a GMSA cred spec set, but does not define the name of the corresponding resource`),
	}, {
		name: "changing an existing ephemeral container's gMSA fields is denied",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return ephemeralUpdate(t, newPod(ephemeral("debug", "webapp1", content)), newPod(ephemeral("debug", "webapp1", other)))
		},
		want: deny(http.StatusForbidden, updateMsg("contents", "ephemeralContainer", "debug")),
	}, {
		name: "the ephemeralcontainers subresource may not change pod-level fields either",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return ephemeralUpdate(t, newPod(podLevel("webapp1", content)), newPod(ephemeral("debug", "", "")))
		},
		want: deny(http.StatusForbidden, updateMsg("name and contents", "pod", "web")),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			specs, authz := tc.store, tc.authz
			if specs == nil {
				specs = store()
			}
			if authz == nil {
				authz = authorizer()
			}
			r := &admission.Reviewer{CredSpecs: specs, Authorizer: authz}
			check(t, r.Validate(context.Background(), tc.req(t)), tc.want)
			if fmt.Sprint(authz.asked) != fmt.Sprint(tc.asked) {
				t.Errorf("authorization checks = %q, want %q", authz.asked, tc.asked)
			}
			authz.asked = nil
			check(t, r.ValidateRequest(context.Background(), viaWire(t, tc.req(t))), tc.want)
			if fmt.Sprint(authz.asked) != fmt.Sprint(tc.asked) {
				t.Errorf("wire path: authorization checks = %q, want %q", authz.asked, tc.asked)
			}
		})
	}
}

// TestMalformedRequests covers requests that are not about a decodable Pod:
// both webhooks deny them with 400 and a message saying what is wrong.
func TestMalformedRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     request
		message string
	}{{
		name: "not a Pod",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			r := create(t, newPod())
			r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
			return r
		},
		message: "expected a Pod object, got a Deployment.apps",
	}, {
		name: "core kind other than Pod",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			r := create(t, newPod())
			r.Kind = metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
			return r
		},
		message: "expected a Pod object, got a ConfigMap",
	}, {
		name: "no object",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return create(t, nil)
		},
		message: "unable to decode the pod: no object in the request",
	}, {
		name: "not a Pod, with an object that is no pod either",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			r := create(t, nil)
			r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
			r.Object.Raw = []byte(`{"spec":{"containers":7}}`)
			return r
		},
		message: "expected a Pod object, got a Deployment.apps",
	}, {
		name: "null object",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			r := create(t, nil)
			r.Object.Raw = []byte(" null ")
			return r
		},
		message: "unable to decode the pod: no object in the request",
	}, {
		name: "object is not a pod",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			r := create(t, nil)
			r.Object.Raw = []byte(`{"spec":{"containers":"nope"}}`)
			return r
		},
		message: "unable to decode the pod: not a Pod in JSON: json: cannot unmarshal string into Go struct field .spec.containers of type []admission.containerView",
	}, {
		name: "UPDATE without the old object",
		req: func(t *testing.T) *admissionv1.AdmissionRequest {
			return update(t, nil, newPod())
		},
		message: "unable to decode the old pod: no object in the request",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &admission.Reviewer{CredSpecs: store(), Authorizer: authorizer()}
			check(t, r.Mutate(context.Background(), tc.req(t)), deny(http.StatusBadRequest, tc.message))
			check(t, r.Validate(context.Background(), tc.req(t)), deny(http.StatusBadRequest, tc.message))
		})
	}
}

func TestSameJSON(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
		err  bool
	}{
		{content, content, true, false},
		{content, reordered, true, false},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false, false}, // array order matters
		{`{"a":1}`, `{"a":1.0}`, true, false},        // numbers compare as numbers
		{`{"a":"1"}`, `{"a":1}`, false, false},
		{`{"a":1} `, `{"a":1}x`, false, true},
		{`nope`, content, false, true},
	} {
		got, err := admission.SameJSON(tc.a, tc.b)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("SameJSON(%s, %s) = %v, %v; want %v, error %v", tc.a, tc.b, got, err, tc.want, tc.err)
		}
	}
}

func TestCanonicalJSONSortsKeysAndCompacts(t *testing.T) {
	got, err := admission.CanonicalJSON([]byte(reordered))
	if err != nil {
		t.Fatal(err)
	}
	if got != content {
		t.Errorf("CanonicalJSON = %s\n want %s", got, content)
	}
}

func TestRandomHostnameIsANetBIOSSizedDNSLabel(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		h := admission.RandomHostname()
		if len(h) != 15 {
			t.Fatalf("hostname %q has %d characters, want 15", h, len(h))
		}
		for _, c := range h {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				t.Fatalf("hostname %q has character %q", h, c)
			}
		}
		seen[h] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct hostnames out of 100", len(seen))
	}
}

// TestDenialHints covers what denials append to the upstream webhook's
// message: the credential spec meant by a name that differs only in case,
// and, for a refused service account, the GmsaAccount to add it to. Hints
// never carry content or other service accounts' names.
func TestDenialHints(t *testing.T) {
	specs := &fakeCredSpecs{specs: map[string]admission.CredSpec{
		"webapp1":  {Content: content, Account: "webapp1-account"},
		"handmade": {Content: other}, // made by hand, no GmsaAccount
	}}
	authz := &fakeAuthorizer{allowed: map[string]bool{namespace + "/app/webapp1": true}}
	r := &admission.Reviewer{CredSpecs: specs, Authorizer: authz}
	for _, tc := range []struct {
		name     string
		validate bool
		pod      *corev1.Pod
		code     int32
		reason   string
		message  string
	}{{
		name: "mutate: a name that differs only in case",
		pod:  newPod(podLevel("WebApp1", "")),
		code: http.StatusNotFound, reason: admission.ReasonNotFound,
		message: "cred spec WebApp1 does not exist; did you mean webapp1 (names are case-sensitive)",
	}, {
		name: "mutate: an unknown name gets no hint",
		pod:  newPod(container("web", "webapp9", "")),
		code: http.StatusNotFound, reason: admission.ReasonNotFound,
		message: "cred spec webapp9 does not exist",
	}, {
		name: "validate: a refused service account is told which GmsaAccount to join", validate: true,
		pod:  newPod(podLevel("webapp1", content)),
		code: http.StatusForbidden, reason: admission.ReasonUnauthorized,
		message: "service account \"default\" is not authorized to `use` GMSA cred spec \"webapp1\"; " +
			"GmsaAccount \"webapp1-account\" generates this cred spec: add {namespace: team-a, name: default} to its spec.serviceAccounts",
	}, {
		name: "validate: a cred spec made by hand points at spec.credentialSpec.existing", validate: true,
		pod:  newPod(podLevel("handmade", other)),
		code: http.StatusForbidden, reason: admission.ReasonUnauthorized,
		message: "service account \"default\" is not authorized to `use` GMSA cred spec \"handmade\"; " +
			"no GmsaAccount generates this cred spec: add {namespace: team-a, name: default} to the spec.serviceAccounts of a GmsaAccount with spec.credentialSpec.existing.name handmade",
	}, {
		name: "validate: content given under a name in the wrong case", validate: true,
		pod:  newPod(podLevel("WEBAPP1", content)),
		code: http.StatusForbidden, reason: admission.ReasonUnauthorized,
		message: "service account \"default\" is not authorized to `use` GMSA cred spec \"WEBAPP1\"; did you mean webapp1 (names are case-sensitive)",
	}, {
		name: "validate: content mismatch keeps upstream's message", validate: true,
		pod: func() *corev1.Pod {
			p := newPod(podLevel("webapp1", other))
			p.Spec.ServiceAccountName = "app"
			return p
		}(),
		code: http.StatusUnprocessableEntity, reason: admission.ReasonContentMismatch,
		message: "the GMSA cred spec contents for pod \"web\" does not match the contents of GMSA resource \"webapp1\"",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var got *admissionv1.AdmissionResponse
			if tc.validate {
				got = r.Validate(context.Background(), create(t, tc.pod))
			} else {
				got = r.Mutate(context.Background(), create(t, tc.pod))
			}
			if got.Allowed || got.Result == nil {
				t.Fatalf("allowed, want a denial: %+v", got)
			}
			if got.Result.Code != tc.code || got.Result.Message != tc.message {
				t.Errorf("denied with %d %q\n want %d %q", got.Result.Code, got.Result.Message, tc.code, tc.message)
			}
			if reason := admission.DenialReason(got); reason != tc.reason {
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
			if strings.Contains(got.Result.Message, "CONTOSO") || strings.Contains(got.Result.Message, "fabrikam") || strings.Contains(got.Result.Message, `"app"`) {
				t.Errorf("the message reveals content or another service account: %q", got.Result.Message)
			}
		})
	}
}
