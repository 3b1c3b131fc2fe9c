package manifest

import (
	"reflect"
	"testing"
)

func TestDecode(t *testing.T) {
	objs, err := Decode("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetKind() != "Namespace" || objs[1].GetName() != "b" {
		t.Fatalf("got %v", objs)
	}
	if _, err := Decode("a: [\n"); err == nil {
		t.Fatal("bad YAML accepted")
	}
}

func TestDropNulls(t *testing.T) {
	in := map[string]any{"a": nil, "b": map[string]any{"c": nil, "d": 1}, "e": []any{map[string]any{"f": nil}}}
	want := map[string]any{"b": map[string]any{"d": 1}, "e": []any{map[string]any{}}}
	if got := DropNulls(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}
