// Package migrate turns gMSA set up by hand (GMSACredentialSpecs and RBAC
// granting `use` on them, as the Kubernetes docs and the upstream
// windows-gmsa scripts make them) into GmsaAccounts that keep exactly the
// same admission answers.
//
// The answer that matters is the one admission asks for a pod: may user
// system:serviceaccount:<ns>:<sa>, in groups system:serviceaccounts and
// system:serviceaccounts:<ns>, `use` gmsacredentialspecs/<name> in namespace
// <ns> (the pod's)? So a RoleBinding in namespace N only ever helps pods of
// N, a ClusterRoleBinding to a service account helps that service account's
// pods in its own namespace, and groups other than those two never match.
//
// The package is pure: Plan reads lists, writes nothing.
package migrate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/account"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
)

// Input is what the cluster holds.
type Input struct {
	CredSpecs           []unstructured.Unstructured
	Accounts            []gmsav1alpha1.GmsaAccount
	ClusterRoles        []rbacv1.ClusterRole
	Roles               []rbacv1.Role
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
	RoleBindings        []rbacv1.RoleBinding
}

// Finding is something the migration could not carry over, or that the
// reader must know.
type Finding struct {
	// Kept is true when a hand-made object must stay for access to remain
	// as it is (what it grants cannot be expressed by a GmsaAccount).
	Kept bool
	// Object is the hand-made object, such as "RoleBinding team-a/x".
	Object string
	// Message explains it.
	Message string
}

// Result is the migration.
type Result struct {
	// Accounts are the GmsaAccounts to apply, sorted by name.
	Accounts []*gmsav1alpha1.GmsaAccount
	// Sources lists, per account name, the hand-made objects its grants
	// come from.
	Sources map[string][]string
	// Findings are reported to the user; any Kept finding means some
	// hand-made RBAC must stay.
	Findings []Finding
	// Replaced are hand-made RBAC objects ("ClusterRole x", "RoleBinding
	// ns/y") that grant nothing the accounts do not, once they are Ready:
	// they may then be deleted.
	Replaced []string
}

// grant is one service account reference granted use of some credspecs.
type grant struct {
	ref    gmsav1alpha1.ServiceAccountRef
	all    bool     // every credspec
	names  []string // else these
	source string   // binding
}

type roleInfo struct {
	names    []string
	all      bool // no resourceNames: every credspec
	pure     bool // grants use of credspecs and nothing else
	relevant bool // grants use of some credspec
	generic  bool // a rule of apiGroups "*" grants it (cluster-admin and the like)
}

const useVerb = "use"

func analyze(rules []rbacv1.PolicyRule) roleInfo {
	info := roleInfo{pure: true}
	for _, r := range rules {
		matches := (slices.Contains(r.Verbs, useVerb) || slices.Contains(r.Verbs, rbacv1.VerbAll)) &&
			(slices.Contains(r.APIGroups, credspeccrd.Group) || slices.Contains(r.APIGroups, rbacv1.APIGroupAll)) &&
			(slices.Contains(r.Resources, credspeccrd.Resource) || slices.Contains(r.Resources, rbacv1.ResourceAll))
		exact := len(r.NonResourceURLs) == 0 && slices.Equal(r.Verbs, []string{useVerb}) &&
			slices.Equal(r.APIGroups, []string{credspeccrd.Group}) && slices.Equal(r.Resources, []string{credspeccrd.Resource})
		if !exact {
			info.pure = false
		}
		if !matches {
			continue
		}
		if !slices.Contains(r.APIGroups, credspeccrd.Group) {
			info.generic = true
			continue
		}
		info.relevant = true
		if len(r.ResourceNames) == 0 {
			info.all = true
		}
		info.names = append(info.names, r.ResourceNames...)
	}
	return info
}

// effect is what one subject of a binding means for pod admission.
type effect struct {
	ref     *gmsav1alpha1.ServiceAccountRef // the pods it grants, or nil
	nothing string                          // why it grants pods nothing (the binding may still go)
	kept    string                          // why it cannot be expressed (the binding must stay)
}

const saPrefix = "system:serviceaccount:"

