package credspec

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// docsSample is the credspec of the Kubernetes documentation's
// "Configure GMSA for Windows Pods and containers" page (comments removed).
const docsSample = `
ActiveDirectoryConfig:
  GroupManagedServiceAccounts:
  - Name: WebApp1
    Scope: CONTOSO
  - Name: WebApp1
    Scope: contoso.com
CmsPlugins:
- ActiveDirectory
DomainJoinConfig:
  DnsName: contoso.com
  DnsTreeName: contoso.com
  Guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
  MachineAccountName: WebApp1
  NetBiosName: CONTOSO
  Sid: S-1-5-21-2126449477-2524075714-3094792973
`

func webapp1() gmsav1alpha1.CredentialSpecSource {
	return gmsav1alpha1.CredentialSpecSource{
		AccountName: "WebApp1",
		Domain: &gmsav1alpha1.Domain{
			DNSName:     "contoso.com",
			NetBiosName: "CONTOSO",
			DNSTreeName: "contoso.com",
			GUID:        "244818ae-87ac-4fcd-92ec-e79e5252348a",
			SID:         "S-1-5-21-2126449477-2524075714-3094792973",
		},
	}
}

func asJSONValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateEqualsTheKubernetesDocsSample(t *testing.T) {
	cs, err := Generate(webapp1())
	if err != nil {
		t.Fatal(err)
	}
	want, err := yaml.YAMLToJSON([]byte(docsSample))
	if err != nil {
		t.Fatal(err)
	}
	var wantV any
	if err := json.Unmarshal(want, &wantV); err != nil {
		t.Fatal(err)
	}
	got := asJSONValue(t, cs)
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(wantV)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("generated credspec differs from the docs sample\n got: %s\nwant: %s", gotJSON, wantJSON)
	}
}

func TestGenerateDefaultsTreeNameAndAddsHostAccount(t *testing.T) {
	src := webapp1()
	src.Domain.DNSTreeName = ""
	src.HostAccount = &gmsav1alpha1.HostAccount{
		PluginGUID:         "{CCC2A336-D7F3-4818-A213-272B7924213E}",
		PortableCcgVersion: "1",
		PluginInput:        "ObjectId=x;SecretUri=y",
	}
	cs, err := Generate(src)
	if err != nil {
		t.Fatal(err)
	}
	if cs.DomainJoinConfig.DnsTreeName != "contoso.com" {
		t.Errorf("DnsTreeName = %q, want the DNS name", cs.DomainJoinConfig.DnsTreeName)
	}
	m, err := Map(cs)
	if err != nil {
		t.Fatal(err)
	}
	ad := m["ActiveDirectoryConfig"].(map[string]any)
	hac, ok := ad["HostAccountConfig"].(map[string]any)
	if !ok {
		t.Fatalf("HostAccountConfig missing from ActiveDirectoryConfig: %v", ad)
	}
	for k, v := range map[string]string{"PortableCcgVersion": "1", "PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}", "PluginInput": "ObjectId=x;SecretUri=y"} {
		if hac[k] != v {
			t.Errorf("HostAccountConfig.%s = %v, want %s", k, hac[k], v)
		}
	}
	if _, top := m["HostAccountConfig"]; top {
		t.Error("HostAccountConfig must sit inside ActiveDirectoryConfig, not at the top level")
	}
	// Without a host account there is no HostAccountConfig key at all.
	plain, _ := Generate(webapp1())
	pm, _ := Map(plain)
	if _, ok := pm["ActiveDirectoryConfig"].(map[string]any)["HostAccountConfig"]; ok {
		t.Error("HostAccountConfig present without hostAccount")
	}
}

func TestGenerateNeedsAccountAndDomain(t *testing.T) {
	if _, err := Generate(gmsav1alpha1.CredentialSpecSource{AccountName: "WebApp1"}); err == nil {
		t.Error("Generate without a domain succeeded")
	}
}

func TestCheck(t *testing.T) {
	good, _ := Generate(webapp1())
	gm, _ := Map(good)
	if err := Check(gm); err != nil {
		t.Fatalf("Check(generated) = %v", err)
	}
	cases := map[string]struct {
		mutate func(m map[string]any)
		want   string
	}{
		"no plugins":        {func(m map[string]any) { m["CmsPlugins"] = []any{} }, "CmsPlugins"},
		"no domain SID":     {func(m map[string]any) { delete(m["DomainJoinConfig"].(map[string]any), "Sid") }, "DomainJoinConfig"},
		"no gMSA listed":    {func(m map[string]any) { m["ActiveDirectoryConfig"] = map[string]any{} }, "GroupManagedServiceAccounts"},
		"wrong shape":       {func(m map[string]any) { m["CmsPlugins"] = "ActiveDirectory" }, "shape"},
		"no content at all": {nil, "missing"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if c.mutate != nil {
				m, _ = Map(good)
				c.mutate(m)
			}
			err := Check(m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Check = %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}
