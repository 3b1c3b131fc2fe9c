package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report as a person reads it: the target, one line
// per check (PASS, FAIL, WARN or SKIP), the fix under each failure, then
// the Windows-side commands of a running pod.
func WriteText(w io.Writer, rep Report) error {
	var b strings.Builder
	t := rep.Target
	subject := fmt.Sprintf("service account %s/%s", t.Namespace, t.ServiceAccount)
	if t.Pod != "" {
		subject = fmt.Sprintf("%s %s/%s (service account %s)", t.Source, t.Namespace, t.Pod, t.ServiceAccount)
	}
	fmt.Fprintf(&b, "Checking %s\n", subject)
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "%-4s  %s: %s\n", strings.ToUpper(string(c.Status)), c.Name, c.Message)
		if c.Fix != "" && (c.Status == Fail || c.Status == Warn) {
			fmt.Fprintf(&b, "      fix: %s\n", c.Fix)
		}
	}
	if len(rep.Commands) > 0 {
		b.WriteString("\nWindows-side checks (docs/troubleshooting.md#windows-side-checks):\n")
		for _, c := range rep.Commands {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as indented JSON, for scripts.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
