package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteSectionReplacesOnlyItsOwnSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docs", "benchmarks.md")
	for _, step := range []struct{ name, body string }{{"a", "first A"}, {"b", "first B"}, {"a", "second A"}} {
		if err := WriteSection(path, step.name, step.body); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, "# Benchmarks") {
		t.Errorf("missing header:\n%s", doc)
	}
	if strings.Contains(doc, "first A") || !strings.Contains(doc, "second A") || !strings.Contains(doc, "first B") {
		t.Errorf("sections not replaced in place:\n%s", doc)
	}
	if strings.Index(doc, "second A") > strings.Index(doc, "first B") {
		t.Errorf("section a moved after section b:\n%s", doc)
	}
}
