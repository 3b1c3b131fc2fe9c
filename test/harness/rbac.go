package harness

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// Permission is one verb on one resource of the operator's ClusterRole.
type Permission struct {
	Group, Resource, Verb string
}

func (p Permission) String() string {
	g := p.Group
	if g == "" {
		g = "core"
	}
	return fmt.Sprintf("%s %s/%s", p.Verb, g, p.Resource)
}

// Suites that run the manager under the shipped RBAC and prove permissions.
const (
	SuiteStack    = "test/stack"
	SuiteAccounts = "controllers"
	SuiteGitOps   = "test/gitops"
	SuitePolicy   = "test/policy"
	// Escalation: never requested; RBAC lets the operator grant only what
	// it holds itself, so it holds what its generated roles grant.
	Escalation = "escalation"
)

// PermissionUse says, for every permission of config/rbac/role.yaml, which
// suite makes a request that needs it (so that removing the permission
// fails that suite's behaviour), or why it is held without being used.
// TestPermissionTableMatchesRole keeps this table equal to role.yaml;
// each suite asserts at its end that it made the requests assigned to it.
var PermissionUse = map[Permission]string{
	{"", "namespaces", "get"}: SuiteStack, {"", "namespaces", "list"}: SuiteStack, {"", "namespaces", "watch"}: SuiteStack,
	{"", "namespaces", "create"}: SuiteStack, {"", "namespaces", "patch"}: SuiteStack, {"", "namespaces", "delete"}: SuiteStack,
	{"", "secrets", "get"}: SuiteStack, {"", "secrets", "list"}: SuiteStack, {"", "secrets", "watch"}: SuiteStack,
	{"", "secrets", "create"}: SuiteStack, {"", "secrets", "patch"}: SuiteStack, {"", "secrets", "delete"}: SuiteStack,
	{"", "serviceaccounts", "get"}: SuiteStack, {"", "serviceaccounts", "list"}: SuiteStack, {"", "serviceaccounts", "watch"}: SuiteStack,
	{"", "serviceaccounts", "create"}: SuiteStack, {"", "serviceaccounts", "patch"}: SuiteStack, {"", "serviceaccounts", "delete"}: SuiteStack,
	{"", "services", "get"}: SuiteStack, {"", "services", "list"}: SuiteStack, {"", "services", "watch"}: SuiteStack,
	{"", "services", "create"}: SuiteStack, {"", "services", "patch"}: SuiteStack, {"", "services", "delete"}: SuiteStack,
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get"}: SuiteStack, {"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "list"}: SuiteStack,
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "watch"}: SuiteStack, {"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create"}: SuiteStack,
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"}: SuiteStack, {"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "delete"}: SuiteStack,
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "get"}: SuiteStack, {"admissionregistration.k8s.io", "validatingwebhookconfigurations", "list"}: SuiteStack,
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "watch"}: SuiteStack, {"admissionregistration.k8s.io", "validatingwebhookconfigurations", "create"}: SuiteStack,
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch"}: SuiteStack, {"admissionregistration.k8s.io", "validatingwebhookconfigurations", "delete"}: SuiteStack,
	{"apiextensions.k8s.io", "customresourcedefinitions", "get"}: SuiteStack, {"apiextensions.k8s.io", "customresourcedefinitions", "list"}: SuiteStack,
	{"apiextensions.k8s.io", "customresourcedefinitions", "watch"}: SuiteStack, {"apiextensions.k8s.io", "customresourcedefinitions", "create"}: SuiteGitOps,
	{"apiextensions.k8s.io", "customresourcedefinitions", "patch"}: SuiteStack,
	{"apps", "deployments", "get"}:                                 SuiteStack, {"apps", "deployments", "list"}: SuiteStack, {"apps", "deployments", "watch"}: SuiteStack,
	{"apps", "deployments", "create"}: SuiteStack, {"apps", "deployments", "patch"}: SuiteStack, {"apps", "deployments", "delete"}: SuiteStack,
	{"discovery.k8s.io", "endpointslices", "list"}: SuiteStack, {"discovery.k8s.io", "endpointslices", "watch"}: SuiteStack,
	{"policy", "poddisruptionbudgets", "get"}: SuiteStack, {"policy", "poddisruptionbudgets", "list"}: SuiteStack, {"policy", "poddisruptionbudgets", "watch"}: SuiteStack,
	{"policy", "poddisruptionbudgets", "create"}: SuiteStack, {"policy", "poddisruptionbudgets", "patch"}: SuiteStack, {"policy", "poddisruptionbudgets", "delete"}: SuiteStack,
	{"rbac.authorization.k8s.io", "clusterrolebindings", "get"}: SuiteStack, {"rbac.authorization.k8s.io", "clusterrolebindings", "list"}: SuiteStack,
	{"rbac.authorization.k8s.io", "clusterrolebindings", "watch"}: SuiteStack, {"rbac.authorization.k8s.io", "clusterrolebindings", "create"}: SuiteStack,
	{"rbac.authorization.k8s.io", "clusterrolebindings", "patch"}: SuiteStack,
	{"rbac.authorization.k8s.io", "clusterroles", "patch"}:        SuiteStack,
	{"cert-manager.io", "certificates", "get"}:                    SuiteStack, {"cert-manager.io", "certificates", "list"}: SuiteStack, {"cert-manager.io", "certificates", "watch"}: SuiteStack,
	{"cert-manager.io", "certificates", "create"}: SuiteStack, {"cert-manager.io", "certificates", "patch"}: SuiteStack,
	{"cert-manager.io", "issuers", "get"}: SuiteStack, {"cert-manager.io", "issuers", "list"}: SuiteStack, {"cert-manager.io", "issuers", "watch"}: SuiteStack,
	{"cert-manager.io", "issuers", "create"}: SuiteStack, {"cert-manager.io", "issuers", "patch"}: SuiteStack,
	{"cert-manager.io", "clusterissuers", "list"}: SuiteStack, {"cert-manager.io", "clusterissuers", "watch"}: SuiteStack,
	// A CertManager-mode stack that moves out of a namespace it did not make
	// deletes its Issuers and Certificates there; no suite moves one.
	{"cert-manager.io", "certificates", "delete"}: "held: pruning after a CertManager-mode stack moves out of a namespace it did not make (not exercised)",
	{"cert-manager.io", "issuers", "delete"}:      "held: pruning after a CertManager-mode stack moves out of a namespace it did not make (not exercised)",
	{"events.k8s.io", "events", "create"}:         SuiteStack,
	// The event recorder patches an Event when the same one repeats
	// (a series); no suite repeats one within its lifetime reliably.
	{"events.k8s.io", "events", "patch"}: "held for event series (the recorder patches a repeated Event)",
	{"gmsa.io", "gmsastacks", "list"}:    SuiteStack, {"gmsa.io", "gmsastacks", "watch"}: SuiteStack,
	{"gmsa.io", "gmsastacks", "patch"}:                              SuiteStack,
	{"gmsa.io", "gmsastacks/status", "patch"}:                       SuiteStack,
	{"gmsa.io", "gmsastacks/finalizers", "update"}:                  Escalation + ": blockOwnerDeletion on owner references to a GmsaStack needs it",
	{"authorization.k8s.io", "localsubjectaccessreviews", "create"}: Escalation + ": the webhook's ClusterRole grants it",

	{"gmsa.io", "gmsaaccounts", "list"}: SuiteAccounts, {"gmsa.io", "gmsaaccounts", "watch"}: SuiteAccounts,
	{"gmsa.io", "gmsaaccounts/status", "patch"}:          SuiteAccounts,
	{"gmsa.io", "gmsaaccounts/finalizers", "update"}:     Escalation + ": blockOwnerDeletion on owner references to a GmsaAccount needs it",
	{"rbac.authorization.k8s.io", "clusterroles", "get"}: SuiteAccounts, {"rbac.authorization.k8s.io", "clusterroles", "list"}: SuiteAccounts,
	{"rbac.authorization.k8s.io", "clusterroles", "watch"}: SuiteAccounts, {"rbac.authorization.k8s.io", "clusterroles", "create"}: SuiteAccounts,
	{"rbac.authorization.k8s.io", "clusterroles", "delete"}: SuiteAccounts,
	{"rbac.authorization.k8s.io", "rolebindings", "get"}:    SuiteAccounts, {"rbac.authorization.k8s.io", "rolebindings", "list"}: SuiteAccounts,
	{"rbac.authorization.k8s.io", "rolebindings", "watch"}: SuiteAccounts, {"rbac.authorization.k8s.io", "rolebindings", "create"}: SuiteAccounts,
	{"rbac.authorization.k8s.io", "rolebindings", "patch"}: SuiteAccounts, {"rbac.authorization.k8s.io", "rolebindings", "delete"}: SuiteAccounts,
	{"windows.k8s.io", "gmsacredentialspecs", "get"}: SuiteAccounts, {"windows.k8s.io", "gmsacredentialspecs", "list"}: SuiteAccounts,
	{"windows.k8s.io", "gmsacredentialspecs", "watch"}: SuiteAccounts, {"windows.k8s.io", "gmsacredentialspecs", "create"}: SuiteAccounts,
	{"windows.k8s.io", "gmsacredentialspecs", "patch"}: SuiteAccounts, {"windows.k8s.io", "gmsacredentialspecs", "delete"}: SuiteAccounts,
	{"windows.k8s.io", "gmsacredentialspecs", "use"}: Escalation + ": each GmsaAccount's ClusterRole grants it",
	// Policy mode.
	{"admissionregistration.k8s.io", "mutatingadmissionpolicies", "get"}: SuitePolicy, {"admissionregistration.k8s.io", "mutatingadmissionpolicies", "list"}: SuitePolicy,
	{"admissionregistration.k8s.io", "mutatingadmissionpolicies", "watch"}: SuitePolicy, {"admissionregistration.k8s.io", "mutatingadmissionpolicies", "create"}: SuitePolicy,
	{"admissionregistration.k8s.io", "mutatingadmissionpolicies", "patch"}: SuitePolicy, {"admissionregistration.k8s.io", "mutatingadmissionpolicies", "delete"}: SuitePolicy,
	{"admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "get"}: SuitePolicy, {"admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "list"}: SuitePolicy,
	{"admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "watch"}: SuitePolicy, {"admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "create"}: SuitePolicy,
	{"admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "patch"}: SuitePolicy, {"admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "delete"}: SuitePolicy,
	{"admissionregistration.k8s.io", "validatingadmissionpolicies", "get"}: SuitePolicy, {"admissionregistration.k8s.io", "validatingadmissionpolicies", "list"}: SuitePolicy,
	{"admissionregistration.k8s.io", "validatingadmissionpolicies", "watch"}: SuitePolicy, {"admissionregistration.k8s.io", "validatingadmissionpolicies", "create"}: SuitePolicy,
	{"admissionregistration.k8s.io", "validatingadmissionpolicies", "patch"}: SuitePolicy, {"admissionregistration.k8s.io", "validatingadmissionpolicies", "delete"}: SuitePolicy,
	{"admissionregistration.k8s.io", "validatingadmissionpolicybindings", "get"}: SuitePolicy, {"admissionregistration.k8s.io", "validatingadmissionpolicybindings", "list"}: SuitePolicy,
	{"admissionregistration.k8s.io", "validatingadmissionpolicybindings", "watch"}: SuitePolicy, {"admissionregistration.k8s.io", "validatingadmissionpolicybindings", "create"}: SuitePolicy,
	{"admissionregistration.k8s.io", "validatingadmissionpolicybindings", "patch"}: SuitePolicy, {"admissionregistration.k8s.io", "validatingadmissionpolicybindings", "delete"}: SuitePolicy,
	{"gmsa.io", "gmsacredspecsets", "get"}: SuitePolicy, {"gmsa.io", "gmsacredspecsets", "list"}: SuitePolicy, {"gmsa.io", "gmsacredspecsets", "watch"}: SuitePolicy,
	{"gmsa.io", "gmsacredspecsets", "create"}: SuitePolicy, {"gmsa.io", "gmsacredspecsets", "patch"}: SuitePolicy, {"gmsa.io", "gmsacredspecsets", "delete"}: SuitePolicy,
	// Switching to Policy mode removes the webhook's ClusterRoleBinding.
	{"rbac.authorization.k8s.io", "clusterrolebindings", "delete"}: SuitePolicy,
}

