package doctor

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/manifest"
)

// Target is what the doctor examines: a pod (running or not yet applied), or
// a service account and the credspec names it would use.
type Target struct {
	// Source says where the target came from: "pod", "manifest" or
	// "service account".
	Source string `json:"source"`
	// Namespace is the pod's (or the service account's) namespace: the one
	// admission asks about.
	Namespace string `json:"namespace"`
	// ServiceAccount the pod runs as ("default" when the pod names none).
	ServiceAccount string `json:"serviceAccount"`
	// Pod is the pod's name; empty for a service account.
	Pod string `json:"pod,omitempty"`
	// Running is true for a pod in phase Running.
	Running bool `json:"running,omitempty"`
	// Uses are the gMSA settings of the pod, one per holder (the pod or a
	// container) that names a credspec or carries content.
	Uses []Use `json:"uses"`

	// spec is the pod's spec, nil for a service account.
	spec *corev1.PodSpec
}

// Use is one gMSA setting: a credspec name and, when the user gave it, the
// content.
type Use struct {
	// Holder is "pod" or "container <name>" (init and ephemeral containers
	// likewise).
	Holder string `json:"holder"`
	// Container is the container the setting applies to; for the pod-level
	// setting, the pod's first container.
	Container string `json:"container,omitempty"`
	// CredSpec is gmsaCredentialSpecName; empty when only content is given.
	CredSpec string `json:"credSpec,omitempty"`
	// Content is gmsaCredentialSpec, never printed.
	Content *string `json:"-"`
}

// Names returns the distinct credspec names of the target, in order.
func (t Target) Names() []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range t.Uses {
		if u.CredSpec != "" && !seen[u.CredSpec] {
			seen[u.CredSpec] = true
			out = append(out, u.CredSpec)
		}
	}
	return out
}

// ForPod returns the target of a pod. The pod's namespace must be set.
func ForPod(pod *corev1.Pod, source string) Target {
	t := Target{Source: source, Namespace: pod.Namespace, Pod: pod.Name, Running: pod.Status.Phase == corev1.PodRunning, spec: &pod.Spec}
	t.ServiceAccount = pod.Spec.ServiceAccountName
	if t.ServiceAccount == "" {
		t.ServiceAccount = admission.DefaultServiceAccount
	}
	first := ""
	if len(pod.Spec.Containers) > 0 {
		first = pod.Spec.Containers[0].Name
	}
	add := func(holder, container string, sc *corev1.WindowsSecurityContextOptions) {
		if sc == nil || (sc.GMSACredentialSpecName == nil && sc.GMSACredentialSpec == nil) {
			return
		}
		u := Use{Holder: holder, Container: container, Content: sc.GMSACredentialSpec}
		if sc.GMSACredentialSpecName != nil {
			u.CredSpec = *sc.GMSACredentialSpecName
		}
		t.Uses = append(t.Uses, u)
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		add("pod", first, sc.WindowsOptions)
	}
	for _, c := range pod.Spec.Containers {
		if c.SecurityContext != nil {
			add("container "+c.Name, c.Name, c.SecurityContext.WindowsOptions)
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.SecurityContext != nil {
			add("init container "+c.Name, c.Name, c.SecurityContext.WindowsOptions)
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.SecurityContext != nil {
			add("ephemeral container "+c.Name, c.Name, c.SecurityContext.WindowsOptions)
		}
	}
	return t
}

// ForServiceAccount returns the target of a service account that would run
// pods naming the given credspecs at pod level.
func ForServiceAccount(namespace, name string, credSpecs []string) Target {
	t := Target{Source: "service account", Namespace: namespace, ServiceAccount: name}
	for _, n := range credSpecs {
		t.Uses = append(t.Uses, Use{Holder: "pod", CredSpec: n})
	}
	return t
}

// ForManifest returns the target of the first object of a YAML or JSON
// manifest: a Pod, or a workload with a pod template (Deployment,
// StatefulSet, DaemonSet, ReplicaSet, Job, CronJob). defaultNamespace
// applies when the manifest names none.
func ForManifest(data []byte, defaultNamespace string) (Target, error) {
	objs, err := manifest.Decode(string(data))
	if err != nil {
		return Target{}, err
	}
	if len(objs) == 0 {
		return Target{}, fmt.Errorf("the manifest holds no object")
	}
	obj := objs[0]
	pod := &corev1.Pod{}
	var podObj map[string]any
	switch obj.GetKind() {
	case "Pod":
		podObj = obj.Object
	case "CronJob":
		tmpl, _, _ := unstructured.NestedMap(obj.Object, "spec", "jobTemplate", "spec", "template")
		podObj = tmpl
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController", "PodTemplate":
		path := []string{"spec", "template"}
		if obj.GetKind() == "PodTemplate" {
			path = []string{"template"}
		}
		tmpl, _, _ := unstructured.NestedMap(obj.Object, path...)
		podObj = tmpl
	default:
		return Target{}, fmt.Errorf("%s %q is not a Pod or a workload with a pod template", obj.GetKind(), obj.GetName())
	}
	if podObj == nil {
		return Target{}, fmt.Errorf("%s %q has no pod template", obj.GetKind(), obj.GetName())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(podObj, pod); err != nil {
		return Target{}, fmt.Errorf("read the pod of %s %q: %w", obj.GetKind(), obj.GetName(), err)
	}
	pod.Namespace = obj.GetNamespace()
	if pod.Namespace == "" {
		pod.Namespace = defaultNamespace
	}
	if pod.Name == "" {
		pod.Name = obj.GetName()
	}
	pod.Status = corev1.PodStatus{} // a manifest is not running
	t := ForPod(pod, "manifest")
	if k := obj.GetKind(); k != "Pod" {
		t.Pod = strings.ToLower(k) + "/" + obj.GetName()
	}
	return t, nil
}
