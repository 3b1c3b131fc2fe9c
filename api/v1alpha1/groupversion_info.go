// Package v1alpha1 contains the gmsa.io/v1alpha1 API: GmsaStack, the gMSA
// admission stack of a cluster, and GmsaAccount, one Group Managed Service
// Account and the service accounts that may use it.
//
// +kubebuilder:object:generate=true
// +groupName=gmsa.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "gmsa.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
