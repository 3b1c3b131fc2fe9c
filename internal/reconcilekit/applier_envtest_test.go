package reconcilekit_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

// The applier against a real API server, with a cache restricted by label as
// the manager's is.

var env *harness.Env

func TestMain(m *testing.M) {
	var err error
	env, err = harness.Start(harness.Options{NoControllerManager: true, ServiceCIDR: "127.0.109.0/24"})
	if err != nil {
		println("start the control plane:", err.Error())
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// newApplier returns an applier whose client reads ConfigMaps from a cache
// that holds only those with the given labels, and a recorder of its
// requests.
func newApplier(t *testing.T, cached labels.Set) (*reconcilekit.Applier, *harness.RequestRecorder) {
	t.Helper()
	rec := &harness.RequestRecorder{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = rec.Wrap
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := cache.New(cfg, cache.Options{Scheme: scheme.New(), ByObject: map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(cached)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetInformer(ctx, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme.New(), Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return &reconcilekit.Applier{Client: cl, APIReader: direct}, rec
}

var managed = labels.Set{reconcilekit.LabelManagedBy: reconcilekit.ManagedByValue}

// owner makes a ConfigMap to own the test's objects (any object with a UID
// will do as a controller owner).
func owner(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	o := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return o
}

func desired(o *corev1.ConfigMap, name string, data map[string]string) *corev1.ConfigMap {
	yes := true
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: name, Labels: managed,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: o.Name, UID: o.UID, Controller: &yes}}},
		Data: data,
	}
}

func namespace(t *testing.T, name string) string {
	t.Helper()
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// eventually applies until the result is not cache lag (the cache catches
// up within moments).
func eventually(t *testing.T, a *reconcilekit.Applier, obj client.Object) (reconcilekit.Result, error) {
	t.Helper()
	var res reconcilekit.Result
	var err error
	_ = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		res, err = a.Apply(ctx, obj)
		return !errors.Is(err, reconcilekit.ErrCacheLag), nil
	})
	return res, err
}

func live(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

func TestApplyCreatesThenWritesNothing(t *testing.T) {
	ns := namespace(t, "kit-create")
	a, rec := newApplier(t, managed)
	o := owner(t, ns, "owner")
	want := desired(o, "x", map[string]string{"k": "v"})
	if res, err := a.Apply(context.Background(), want); err != nil || res != reconcilekit.Created {
		t.Fatalf("first apply: %v, %v; want Created", res, err)
	}
	if res, err := eventually(t, a, want); err != nil || res != reconcilekit.Unchanged {
		t.Fatalf("second apply: %v, %v; want Unchanged", res, err)
	}
	before := len(rec.Writes())
	for i := 0; i < 3; i++ {
		if res, err := a.Apply(context.Background(), want); err != nil || res != reconcilekit.Unchanged {
			t.Fatalf("apply %d: %v, %v", i, res, err)
		}
	}
	if w := rec.Writes()[before:]; len(w) != 0 {
		t.Fatalf("applying what is already there wrote: %v", w)
	}
}

// A field the operator no longer sets is removed, also from an object it
// first made with a create (whose fields server-side apply would otherwise
// leave to the create's Update entry forever).
func TestApplyRemovesAFieldNoLongerDesired(t *testing.T) {
	ns := namespace(t, "kit-remove")
	a, _ := newApplier(t, managed)
	o := owner(t, ns, "owner")
	if _, err := a.Apply(context.Background(), desired(o, "x", map[string]string{"keep": "1", "drop": "2"})); err != nil {
		t.Fatal(err)
	}
	res, err := eventually(t, a, desired(o, "x", map[string]string{"keep": "1"}))
	if err != nil || res != reconcilekit.Updated {
		t.Fatalf("apply without the field: %v, %v; want Updated", res, err)
	}
	if got := live(t, ns, "x").Data; len(got) != 1 || got["keep"] != "1" {
		t.Fatalf("data %v, want only keep", got)
	}
	// And a value someone edited is put back.
	cm := live(t, ns, "x")
	cm.Data["keep"] = "edited"
	if err := env.Client.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := a.Apply(ctx, desired(o, "x", map[string]string{"keep": "1"}))
		return err == nil && live(t, ns, "x").Data["keep"] == "1", nil
	}); err != nil {
		t.Fatalf("the edit was not put back: %v", live(t, ns, "x").Data)
	}
}

