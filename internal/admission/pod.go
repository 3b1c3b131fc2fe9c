package admission

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"
)

// Kinds of owners of windowsOptions, as upstream names them in messages.
const (
	podKind                = "pod"
	containerKind          = "container"
	initContainerKind      = "initContainer"
	ephemeralContainerKind = "ephemeralContainer"
)

// Request is the part of an admission.k8s.io/v1 AdmissionRequest that gMSA
// admission reads, with the pods decoded. It decodes from the request's
// JSON in one pass (with sigs.k8s.io/json's case-sensitive rules), which is
// cheaper than an AdmissionRequest whose objects are then decoded again.
type Request struct {
	UID         types.UID               `json:"uid"`
	Kind        metav1.GroupVersionKind `json:"kind"`
	Name        string                  `json:"name"`
	Namespace   string                  `json:"namespace"`
	Operation   admissionv1.Operation   `json:"operation"`
	SubResource string                  `json:"subResource"`
	UserInfo    struct {
		Username string `json:"username"`
	} `json:"userInfo"`
	// Object and OldObject are nil when absent or null.
	Object    *Pod `json:"object"`
	OldObject *Pod `json:"oldObject"`
}

// Pod is the part of a corev1.Pod that gMSA admission reads. Decoding only
// these fields is several times cheaper than decoding a whole corev1.Pod.
type Pod struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName  string           `json:"serviceAccountName"`
		Hostname            string           `json:"hostname"`
		SecurityContext     *securityContext `json:"securityContext"`
		Containers          []containerView  `json:"containers"`
		InitContainers      []containerView  `json:"initContainers"`
		EphemeralContainers []containerView  `json:"ephemeralContainers"`
	} `json:"spec"`
}

type containerView struct {
	Name            string           `json:"name"`
	SecurityContext *securityContext `json:"securityContext"`
}

type securityContext struct {
	WindowsOptions *windowsOptions `json:"windowsOptions"`
}

// windowsOptions is the gMSA part of corev1.WindowsSecurityContextOptions
// (declared here to keep k8s.io/api/core/v1 out of the webhook binary's
// fuzzing build).
type windowsOptions struct {
	GMSACredentialSpecName *string `json:"gmsaCredentialSpecName"`
	GMSACredentialSpec     *string `json:"gmsaCredentialSpec"`
}

// gmsaOptions is one windowsOptions of a pod: the pod's own or a container's.
type gmsaOptions struct {
	kind    string  // podKind, containerKind, ...
	owner   string  // the pod's or the container's name
	path    string  // JSON pointer to the windowsOptions object
	name    *string // gmsaCredentialSpecName
	content *string // gmsaCredentialSpec
}

var errNoObject = errors.New("no object in the request")

// decodePod decodes the fields of a Pod that admission needs, with the API
// server's case-sensitive JSON rules; no object (or null) is a nil Pod.
func decodePod(raw []byte) (*Pod, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	pod := &Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		return nil, fmt.Errorf("not a Pod in JSON: %w", err)
	}
	return pod, nil
}

// serviceAccount is the service account the pod runs as.
func (p *Pod) serviceAccount() string {
	if p.Spec.ServiceAccountName == "" {
		return DefaultServiceAccount
	}
	return p.Spec.ServiceAccountName
}

// gmsaOptions lists every windowsOptions of the pod, in a fixed order: the
// pod's, then containers, init containers and ephemeral containers.
func (p *Pod) gmsaOptions() []gmsaOptions {
	var opts []gmsaOptions
	if sc := p.Spec.SecurityContext; sc != nil && sc.WindowsOptions != nil {
		opts = append(opts, newOptions(podKind, p.Metadata.Name, "/spec/securityContext/windowsOptions", sc.WindowsOptions))
	}
	for _, list := range []struct {
		kind, field string
		containers  []containerView
	}{
		{containerKind, "containers", p.Spec.Containers},
		{initContainerKind, "initContainers", p.Spec.InitContainers},
		{ephemeralContainerKind, "ephemeralContainers", p.Spec.EphemeralContainers},
	} {
		for i, c := range list.containers {
			if c.SecurityContext == nil || c.SecurityContext.WindowsOptions == nil {
				continue
			}
			path := "/spec/" + list.field + "/" + strconv.Itoa(i) + "/securityContext/windowsOptions"
			opts = append(opts, newOptions(list.kind, c.Name, path, c.SecurityContext.WindowsOptions))
		}
	}
	return opts
}

func newOptions(kind, owner, path string, w *windowsOptions) gmsaOptions {
	return gmsaOptions{kind: kind, owner: owner, path: path, name: w.GMSACredentialSpecName, content: w.GMSACredentialSpec}
}
