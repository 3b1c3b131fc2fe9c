package migrate

import (
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// accountYAML is a GmsaAccount as written: no status, no empty metadata.
type accountYAML struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec gmsav1alpha1.GmsaAccountSpec `json:"spec"`
}

// WriteAccounts writes the accounts as a multi-document YAML stream, each
// preceded by comments naming the hand-made objects its grants come from.
func WriteAccounts(w io.Writer, res Result) error {
	var b strings.Builder
	for i, a := range res.Accounts {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "# GMSACredentialSpec %s, taken over as it is (credentialSpec.existing: the operator only reads it).\n", a.Name)
		for _, s := range res.Sources[a.Name] {
			fmt.Fprintf(&b, "# grants from %s\n", s)
		}
		out := accountYAML{APIVersion: a.APIVersion, Kind: a.Kind, Spec: a.Spec}
		out.Metadata.Name = a.Name
		y, err := yaml.Marshal(out)
		if err != nil {
			return fmt.Errorf("encode GmsaAccount %s: %w", a.Name, err)
		}
		b.Write(y)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteReport writes the findings and the hand-made objects the accounts
// replace, for a person (stderr).
func WriteReport(w io.Writer, res Result) error {
	var b strings.Builder
	for _, f := range res.Findings {
		level := "note"
		if f.Kept {
			level = "not carried over"
		}
		fmt.Fprintf(&b, "%s: %s: %s\n", level, f.Object, f.Message)
	}
	if len(res.Replaced) > 0 {
		b.WriteString("Once every GmsaAccount above is Ready (kubectl wait gmsaaccount --all --for=condition=Ready),\n" +
			"these hand-made objects grant pods nothing more and may be deleted:\n")
		for _, r := range res.Replaced {
			kind, name, _ := strings.Cut(r, " ")
			ns, obj, namespaced := strings.Cut(name, "/")
			if namespaced {
				fmt.Fprintf(&b, "  kubectl delete %s -n %s %s\n", strings.ToLower(kind), ns, obj)
			} else {
				fmt.Fprintf(&b, "  kubectl delete %s %s\n", strings.ToLower(kind), name)
			}
		}
	}
	fmt.Fprintf(&b, "%d GmsaAccount(s) written.\n", len(res.Accounts))
	if res.Incomplete() {
		b.WriteString("Some access could not be carried over (\"not carried over\" above): keep those objects. Exit status 1.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Incomplete is true when some hand-made RBAC must stay because a GmsaAccount
// cannot express what it grants.
func (r Result) Incomplete() bool {
	for _, f := range r.Findings {
		if f.Kept {
			return true
		}
	}
	return false
}