func subjectEffect(s rbacv1.Subject, bindingNS string) effect {
	cluster := bindingNS == ""
	sa := func(ns, name string) effect {
		if !cluster && ns != bindingNS {
			return effect{nothing: fmt.Sprintf("service account %s/%s: a RoleBinding in %s grants it nothing for its own pods, which admission checks in %s", ns, name, bindingNS, ns)}
		}
		return effect{ref: &gmsav1alpha1.ServiceAccountRef{Namespace: ns, Name: name}}
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNS
		}
		return sa(ns, s.Name)
	case rbacv1.UserKind:
		if rest, ok := strings.CutPrefix(s.Name, saPrefix); ok {
			if ns, name, ok := strings.Cut(rest, ":"); ok {
				return sa(ns, name)
			}
		}
		return effect{kept: fmt.Sprintf("user %q: a GmsaAccount grants service accounts only (users do not run pods)", s.Name)}
	case rbacv1.GroupKind:
		switch {
		case s.Name == "system:serviceaccounts" && !cluster:
			return effect{ref: &gmsav1alpha1.ServiceAccountRef{Namespace: bindingNS}}
		case s.Name == "system:serviceaccounts":
			return effect{kept: "group system:serviceaccounts cluster-wide: every service account of every namespace, also future ones; a GmsaAccount lists namespaces"}
		case strings.HasPrefix(s.Name, "system:serviceaccounts:"):
			ns := strings.TrimPrefix(s.Name, "system:serviceaccounts:")
			if !cluster && ns != bindingNS {
				return effect{nothing: fmt.Sprintf("group %s: a RoleBinding in %s grants it nothing for its pods, which admission checks in %s", s.Name, bindingNS, ns)}
			}
			return effect{ref: &gmsav1alpha1.ServiceAccountRef{Namespace: ns}}
		}
		return effect{kept: fmt.Sprintf("group %q: admission asks only with the groups system:serviceaccounts and system:serviceaccounts:<ns>, so it grants no pod anything; a GmsaAccount cannot express it", s.Name)}
	}
	return effect{kept: fmt.Sprintf("subject kind %q is unknown", s.Kind)}
}

type binding struct {
	id       string // "RoleBinding ns/name" or "ClusterRoleBinding name"
	ns       string
	roleRef  rbacv1.RoleRef
	subjects []rbacv1.Subject
}

