package cluster

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook"
)

func credSpec(name string, content map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "windows.k8s.io/v1",
		"kind":       "GMSACredentialSpec",
		"metadata":   map[string]any{"name": name},
	}}
	if content != nil {
		u.Object["credspec"] = content
	}
	return u
}

var webapp1 = map[string]any{
	"CmsPlugins":       []any{"ActiveDirectory"},
	"DomainJoinConfig": map[string]any{"NetBiosName": "CONTOSO", "DnsName": "contoso.com"},
}

const webapp1JSON = `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"contoso.com","NetBiosName":"CONTOSO"}}`

func TestCredSpecStore(t *testing.T) {
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{CredSpecGVR: "GMSACredentialSpecList"},
		credSpec("webapp1", webapp1), credSpec("bare", nil))
	store, err := NewCredSpecStore(client, logr.Discard(), webhook.NewMetrics())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CredSpec("webapp1"); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("lookup before sync: err = %v, want ErrNotSynced", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go store.Run(ctx)
	if !store.WaitForSync(ctx) {
		t.Fatal("store did not sync")
	}

	lookup := func(name string) (admission.CredSpec, bool) {
		t.Helper()
		s, found, err := store.CredSpec(name)
		if err != nil {
			t.Fatalf("CredSpec(%s): %v", name, err)
		}
		return s, found
	}
	if s, found := lookup("webapp1"); !found || s.Content != webapp1JSON {
		t.Errorf("webapp1 = %q, %v; want its content as compact JSON with sorted keys", s.Content, found)
	}
	if s, found := lookup("bare"); !found || s.Content != "" {
		t.Errorf("credspec without content = %q, %v; want found with no content", s.Content, found)
	}
	if _, found := lookup("nope"); found {
		t.Error("unknown credspec found")
	}

	// Changes arrive through the watch.
	res := client.Resource(CredSpecGVR)
	if _, err := res.Create(ctx, credSpec("webapp2", map[string]any{"CmsPlugins": []any{"x"}}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Update(ctx, credSpec("webapp1", map[string]any{"CmsPlugins": []any{"y"}}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := res.Delete(ctx, "bare", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watch events to reach the store", func() bool {
		w2, ok2 := lookup("webapp2")
		w1, _ := lookup("webapp1")
		_, okBare := lookup("bare")
		return ok2 && w2.Content == `{"CmsPlugins":["x"]}` && w1.Content == `{"CmsPlugins":["y"]}` && !okBare
	})
}

// TestCredSpecStoreHints: the store knows which GmsaAccount generated a
// credential spec (by the operator's labels, never by a look-alike label
// alone), and finds the lower-case name meant by a name in other case.
func TestCredSpecStoreHints(t *testing.T) {
	if labelManagedBy != gmsav1alpha1.LabelManagedBy || managedByValue != gmsav1alpha1.ManagedByValue || labelAccount != gmsav1alpha1.LabelAccount {
		t.Fatal("the store's label constants differ from the API package's")
	}
	managed := credSpec("webapp1", webapp1)
	managed.SetLabels(map[string]string{labelManagedBy: managedByValue, labelAccount: "web"})
	lookalike := credSpec("webapp2", webapp1)
	lookalike.SetLabels(map[string]string{labelAccount: "someone"}) // not managed by the operator
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{CredSpecGVR: "GMSACredentialSpecList"},
		managed, lookalike, credSpec("bare", nil))
	store, err := NewCredSpecStore(client, logr.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go store.Run(ctx)
	if !store.WaitForSync(ctx) {
		t.Fatal("store did not sync")
	}
	if s, _, _ := store.CredSpec("webapp1"); s.Account != "web" {
		t.Errorf("webapp1's account = %q, want web", s.Account)
	}
	if s, _, _ := store.CredSpec("webapp2"); s.Account != "" {
		t.Errorf("webapp2's account = %q, want none: it is not managed by the operator", s.Account)
	}
	for name, want := range map[string]string{"WebApp1": "webapp1", "BARE": "bare", "webapp1": "", "Nope": ""} {
		if got, ok := store.SameNameIgnoringCase(name); got != want || ok != (want != "") {
			t.Errorf("SameNameIgnoringCase(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if err := client.Resource(CredSpecGVR).Delete(ctx, "bare", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delete to reach the store", func() bool {
		_, ok := store.SameNameIgnoringCase("Bare")
		return !ok
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSARAuthorizerAsksForTheServiceAccount checks the review sent: the
// end-to-end suite proves the answers with real RBAC.
func TestSARAuthorizerAsksForTheServiceAccount(t *testing.T) {
	client := kubefake.NewClientset()
	var sent *authorizationv1.LocalSubjectAccessReview
	client.PrependReactor("create", "localsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sent = a.(k8stesting.CreateAction).GetObject().(*authorizationv1.LocalSubjectAccessReview)
		out := sent.DeepCopy()
		out.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: false, Reason: "no binding"}
		return true, out, nil
	})
	m := webhook.NewMetrics()
	ok, reason, err := NewSARAuthorizer(client.AuthorizationV1(), m).MayUse(context.Background(), "team-a", "app", "webapp1")
	if err != nil || ok || reason != "no binding" {
		t.Fatalf("MayUse = %v, %q, %v; want the review's refusal and reason", ok, reason, err)
	}
	if sent.Namespace != "team-a" {
		t.Errorf("review in namespace %q", sent.Namespace)
	}
	spec := sent.Spec
	if spec.User != "system:serviceaccount:team-a:app" {
		t.Errorf("user %q", spec.User)
	}
	if len(spec.Groups) != 2 || spec.Groups[0] != "system:serviceaccounts" || spec.Groups[1] != "system:serviceaccounts:team-a" {
		t.Errorf("groups %q", spec.Groups)
	}
	ra := spec.ResourceAttributes
	if ra == nil || ra.Verb != "use" || ra.Group != "windows.k8s.io" || ra.Resource != "gmsacredentialspecs" || ra.Name != "webapp1" || ra.Namespace != "team-a" {
		t.Errorf("resource attributes %+v", ra)
	}

	client.PrependReactor("create", "localsubjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("apiserver unavailable")
	})
	if _, _, err := NewSARAuthorizer(client.AuthorizationV1(), nil).MayUse(context.Background(), "team-a", "app", "webapp1"); err == nil {
		t.Error("a failed review returned no error")
	}
}

// A refused connection (the API server restarting) is asked once more; a
// second refusal, or any other error, is returned.
func TestSARAuthorizerRetriesARefusedConnectionOnce(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name     string
		failures int
		wantErr  bool
		wantSent int
	}{
		{"refused once, then answered", 1, false, 2},
		{"refused twice", 2, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := kubefake.NewClientset()
			sent := 0
			client.PrependReactor("create", "localsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				sent++
				if sent <= tc.failures {
					return true, nil, refused
				}
				out := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.LocalSubjectAccessReview).DeepCopy()
				out.Status.Allowed = true
				return true, out, nil
			})
			ok, _, err := NewSARAuthorizer(client.AuthorizationV1(), nil).MayUse(context.Background(), "team-a", "app", "webapp1")
			if (err != nil) != tc.wantErr || (err == nil && !ok) {
				t.Fatalf("MayUse = %v, %v; want error %v", ok, err, tc.wantErr)
			}
			if sent != tc.wantSent {
				t.Errorf("%d reviews sent, want %d", sent, tc.wantSent)
			}
		})
	}
}
