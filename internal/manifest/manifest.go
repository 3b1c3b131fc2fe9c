// Package manifest reads and cleans Kubernetes manifests as generic maps:
// multi-document YAML streams, and objects converted from Go types for
// server-side apply or for writing out.
package manifest

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Decode splits a multi-document YAML stream (kustomize or helm output, a
// file of several objects) into objects, skipping empty documents.
func Decode(stream string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for i, doc := range strings.Split(stream, "\n---") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs, nil
}

// DropNulls removes null values from maps, recursively, in place, and
// returns v. Objects converted from Go types carry nulls (an unset
// creationTimestamp, say) that server-side apply and readers do not want.
func DropNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			t[k] = DropNulls(e)
		}
	case []any:
		for i := range t {
			t[i] = DropNulls(t[i])
		}
	}
	return v
}
