package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// CacheLagRequeue is how soon a reconcile that found the cache behind (an
// object it made a moment ago is not cached yet) runs again. Both
// controllers requeue so, without reporting anything.
const CacheLagRequeue = time.Second

// MetadataOnlyKinds are the kinds the manager caches as metadata only. Every
// Namespace of the cluster is in that cache once (the GmsaAccount controller
// binds namespaces as they appear; the GmsaStack controller owns the one it
// makes): no typed Namespace cache may be started, so the applier reads
// these kinds as metadata.
var MetadataOnlyKinds = map[schema.GroupKind]bool{{Kind: "Namespace"}: true}