// ManagerRolePermissions reads config/rbac/role.yaml into permissions.
func ManagerRolePermissions() (map[Permission]bool, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(b, role); err != nil {
		return nil, err
	}
	perms := map[Permission]bool{}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					perms[Permission{g, res, v}] = true
				}
			}
		}
	}
	return perms, nil
}

// RequestRecorder records the permissions the requests through it need.
type RequestRecorder struct {
	mu        sync.Mutex
	seen      map[Permission]bool
	writes    []string
	forbidden []string
}

// Forbidden returns the requests the API server refused (403), as
// "METHOD path: verb group/resource", in order. Every request of the
// manager's clients goes through the recorder, the leader elector's and the
// event recorder's included, so a permission missing from any of the
// shipped roles shows here.
func (r *RequestRecorder) Forbidden() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.forbidden...)
}

// Writes returns the write requests (method and path) recorded so far.
func (r *RequestRecorder) Writes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

// Wrap is a rest.Config WrapTransport.
func (r *RequestRecorder) Wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			r.mu.Lock()
			r.writes = append(r.writes, req.Method+" "+req.URL.Path)
			r.mu.Unlock()
		}
		resp, err := next.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			entry := req.Method + " " + req.URL.Path
			if p, ok := permissionOf(req); ok {
				entry += ": " + p.String()
			}
			r.mu.Lock()
			r.forbidden = append(r.forbidden, entry)
			r.mu.Unlock()
		}
		if err != nil || resp.StatusCode == http.StatusForbidden {
			return resp, err
		}
		if p, ok := permissionOf(req); ok {
			r.mu.Lock()
			if r.seen == nil {
				r.seen = map[Permission]bool{}
			}
			r.seen[p] = true
			// An informer's streaming list (a watch that sends the initial
			// objects) stands for the list it makes on API servers without
			// streaming lists.
			if p.Verb == "watch" && req.URL.Query().Get("sendInitialEvents") == "true" {
				r.seen[Permission{p.Group, p.Resource, "list"}] = true
			}
			// A server-side apply that creates the object needs create too.
			if p.Verb == "patch" && resp.StatusCode == http.StatusCreated {
				r.seen[Permission{p.Group, p.Resource, "create"}] = true
			}
			r.mu.Unlock()
		}
		return resp, err
	})
}

// Missing returns the permissions assigned to suite in PermissionUse that
// no recorded request needed, sorted.
func (r *RequestRecorder) Missing(suite string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing []string
	for p, s := range PermissionUse {
		if s == suite && !r.seen[p] {
			missing = append(missing, p.String())
		}
	}
	sort.Strings(missing)
	return missing
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// permissionOf maps a request to the verb and resource RBAC checks.
func permissionOf(req *http.Request) (Permission, bool) {
	segs := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var group string
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		group, segs = segs[1], segs[3:]
	default:
		return Permission{}, false
	}
	if len(segs) >= 3 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	if len(segs) == 0 {
		return Permission{}, false
	}
	resource, named := segs[0], len(segs) >= 2
	if len(segs) >= 3 {
		resource += "/" + segs[2]
	}
	var verb string
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
		if !named {
			verb = "deletecollection"
		}
	default:
		return Permission{}, false
	}
	return Permission{group, resource, verb}, true
}
