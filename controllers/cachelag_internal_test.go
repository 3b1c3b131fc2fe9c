package controllers

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/funcr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/reconcilekit"
	"github.com/gmsa-operator/gmsa-operator/internal/scheme"
)

// Defect 5 of the reconcile-kit issue: an object the operator made a moment
// ago and its cache does not hold yet is normal. The reconcile must requeue
// after CacheLagRequeue, quietly: no error, no status write, no Event.
func TestStackCacheLagRequeuesQuietly(t *testing.T) {
	stack := &gmsav1alpha1.GmsaStack{}
	stack.Name, stack.Finalizers = "default", []string{StackFinalizer}
	var statusWrites, creates atomic.Int64
	// The cache has nothing but the stack; every create meets an object
	// that exists (made by the previous pass); the API server then no
	// longer has it: the cache is behind.
	cache := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(stack).WithStatusSubresource(stack).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
				creates.Add(1)
				return apierrors.NewAlreadyExists(schema.GroupResource{Resource: "things"}, obj.GetName())
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
				statusWrites.Add(1)
				if s, ok := obj.(*gmsav1alpha1.GmsaStack); ok {
					t.Logf("status written: %+v", s.Status.Conditions)
				}
				return nil
			},
		}).Build()
	apiServer := fake.NewClientBuilder().WithScheme(scheme.New()).Build()
	rec := &events.FakeRecorder{Events: make(chan string, 10)}
	r := &GmsaStackReconciler{Client: cache, APIReader: apiServer, Recorder: rec, OperatorImage: "gmsa-operator:test"}
	r.applier = &reconcilekit.Applier{Client: cache, APIReader: apiServer, MetadataOnly: MetadataOnlyKinds}

	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "default"}})
	if err != nil {
		t.Fatalf("Reconcile returned %v; a cache that is behind is no error", err)
	}
	if creates.Load() == 0 {
		t.Fatalf("the reconcile never met the cache lag (result %+v, %d status writes): the test does not test it", res, statusWrites.Load())
	}
	if res.RequeueAfter != CacheLagRequeue {
		t.Errorf("RequeueAfter %v, want CacheLagRequeue (%v)", res.RequeueAfter, CacheLagRequeue)
	}
	if statusWrites.Load() != 0 {
		t.Errorf("%d status writes, want none (Ready must not flip to False for a cache that is behind)", statusWrites.Load())
	}
	if len(rec.Events) != 0 {
		t.Errorf("an Event was recorded: %s", <-rec.Events)
	}
}

// Defect 5: the List error of the mapper that turns an event into GmsaStack
// requests vanished; it is logged.
func TestStackMapperLogsAListError(t *testing.T) {
	failing := fake.NewClientBuilder().WithScheme(scheme.New()).WithInterceptorFuncs(interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			return errors.New("cache not started")
		},
	}).Build()
	var logged []string
	ctx := log.IntoContext(context.Background(), funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{}))
	r := &GmsaStackReconciler{Client: failing}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = "gmsacredentialspecs.windows.k8s.io"
	if reqs := r.allStacks(ctx, crd); len(reqs) != 0 {
		t.Errorf("requests %v from a failed list", reqs)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "cache not started") || !strings.Contains(logged[0], crd.Name) {
		t.Errorf("logged %q, want the error and the object", logged)
	}
}
