package harness

import (
	"net/http"
	"testing"
)

// TestPermissionTableMatchesRole: every permission of the generated
// ClusterRole is in PermissionUse (proved by a suite, or held for a stated
// reason), and the table names none the role lacks.
func TestPermissionTableMatchesRole(t *testing.T) {
	perms, err := ManagerRolePermissions()
	if err != nil {
		t.Fatal(err)
	}
	for p := range perms {
		if _, ok := PermissionUse[p]; !ok {
			t.Errorf("config/rbac/role.yaml grants %s, which PermissionUse does not account for", p)
		}
	}
	for p := range PermissionUse {
		if !perms[p] {
			t.Errorf("PermissionUse lists %s, which config/rbac/role.yaml does not grant", p)
		}
	}
}

func TestPermissionOf(t *testing.T) {
	cases := map[string]Permission{
		"GET /api/v1/namespaces/gmsa-system/secrets/gmsa-webhook-tls":                             {"", "secrets", "get"},
		"GET /api/v1/secrets?labelSelector=x":                                                     {"", "secrets", "list"},
		"GET /api/v1/secrets?watch=true":                                                          {"", "secrets", "watch"},
		"GET /api/v1/namespaces/gmsa-system":                                                      {"", "namespaces", "get"},
		"PATCH /api/v1/namespaces/gmsa-system":                                                    {"", "namespaces", "patch"},
		"PATCH /apis/apps/v1/namespaces/gmsa-system/deployments/gmsa-webhook":                     {"apps", "deployments", "patch"},
		"PATCH /apis/gmsa.io/v1alpha1/gmsastacks/default/status":                                  {"gmsa.io", "gmsastacks/status", "patch"},
		"POST /apis/events.k8s.io/v1/namespaces/default/events":                                   {"events.k8s.io", "events", "create"},
		"DELETE /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/gmsa-webhook": {"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "delete"},
		"PUT /apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/gmsa:x":                 {"rbac.authorization.k8s.io", "rolebindings", "update"},
	}
	for in, want := range cases {
		var method, url string
		for i := range in {
			if in[i] == ' ' {
				method, url = in[:i], in[i+1:]
				break
			}
		}
		req, err := http.NewRequest(method, "https://127.0.0.1"+url, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := permissionOf(req)
		if !ok || got != want {
			t.Errorf("%s: got %v %v, want %v", in, got, ok, want)
		}
	}
}

// TestRecorderKeepsForbidden: a refused request is listed with the
// permission it lacked, and does not count as that permission in use.
func TestRecorderKeepsForbidden(t *testing.T) {
	r := &RequestRecorder{}
	rt := r.Wrap(roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		code := http.StatusOK
		if req.URL.Path == "/api/v1/namespaces/gmsa-operator-system/events" {
			code = http.StatusForbidden
		}
		return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
	}))
	for _, u := range []string{"/api/v1/namespaces/gmsa-operator-system/events", "/apis/events.k8s.io/v1/namespaces/default/events"} {
		req, err := http.NewRequest(http.MethodPost, "https://127.0.0.1"+u, http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	want := "POST /api/v1/namespaces/gmsa-operator-system/events: create core/events"
	if got := r.Forbidden(); len(got) != 1 || got[0] != want {
		t.Errorf("Forbidden() = %q, want [%q]", got, want)
	}
	if r.seen[Permission{"", "events", "create"}] || !r.seen[Permission{"events.k8s.io", "events", "create"}] {
		t.Errorf("seen %v: the refused request must not count, the allowed one must", r.seen)
	}
}
