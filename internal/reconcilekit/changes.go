package reconcilekit

import (
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// Changes collects what one reconcile changed, so that it is reported in at
// most one Event per kind of change (Created, Updated, Deleted). Only writes
// that succeeded are added. It is safe for concurrent use.
type Changes struct {
	mu      sync.Mutex
	reasons []string
	items   map[string][]change
}

type change struct {
	ref  *corev1.ObjectReference
	note string
}

// Event reasons of the change recorder.
const (
	ReasonCreated = "Created"
	ReasonUpdated = "Updated"
	ReasonDeleted = "Deleted"
)

// Applied records the result of an Apply of obj (nothing for Unchanged).
func (c *Changes) Applied(r Result, obj client.Object) {
	switch r {
	case Created:
		c.Add(ReasonCreated, obj, "")
	case Updated:
		c.Add(ReasonUpdated, obj, "")
	}
}

// Add records one change of obj under reason, with an optional note.
func (c *Changes) Add(reason string, obj client.Object, note string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[string][]change{}
	}
	if _, ok := c.items[reason]; !ok {
		c.reasons = append(c.reasons, reason)
	}
	c.items[reason] = append(c.items[reason], change{ref: Ref(obj), note: note})
}

// Empty reports whether nothing was recorded.
func (c *Changes) Empty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reasons) == 0
}

var verbs = map[string]string{
	ReasonCreated: "Created",
	ReasonUpdated: "Put back to the desired state:",
	ReasonDeleted: "Deleted, no longer wanted:",
}

// Record emits one Normal Event on about per kind of change. The first
// object changed is the Event's related object, so that Events of different
// reconciles are not folded into one series.
func (c *Changes) Record(rec recorder.EventRecorder, about runtime.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, reason := range c.reasons {
		items := c.items[reason]
		parts := make([]string, 0, len(items))
		for _, it := range items {
			s := fmt.Sprintf("%s %q", it.ref.Kind, name(it.ref))
			if it.note != "" {
				s += " (" + it.note + ")"
			}
			parts = append(parts, s)
		}
		verb := verbs[reason]
		if verb == "" {
			verb = reason + ":"
		}
		action := strings.TrimSuffix(reason, "d")
		rec.Eventf(about, items[0].ref, corev1.EventTypeNormal, reason, action, "%s %s", verb, strings.Join(parts, ", "))
	}
}

func name(ref *corev1.ObjectReference) string {
	if ref.Namespace != "" {
		return ref.Namespace + "/" + ref.Name
	}
	return ref.Name
}

// Ref is a reference to obj for an Event; its kind comes from the object's
// type meta or, failing that, its Go type.
func Ref(obj client.Object) *corev1.ObjectReference {
	gvk := obj.GetObjectKind().GroupVersionKind()
	kind := gvk.Kind
	if kind == "" {
		kind = fmt.Sprintf("%T", obj)
		if i := strings.LastIndex(kind, "."); i >= 0 {
			kind = kind[i+1:]
		}
	}
	return &corev1.ObjectReference{APIVersion: gvk.GroupVersion().String(), Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// Describe names obj as "Kind namespace/name" for messages and logs.
func Describe(obj client.Object) string {
	ref := Ref(obj)
	return ref.Kind + " " + name(ref)
}