// Someone else's object under the desired name is never written, whether
// the label-restricted cache hides it (no label) or shows it (another owner
// copied the label); re-checking it later costs reads, not failing creates.
func TestApplyNeverWritesSomeoneElsesObject(t *testing.T) {
	ns := namespace(t, "kit-foreign")
	a, rec := newApplier(t, managed)
	o := owner(t, ns, "owner")
	other := owner(t, ns, "other")
	theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hidden"}, Data: map[string]string{"theirs": "1"}}
	if err := env.Client.Create(context.Background(), theirs, client.FieldOwner("platform-team")); err != nil {
		t.Fatal(err)
	}
	visible := desired(other, "visible", map[string]string{"theirs": "1"})
	if err := env.Client.Create(context.Background(), visible); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hidden", "visible"} {
		var f *reconcilekit.ForeignError
		_ = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := a.Apply(ctx, desired(o, name, map[string]string{"ours": "1"}))
			f, _ = reconcilekit.IsForeign(err)
			return f != nil, nil
		})
		if f == nil {
			t.Fatalf("%s: no ForeignError", name)
		}
		if name == "hidden" && f.Owner != `made by "platform-team"` {
			t.Errorf("%s: owner %q, want the manager that made it", name, f.Owner)
		}
		if got := live(t, ns, name).Data; got["theirs"] != "1" || got["ours"] != "" {
			t.Errorf("%s was changed: %v", name, got)
		}
	}
	before := len(rec.Writes())
	if _, err := a.Apply(context.Background(), desired(o, "hidden", map[string]string{"ours": "1"})); err == nil {
		t.Fatal("no error for a foreign object")
	}
	if w := rec.Writes()[before:]; len(w) != 0 {
		t.Fatalf("re-checking a known foreign object wrote: %v", w)
	}
	// Once it is gone, the operator makes its own.
	if err := env.Client.Delete(context.Background(), theirs); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Apply(context.Background(), desired(o, "hidden", map[string]string{"ours": "1"})); err != nil || res != reconcilekit.Created {
		t.Fatalf("after the foreign object went: %v, %v; want Created", res, err)
	}
}

// A write that fails is an error and not a change: nothing may report (in
// an Event, say) a write that did not happen.
func TestApplyReportsNoChangeWhenTheWriteFails(t *testing.T) {
	ns := namespace(t, "kit-fail")
	a, _ := newApplier(t, managed)
	o := owner(t, ns, "owner")
	bad := desired(o, "x", map[string]string{"not a valid key!": "v"})
	res, err := a.Apply(context.Background(), bad)
	if err == nil || res != reconcilekit.Unchanged {
		t.Fatalf("create of an invalid object: %v, %v; want Unchanged and an error", res, err)
	}
	if _, err := a.Apply(context.Background(), desired(o, "x", map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	res, err = eventually(t, a, bad)
	if err == nil || res != reconcilekit.Unchanged {
		t.Fatalf("update to an invalid object: %v, %v; want Unchanged and an error", res, err)
	}
	changes := &reconcilekit.Changes{}
	changes.Applied(res, bad)
	if !changes.Empty() {
		t.Fatal("a failed write was recorded as a change")
	}
}

// An object the operator made that its cache does not show yet is cache
// lag, a normal state to requeue quietly on, not a conflict.
func TestApplyTellsCacheLagFromConflict(t *testing.T) {
	ns := namespace(t, "kit-lag")
	// This cache never holds the objects: every miss looks like lag.
	a, _ := newApplier(t, labels.Set{"never": "cached"})
	o := owner(t, ns, "owner")
	want := desired(o, "x", map[string]string{"k": "v"})
	if res, err := a.Apply(context.Background(), want); err != nil || res != reconcilekit.Created {
		t.Fatalf("create: %v, %v", res, err)
	}
	_, err := a.Apply(context.Background(), want)
	if !errors.Is(err, reconcilekit.ErrCacheLag) {
		t.Fatalf("err %v, want ErrCacheLag", err)
	}
	if _, foreign := reconcilekit.IsForeign(err); foreign {
		t.Fatal("the operator's own object reported as foreign")
	}
}
