// Package report writes the sections of docs/benchmarks.md. Each benchmark
// program owns one section, delimited by HTML comments, and replaces only
// that section when it runs again.
package report

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const header = "# Benchmarks\n\nEach section is written by its benchmark program; rerun the command it shows to refresh it.\n\n"

// WriteSection replaces the section called name in the Markdown file at
// path with body (or appends it), creating the file if needed.
func WriteSection(path, name, body string) error {
	start, end := "<!-- "+name+":start -->", "<!-- "+name+":end -->"
	section := start + "\n" + strings.TrimRight(body, "\n") + "\n" + end + "\n"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc := string(old)
	if doc == "" {
		doc = header
	}
	if i, j := strings.Index(doc, start), strings.Index(doc, end); i >= 0 && j > i {
		k := j + len(end)
		if k < len(doc) && doc[k] == '\n' {
			k++
		}
		doc = doc[:i] + section + doc[k:]
	} else {
		if !strings.HasSuffix(doc, "\n\n") {
			doc += "\n"
		}
		doc += section
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
