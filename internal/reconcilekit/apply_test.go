package reconcilekit

import (
	"sigs.k8s.io/controller-runtime/pkg/client"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestSubset(t *testing.T) {
	for _, tc := range []struct {
		name       string
		want, have any
		ok         bool
	}{
		{"equal scalars", "a", "a", true},
		{"different scalars", "a", "b", false},
		{"have holds more keys (defaults, other managers)", map[string]any{"a": "1"}, map[string]any{"a": "1", "b": "2"}, true},
		{"a wanted key is missing", map[string]any{"a": "1"}, map[string]any{"b": "2"}, false},
		{"an empty wanted map matches an absent field", map[string]any{"sel": map[string]any{}}, map[string]any{}, true},
		{"an empty wanted list matches an absent field", map[string]any{"l": []any{}}, map[string]any{}, true},
		{"a non-empty wanted map does not match an absent field", map[string]any{"sel": map[string]any{"x": "1"}}, map[string]any{}, false},
		{"lists match item by item", []any{map[string]any{"n": "a"}}, []any{map[string]any{"n": "a", "d": "x"}}, true},
		{"an added list item is a difference", []any{"a"}, []any{"a", "b"}, false},
		{"a removed list item is a difference", []any{"a", "b"}, []any{"a"}, false},
		{"list order matters", []any{"a", "b"}, []any{"b", "a"}, false},
		{"a map where a list is wanted", []any{"a"}, map[string]any{}, false},
		{"numbers compare by type and value", int64(2), int64(2), true},
		{"a term added to a label selector is a difference",
			map[string]any{"namespaceSelector": map[string]any{"matchExpressions": []any{"e"}}},
			map[string]any{"namespaceSelector": map[string]any{"matchExpressions": []any{"e"}, "matchLabels": map[string]any{"nobody": "true"}}}, false},
		{"an equal label selector matches",
			map[string]any{"objectSelector": map[string]any{"matchLabels": map[string]any{"a": "b"}}},
			map[string]any{"objectSelector": map[string]any{"matchLabels": map[string]any{"a": "b"}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Subset(tc.want, tc.have); got != tc.ok {
				t.Errorf("Subset(%v, %v) = %v, want %v", tc.want, tc.have, got, tc.ok)
			}
		})
	}
}

// A field removed from the desired object must change what is applied, or
// the subset check (which ignores extra fields on the live object) would
// never notice, and the field would stay forever.
func TestApplyMapHashChangesWhenAFieldIsRemoved(t *testing.T) {
	with := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"a": "1"}}, Data: map[string]string{"k": "v", "gone": "soon"}}
	without := with.DeepCopy()
	delete(without.Data, "gone")
	m1, err := ApplyMap(with)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ApplyMap(without)
	if err != nil {
		t.Fatal(err)
	}
	h1 := m1["metadata"].(map[string]any)["annotations"].(map[string]any)[AppliedHashAnnotation]
	h2 := m2["metadata"].(map[string]any)["annotations"].(map[string]any)[AppliedHashAnnotation]
	if h1 == h2 {
		t.Fatalf("removing a field did not change the applied hash %v", h1)
	}
	// The live object still has the removed field and the old hash: it is
	// not a subset match, so the applier writes.
	if Subset(m2, m1) {
		t.Fatal("the live object with the old hash counts as desired")
	}
	// Applying the same object twice gives the same map: no write.
	again, _ := ApplyMap(with)
	if !Subset(again, m1) {
		t.Fatal("the same desired object does not match what it applied")
	}
	if _, ok := m1["status"]; ok {
		t.Fatal("status must not be applied")
	}
	if _, ok := m1["metadata"].(map[string]any)["creationTimestamp"]; ok {
		t.Fatal("creationTimestamp must not be applied")
	}
}

func TestOwns(t *testing.T) {
	yes := true
	ref := func(uid string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "gmsa.io/v1alpha1", Kind: "GmsaAccount", Name: "a", UID: types.UID(uid), Controller: &yes}}
	}
	managed := map[string]string{LabelManagedBy: ManagedByValue}
	desired := &metav1.ObjectMeta{OwnerReferences: ref("1")}
	for _, tc := range []struct {
		name    string
		desired *metav1.ObjectMeta
		live    *metav1.ObjectMeta
		want    bool
	}{
		{"same controller and the label", desired, &metav1.ObjectMeta{Labels: managed, OwnerReferences: ref("1")}, true},
		{"another owner's (same name, other UID)", desired, &metav1.ObjectMeta{Labels: managed, OwnerReferences: ref("2")}, false},
		{"no owner reference", desired, &metav1.ObjectMeta{Labels: managed}, false},
		{"someone copied the owner reference but not the label", desired, &metav1.ObjectMeta{OwnerReferences: ref("1")}, false},
		{"ownerless desired (a CRD): the label decides", &metav1.ObjectMeta{}, &metav1.ObjectMeta{Labels: managed}, true},
		{"ownerless desired, another installer's", &metav1.ObjectMeta{}, &metav1.ObjectMeta{Labels: map[string]string{LabelManagedBy: "Helm"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Owns(tc.desired, tc.live); got != tc.want {
				t.Errorf("Owns = %v, want %v", got, tc.want)
			}
		})
	}
}

// The memory of foreign objects is bounded: owners that are deleted or
// renamed leave entries behind, and a long-running operator must not keep
// them forever.
func TestForeignMemoryIsBounded(t *testing.T) {
	const size = 100
	f := newForeignSet(size)
	for i := 0; i < 10*size; i++ {
		f.add(objectID{key: client.ObjectKey{Namespace: "ns", Name: strconv.Itoa(i)}})
	}
	if f.len() != size {
		t.Fatalf("remembers %d objects, want at most %d", f.len(), size)
	}
	// The most recent are kept, the oldest forgotten.
	if !f.has(objectID{key: client.ObjectKey{Namespace: "ns", Name: strconv.Itoa(10*size - 1)}}) {
		t.Error("the most recent entry was forgotten")
	}
	if f.has(objectID{key: client.ObjectKey{Namespace: "ns", Name: "0"}}) {
		t.Error("the oldest entry is still remembered")
	}
	f.remove(objectID{key: client.ObjectKey{Namespace: "ns", Name: strconv.Itoa(10*size - 1)}})
	if f.len() != size-1 {
		t.Errorf("remove: %d entries", f.len())
	}
	if ForeignMemory <= 0 || ForeignMemory > 100000 {
		t.Errorf("ForeignMemory %d is not a sensible bound", ForeignMemory)
	}
}
