package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook"
)

// CredSpecGVR is the resource the store watches.
var CredSpecGVR = schema.GroupVersionResource{Group: credspeccrd.Group, Version: "v1", Resource: credspeccrd.Resource}

// ErrNotSynced is returned by lookups before the store has its first full
// list of credential specs.
var ErrNotSynced = errors.New("credspec cache not synced yet")

// CredSpecStore keeps the content of every GMSACredentialSpec in memory,
// fed by a watch (informer) on the API server, so that admission never
// sends a request per lookup. It implements admission.CredSpecs; the
// content is precomputed in canonical JSON when an object changes.
type CredSpecStore struct {
	informer     cache.SharedIndexInformer
	registration cache.ResourceEventHandlerRegistration
	log          logr.Logger
	metrics      *webhook.Metrics

	mu    sync.RWMutex
	specs map[string]admission.CredSpec
}

var (
	_ admission.CredSpecs    = (*CredSpecStore)(nil)
	_ admission.SimilarNames = (*CredSpecStore)(nil)
)

// The labels the operator puts on the credential specs it generates (the
// same as api/v1alpha1's LabelManagedBy, ManagedByValue and LabelAccount;
// the webhook does not import the API package).
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedByValue = "gmsa-operator"
	labelAccount   = "gmsa.io/account"
)

// NewCredSpecStore prepares a store that watches gmsacredentialspecs
// through client; call Run to start it. metrics may be nil.
func NewCredSpecStore(client dynamic.Interface, log logr.Logger, metrics *webhook.Metrics) (*CredSpecStore, error) {
	s := &CredSpecStore{
		informer: dynamicinformer.NewFilteredDynamicInformer(client, CredSpecGVR, "", 0, cache.Indexers{}, nil).Informer(),
		log:      log,
		metrics:  metrics,
		specs:    map[string]admission.CredSpec{},
	}
	// The informer keeps its own copy of every object: keep it small.
	if err := s.informer.SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			u.SetManagedFields(nil)
			u.SetAnnotations(nil)
		}
		return obj, nil
	}); err != nil {
		return nil, fmt.Errorf("set credspec informer transform: %w", err)
	}
	reg, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.set(obj) },
		UpdateFunc: func(_, obj any) { s.set(obj) },
		DeleteFunc: s.delete,
	})
	if err != nil {
		return nil, fmt.Errorf("add credspec event handler: %w", err)
	}
	s.registration = reg
	return s, nil
}

// Run watches credential specs until ctx is done.
func (s *CredSpecStore) Run(ctx context.Context) {
	s.informer.RunWithContext(ctx)
}

// HasSynced reports whether the store has seen every credential spec that
// existed when it started.
func (s *CredSpecStore) HasSynced() bool {
	return s.registration.HasSynced()
}

// WaitForSync blocks until the store has synced or ctx is done.
func (s *CredSpecStore) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.HasSynced)
}

// CredSpec returns the credential spec called name from memory.
func (s *CredSpecStore) CredSpec(name string) (admission.CredSpec, bool, error) {
	if !s.HasSynced() {
		return admission.CredSpec{}, false, ErrNotSynced
	}
	s.mu.RLock()
	spec, ok := s.specs[name]
	s.mu.RUnlock()
	return spec, ok, nil
}

// SameNameIgnoringCase returns the credential spec whose name is name in
// lower case. Object names are lower case, so that is the only one that can
// differ from name in case alone.
func (s *CredSpecStore) SameNameIgnoringCase(name string) (string, bool) {
	lower := strings.ToLower(name)
	if lower == name {
		return "", false
	}
	s.mu.RLock()
	_, ok := s.specs[lower]
	s.mu.RUnlock()
	if !ok {
		return "", false
	}
	return lower, true
}

func (s *CredSpecStore) set(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	spec, err := credSpecOf(u)
	if err != nil {
		// Stored without content: admission then denies the name with
		// "does not have a credspec key" rather than using bad content.
		s.log.Error(err, "unusable credspec content", "credspec", u.GetName())
	}
	s.mu.Lock()
	s.specs[u.GetName()] = spec
	n := len(s.specs)
	s.mu.Unlock()
	s.metrics.SetCredSpecs(n)
	s.log.V(1).Info("credspec cached", "credspec", u.GetName(), "resourceVersion", u.GetResourceVersion(), "hasContent", spec.Content != "")
}

func (s *CredSpecStore) delete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	s.mu.Lock()
	delete(s.specs, u.GetName())
	n := len(s.specs)
	s.mu.Unlock()
	s.metrics.SetCredSpecs(n)
	s.log.V(1).Info("credspec removed from cache", "credspec", u.GetName())
}

// credSpecOf returns the canonical JSON of an object's credspec field, or
// an empty CredSpec if it has none.
func credSpecOf(u *unstructured.Unstructured) (admission.CredSpec, error) {
	content, err := admission.ContentOf(u.Object)
	if err != nil {
		return admission.CredSpec{Account: accountOf(u)}, fmt.Errorf("credspec %s: %w", u.GetName(), err)
	}
	return admission.CredSpec{Content: content, Account: accountOf(u)}, nil
}

// accountOf is the GmsaAccount that generated the credential spec, by the
// operator's labels.
func accountOf(u *unstructured.Unstructured) string {
	labels := u.GetLabels()
	if labels[labelManagedBy] != managedByValue {
		return ""
	}
	return labels[labelAccount]
}
