// Package account computes, without touching the API server, what a
// GmsaAccount should produce: the GMSACredentialSpec, the ClusterRole that
// allows `use` of exactly that credspec, one RoleBinding per namespace, and
// the status that describes the outcome.
package account

import (
	"fmt"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/credspec"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
)

// Mode is where a GmsaAccount's credspec comes from.
type Mode string

const (
	// ModeGenerated: built from accountName and domain.
	ModeGenerated Mode = "Generated"
	// ModeRaw: given whole in spec.credentialSpec.raw.
	ModeRaw Mode = "Raw"
	// ModeExisting: an existing credspec, only read.
	ModeExisting Mode = "Existing"
)

// CredentialSpecAPIVersion is the apiVersion the operator writes credspecs in.
const CredentialSpecAPIVersion = credspeccrd.Group + "/v1"

// ModeOf returns how the account's credspec is obtained.
func ModeOf(a *gmsav1alpha1.GmsaAccount) Mode {
	switch {
	case a.Spec.CredentialSpec.Existing != nil:
		return ModeExisting
	case a.Spec.CredentialSpec.Raw != nil:
		return ModeRaw
	default:
		return ModeGenerated
	}
}

// CredentialSpecName is the name of the credspec pods use: the existing
// one's, else spec.credentialSpecName, else the account's own name.
func CredentialSpecName(a *gmsav1alpha1.GmsaAccount) string {
	switch {
	case a.Spec.CredentialSpec.Existing != nil:
		return a.Spec.CredentialSpec.Existing.Name
	case a.Spec.CredentialSpecName != "":
		return a.Spec.CredentialSpecName
	default:
		return a.Name
	}
}

// ClusterRoleName is the name of the account's ClusterRole. RoleBindings
// carry the same name in each namespace.
func ClusterRoleName(a *gmsav1alpha1.GmsaAccount) string { return "gmsa:" + a.Name }

// RoleBindingName is the name of the account's RoleBinding in every
// namespace it grants.
func RoleBindingName(a *gmsav1alpha1.GmsaAccount) string { return ClusterRoleName(a) }

// Labels are the labels of every object generated for the account. They
// never include the account's own labels.
func Labels(a *gmsav1alpha1.GmsaAccount) map[string]string {
	return map[string]string{
		gmsav1alpha1.LabelManagedBy: gmsav1alpha1.ManagedByValue,
		gmsav1alpha1.LabelAccount:   a.Name,
	}
}

// OwnerReference makes the account the controller of a generated object,
// so that deleting the account garbage-collects it.
func OwnerReference(a *gmsav1alpha1.GmsaAccount) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion:         gmsav1alpha1.GroupVersion.String(),
		Kind:               "GmsaAccount",
		Name:               a.Name,
		UID:                a.UID,
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}

// CredentialSpecContent returns the content of the credspec field for a
// generated or raw account.
func CredentialSpecContent(a *gmsav1alpha1.GmsaAccount) (map[string]any, error) {
	switch ModeOf(a) {
	case ModeGenerated:
		cs, err := credspec.Generate(a.Spec.CredentialSpec)
		if err != nil {
			return nil, err
		}
		return credspec.Map(cs)
	case ModeRaw:
		m, err := credspec.Map(a.Spec.CredentialSpec.Raw)
		if err != nil {
			return nil, fmt.Errorf("spec.credentialSpec.raw: %w", err)
		}
		if err := credspec.Check(m); err != nil {
			return nil, fmt.Errorf("spec.credentialSpec.raw: %w", err)
		}
		return m, nil
	default:
		return nil, fmt.Errorf("an existing credspec is not generated")
	}
}

// DesiredCredentialSpec returns the GMSACredentialSpec to apply for a
// generated or raw account.
func DesiredCredentialSpec(a *gmsav1alpha1.GmsaAccount) (*unstructured.Unstructured, error) {
	content, err := CredentialSpecContent(a)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": CredentialSpecAPIVersion,
		"kind":       credspeccrd.Kind,
		"metadata": map[string]any{
			"name":   CredentialSpecName(a),
			"labels": toAny(Labels(a)),
			"ownerReferences": []any{map[string]any{
				"apiVersion":         gmsav1alpha1.GroupVersion.String(),
				"kind":               "GmsaAccount",
				"name":               a.Name,
				"uid":                string(a.UID),
				"controller":         true,
				"blockOwnerDeletion": true,
			}},
		},
		"credspec": content,
	}}
	return u, nil
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DesiredClusterRole returns the ClusterRole allowing `use` of exactly the
// account's credspec.
func DesiredClusterRole(a *gmsav1alpha1.GmsaAccount) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            ClusterRoleName(a),
			Labels:          Labels(a),
			OwnerReferences: []metav1.OwnerReference{OwnerReference(a)},
		},
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{credspeccrd.Group},
			Resources:     []string{credspeccrd.Resource},
			Verbs:         []string{"use"},
			ResourceNames: []string{CredentialSpecName(a)},
		}},
	}
}

// Subjects returns, per namespace, the subjects to bind: the listed
// service accounts, or the group of all service accounts of the namespace
// when an entry names none. Both the namespaces and the subjects are
// sorted and free of duplicates.
func Subjects(a *gmsav1alpha1.GmsaAccount) map[string][]rbacv1.Subject {
	whole := map[string]bool{}
	named := map[string]map[string]bool{}
	for _, sa := range a.Spec.ServiceAccounts {
		if sa.Name == "" {
			whole[sa.Namespace] = true
			continue
		}
		if named[sa.Namespace] == nil {
			named[sa.Namespace] = map[string]bool{}
		}
		named[sa.Namespace][sa.Name] = true
	}
	out := map[string][]rbacv1.Subject{}
	for ns := range whole {
		out[ns] = []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + ns}}
	}
	for ns, names := range named {
		if whole[ns] {
			continue // the group already covers every service account
		}
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		for _, n := range list {
			out[ns] = append(out[ns], rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: n})
		}
	}
	return out
}

// Namespaces returns the sorted namespaces the account grants.
func Namespaces(subjects map[string][]rbacv1.Subject) []string {
	out := make([]string, 0, len(subjects))
	for ns := range subjects {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// DesiredRoleBinding returns the RoleBinding of one namespace.
func DesiredRoleBinding(a *gmsav1alpha1.GmsaAccount, namespace string, subjects []rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            RoleBindingName(a),
			Namespace:       namespace,
			Labels:          Labels(a),
			OwnerReferences: []metav1.OwnerReference{OwnerReference(a)},
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterRoleName(a)},
		Subjects: subjects,
	}
}
