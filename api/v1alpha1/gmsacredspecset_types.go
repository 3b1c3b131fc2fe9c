package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GmsaCredSpecSet is what a GmsaStack in Policy mode publishes for the API
// server's admission policies, in the stack's namespace: every credspec
// name (the index) or the contents of some credspecs (a shard), as the
// webhook would inline them. Only the operator writes them. They are a
// kind of the operator's own, not ConfigMaps, so that no namespace admin
// can edit them (the aggregated admin and edit roles grant ConfigMaps), and
// because kube-apiserver cannot restart its informer of a built-in
// parameter kind once every policy using that kind was removed.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,categories=gmsa
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GmsaCredSpecSet struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// data maps a credspec name to "1" (it has content) or "0" (it has
	// none) in the index, or to its content, compact JSON, in a shard.
	// +optional
	Data map[string]string `json:"data,omitempty"`
}

// GmsaCredSpecSetList is a list of GmsaCredSpecSets.
//
// +kubebuilder:object:root=true
type GmsaCredSpecSetList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the GmsaCredSpecSets.
	Items []GmsaCredSpecSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GmsaCredSpecSet{}, &GmsaCredSpecSetList{})
}
