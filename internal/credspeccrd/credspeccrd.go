// Package credspeccrd holds the GMSACredentialSpec CRD
// (gmsacredentialspecs.windows.k8s.io) that the operator installs and
// upgrades, embedded in the binary.
package credspeccrd

import (
	_ "embed"
	"fmt"
	"strconv"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Name is the CRD's object name.
const Name = "gmsacredentialspecs.windows.k8s.io"

// Group, Kind and Resource of the credspecs the CRD defines.
const (
	Group    = "windows.k8s.io"
	Kind     = "GMSACredentialSpec"
	Resource = "gmsacredentialspecs"
)

// RevisionAnnotation carries the revision of the CRD this operator ships, so
// that an older revision in a cluster is upgraded in place.
const RevisionAnnotation = "gmsa.io/crd-revision"

//go:embed gmsacredentialspecs.windows.k8s.io.yaml
var manifest []byte

// Manifest returns the CRD as YAML.
func Manifest() []byte { return append([]byte(nil), manifest...) }

// CRD returns a fresh copy of the CRD object.
func CRD() (*apiextensionsv1.CustomResourceDefinition, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(manifest, crd); err != nil {
		return nil, fmt.Errorf("decode embedded GMSACredentialSpec CRD: %w", err)
	}
	return crd, nil
}

// Revision returns the revision a CRD object carries, or 0 when it has
// none (for example one installed from the upstream manifests).
func Revision(crd *apiextensionsv1.CustomResourceDefinition) int {
	r, err := strconv.Atoi(crd.Annotations[RevisionAnnotation])
	if err != nil {
		return 0
	}
	return r
}

// Established reports whether a CRD's Established condition is True: its
// kind is served.
func Established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}
