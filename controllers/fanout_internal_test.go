package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
)

// accountIn is a GmsaAccount granting one service account in each of n
// namespaces.
func accountIn(n int) *gmsav1alpha1.GmsaAccount {
	a := &gmsav1alpha1.GmsaAccount{}
	a.Name = "webapp1"
	for i := range n {
		a.Spec.ServiceAccounts = append(a.Spec.ServiceAccounts, gmsav1alpha1.ServiceAccountRef{Namespace: fmt.Sprintf("ns-%02d", i), Name: "app"})
	}
	return a
}

// countingReconciler's client answers every namespace look-up with "not
// found" (so nothing is applied), after delay, counting the look-ups and
// the most in flight at once.
func countingReconciler(parallelism int, delay time.Duration) (*GmsaAccountReconciler, *atomic.Int64, *atomic.Int64) {
	var calls, inFlight, most atomic.Int64
	var mu sync.Mutex
	c := fake.NewClientBuilder().WithScheme(scheme.New()).
		WithIndex(&rbacv1.RoleBinding{}, indexAccount, func(client.Object) []string { return nil }).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, _ client.WithWatch, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
			calls.Add(1)
			n := inFlight.Add(1)
			mu.Lock()
			if n > most.Load() {
				most.Store(n)
			}
			mu.Unlock()
			defer inFlight.Add(-1)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, key.Name)
		}}).Build()
	return &GmsaAccountReconciler{Client: c, NamespaceParallelism: parallelism}, &calls, &most
}

// Defect 8 of the reconcile-kit issue: the fan-out over namespaces started a
// goroutine per namespace behind a fixed semaphore and never looked at the
// context. It must respect NamespaceParallelism and stop when the context
// ends.
func TestRoleBindingFanOutIsBoundedAndStopsWithTheContext(t *testing.T) {
	r, calls, most := countingReconciler(3, 20*time.Millisecond)
	_, pending, _, err := r.reconcileRoleBindings(context.Background(), accountIn(12), &reconcilekit.Changes{})
	if err != nil || len(pending) != 12 {
		t.Fatalf("pending %v, err %v; want every namespace pending", pending, err)
	}
	if calls.Load() != 12 {
		t.Errorf("%d namespace look-ups, want 12", calls.Load())
	}
	if most.Load() > 3 {
		t.Errorf("%d look-ups at once, want at most NamespaceParallelism = 3", most.Load())
	}
	if most.Load() < 2 {
		t.Errorf("%d look-ups at once: the fan-out does not run in parallel", most.Load())
	}

	r, calls, _ = countingReconciler(3, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, _, err = r.reconcileRoleBindings(ctx, accountIn(40), &reconcilekit.Changes{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if calls.Load() != 0 {
		t.Errorf("%d look-ups after the context ended, want 0", calls.Load())
	}
}