// Plan computes the GmsaAccounts that keep the access the hand-made RBAC
// gives service accounts' pods to the credspecs that no GmsaAccount manages
// yet, with credentialSpec.existing (the operator only reads those
// credspecs, never changes them).
func Plan(in Input) Result {
	res := Result{Sources: map[string][]string{}}
	// Credspecs to migrate: not made by the operator, not granted already
	// by a GmsaAccount.
	covered := map[string]string{}
	accountNames := map[string]bool{}
	for i := range in.Accounts {
		covered[account.CredentialSpecName(&in.Accounts[i])] = in.Accounts[i].Name
		accountNames[in.Accounts[i].Name] = true
	}
	var specs []string
	for _, cs := range in.CredSpecs {
		name := cs.GetName()
		switch {
		case cs.GetLabels()[gmsav1alpha1.LabelManagedBy] == gmsav1alpha1.ManagedByValue:
			continue
		case covered[name] != "":
			res.Findings = append(res.Findings, Finding{Object: "GMSACredentialSpec " + name,
				Message: fmt.Sprintf("already granted by GmsaAccount %s; left as it is", covered[name])})
			continue
		}
		specs = append(specs, name)
	}
	sort.Strings(specs)
	migrating := map[string]bool{}
	for _, s := range specs {
		migrating[s] = true
	}

	clusterRoles := map[string]roleInfo{}
	for _, r := range in.ClusterRoles {
		clusterRoles[r.Name] = analyze(r.Rules)
	}
	roles := map[string]roleInfo{}
	for _, r := range in.Roles {
		roles[r.Namespace+"/"+r.Name] = analyze(r.Rules)
	}
	var bindings []binding
	for _, b := range in.ClusterRoleBindings {
		bindings = append(bindings, binding{id: "ClusterRoleBinding " + b.Name, roleRef: b.RoleRef, subjects: b.Subjects})
	}
	for _, b := range in.RoleBindings {
		bindings = append(bindings, binding{id: "RoleBinding " + b.Namespace + "/" + b.Name, ns: b.Namespace, roleRef: b.RoleRef, subjects: b.Subjects})
	}

	grants := map[string][]grant{} // credspec -> grants
	keepRole := map[string]bool{}  // role id -> must stay
	roleUsed := map[string]bool{}
	for _, b := range bindings {
		var info roleInfo
		var ok bool
		roleID := "ClusterRole " + b.roleRef.Name
		if b.roleRef.Kind == "Role" {
			roleID = "Role " + b.ns + "/" + b.roleRef.Name
			info, ok = roles[b.ns+"/"+b.roleRef.Name]
		} else {
			info, ok = clusterRoles[b.roleRef.Name]
		}
		if !ok {
			continue
		}
		if info.generic && !info.relevant {
			// cluster-admin and the like: they keep granting use of every
			// credspec; report it only where pods are concerned.
			for _, s := range b.subjects {
				if e := subjectEffect(s, b.ns); e.ref != nil {
					res.Findings = append(res.Findings, Finding{Object: b.id, Message: fmt.Sprintf(
						"binds %s (every API group) to %s: it grants use of every credspec and is not migrated; it stays as it is", roleID, refText(*e.ref))})
				}
			}
			continue
		}
		if !info.relevant {
			continue
		}
		var names []string
		for _, n := range info.names {
			if migrating[n] {
				names = append(names, n)
			}
		}
		if !info.all && len(names) == 0 {
			continue // grants only credspecs that are already managed, or do not exist
		}
		roleUsed[roleID] = true
		bindingKept := false
		for _, s := range b.subjects {
			e := subjectEffect(s, b.ns)
			switch {
			case e.kept != "":
				bindingKept = true
				res.Findings = append(res.Findings, Finding{Kept: true, Object: b.id, Message: e.kept + "; keep this binding"})
			case e.nothing != "":
				res.Findings = append(res.Findings, Finding{Object: b.id, Message: e.nothing})
			default:
				for _, n := range specs {
					if info.all || slices.Contains(names, n) {
						grants[n] = append(grants[n], grant{ref: *e.ref, source: b.id + " -> " + roleID})
					}
				}
			}
		}
		if info.all {
			bindingKept = true
			res.Findings = append(res.Findings, Finding{Kept: true, Object: b.id, Message: fmt.Sprintf(
				"%s has no resourceNames: it grants use of every credspec, also future ones; the GmsaAccounts grant the %d that exist now; keep it while later credspecs rely on it", roleID, len(specs))})
		}
		// A role that grants more than use of the credspecs migrated here
		// stays, and so do its bindings.
		if !info.pure || len(names) < len(info.names) {
			keepRole[roleID] = true
			res.Findings = append(res.Findings, Finding{Object: b.id, Message: fmt.Sprintf(
				"%s grants more than use of the credspecs migrated here; %s and it stay", roleID, b.id)})
			continue
		}
		if bindingKept {
			keepRole[roleID] = true
			continue
		}
		res.Replaced = append(res.Replaced, b.id)
	}
	for id := range roleUsed {
		if !keepRole[id] {
			res.Replaced = append(res.Replaced, id)
		}
	}
	sort.Strings(res.Replaced)

	existingRBAC := map[string]bool{}
	for _, r := range in.ClusterRoles {
		existingRBAC["ClusterRole "+r.Name] = true
	}
	for _, b := range in.RoleBindings {
		existingRBAC["RoleBinding "+b.Namespace+"/"+b.Name] = true
	}
	for _, name := range specs {
		gs := grants[name]
		if len(gs) == 0 {
			res.Findings = append(res.Findings, Finding{Object: "GMSACredentialSpec " + name,
				Message: "no service account's pods may use it; no GmsaAccount written (a GmsaAccount lists at least one)"})
			continue
		}
		if accountNames[name] {
			res.Findings = append(res.Findings, Finding{Kept: true, Object: "GMSACredentialSpec " + name,
				Message: fmt.Sprintf("a GmsaAccount named %s already exists for another credspec; write one under another name by hand", name)})
			continue
		}
		a := &gmsav1alpha1.GmsaAccount{}
		a.APIVersion, a.Kind = gmsav1alpha1.GroupVersion.String(), "GmsaAccount"
		a.Name = name
		a.Spec.CredentialSpec.Existing = &gmsav1alpha1.ExistingCredentialSpec{Name: name}
		a.Spec.ServiceAccounts = refs(gs)
		clash := false
		if existingRBAC["ClusterRole "+account.ClusterRoleName(a)] {
			clash = true
		}
		for _, r := range a.Spec.ServiceAccounts {
			if existingRBAC["RoleBinding "+r.Namespace+"/"+account.RoleBindingName(a)] {
				clash = true
			}
		}
		if clash {
			res.Findings = append(res.Findings, Finding{Kept: true, Object: "GMSACredentialSpec " + name,
				Message: fmt.Sprintf("a hand-made ClusterRole or RoleBinding is named %s, the name the GmsaAccount uses: the account would be Stalled (RBACConflict); rename it first", account.ClusterRoleName(a))})
		}
		var sources []string
		for _, g := range gs {
			if !slices.Contains(sources, g.source) {
				sources = append(sources, g.source)
			}
		}
		sort.Strings(sources)
		res.Sources[name] = sources
		res.Accounts = append(res.Accounts, a)
	}
	return res
}

// refs turns grants into a sorted serviceAccounts list: a whole namespace
// absorbs the named service accounts of that namespace.
func refs(gs []grant) []gmsav1alpha1.ServiceAccountRef {
	whole := map[string]bool{}
	named := map[string]bool{}
	for _, g := range gs {
		if g.ref.Name == "" {
			whole[g.ref.Namespace] = true
		}
	}
	var out []gmsav1alpha1.ServiceAccountRef
	for _, g := range gs {
		key := g.ref.Namespace + "/" + g.ref.Name
		if named[key] || (g.ref.Name != "" && whole[g.ref.Namespace]) {
			continue
		}
		named[key] = true
		out = append(out, g.ref)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func refText(r gmsav1alpha1.ServiceAccountRef) string {
	if r.Name == "" {
		return "every service account of " + r.Namespace
	}
	return "service account " + r.Namespace + "/" + r.Name
}
