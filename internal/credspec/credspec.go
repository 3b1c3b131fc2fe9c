// Package credspec builds the credential spec of a GmsaAccount: the JSON
// document a Windows node needs to run a container under a gMSA, with the
// exact field spellings Windows and the Kubernetes GMSA feature use.
package credspec

import (
	"encoding/json"
	"fmt"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
)

// CredentialSpec is the content of a GMSACredentialSpec's credspec field.
type CredentialSpec struct {
	CmsPlugins            []string              `json:"CmsPlugins"`
	DomainJoinConfig      DomainJoinConfig      `json:"DomainJoinConfig"`
	ActiveDirectoryConfig ActiveDirectoryConfig `json:"ActiveDirectoryConfig"`
}

// DomainJoinConfig identifies the domain and the gMSA.
type DomainJoinConfig struct {
	Sid                string `json:"Sid"`
	MachineAccountName string `json:"MachineAccountName"`
	Guid               string `json:"Guid"` //nolint:revive // Windows' spelling.
	DnsTreeName        string `json:"DnsTreeName"`
	DnsName            string `json:"DnsName"`
	NetBiosName        string `json:"NetBiosName"`
}

// ActiveDirectoryConfig lists the gMSAs and, for non-domain-joined nodes,
// the CCG plugin that fetches them.
type ActiveDirectoryConfig struct {
	GroupManagedServiceAccounts []GroupManagedServiceAccount `json:"GroupManagedServiceAccounts"`
	HostAccountConfig           *HostAccountConfig           `json:"HostAccountConfig,omitempty"`
}

// GroupManagedServiceAccount is a gMSA under one scope (a DNS or NetBIOS
// domain name).
type GroupManagedServiceAccount struct {
	Name  string `json:"Name"`
	Scope string `json:"Scope"`
}

// HostAccountConfig configures the Container Credential Guard plugin.
type HostAccountConfig struct {
	PortableCcgVersion string `json:"PortableCcgVersion"`
	PluginGUID         string `json:"PluginGUID"`
	PluginInput        string `json:"PluginInput"`
}

// ActiveDirectoryPlugin is the CmsPlugins entry of every gMSA credspec.
const ActiveDirectoryPlugin = "ActiveDirectory"

// Generate builds the credspec of a GmsaAccount whose credentialSpec gives
// accountName and domain. The account is listed under both the DNS and the
// NetBIOS scope, as New-CredentialSpec does; dnsTreeName defaults to dnsName.
func Generate(src gmsav1alpha1.CredentialSpecSource) (*CredentialSpec, error) {
	if src.AccountName == "" || src.Domain == nil {
		return nil, fmt.Errorf("credentialSpec: accountName and domain are required to generate a credspec")
	}
	d := src.Domain
	tree := d.DNSTreeName
	if tree == "" {
		tree = d.DNSName
	}
	cs := &CredentialSpec{
		CmsPlugins: []string{ActiveDirectoryPlugin},
		DomainJoinConfig: DomainJoinConfig{
			Sid:                d.SID,
			MachineAccountName: src.AccountName,
			Guid:               d.GUID,
			DnsTreeName:        tree,
			DnsName:            d.DNSName,
			NetBiosName:        d.NetBiosName,
		},
		ActiveDirectoryConfig: ActiveDirectoryConfig{
			GroupManagedServiceAccounts: []GroupManagedServiceAccount{
				{Name: src.AccountName, Scope: d.NetBiosName},
				{Name: src.AccountName, Scope: d.DNSName},
			},
		},
	}
	if h := src.HostAccount; h != nil {
		cs.ActiveDirectoryConfig.HostAccountConfig = &HostAccountConfig{
			PortableCcgVersion: h.PortableCcgVersion,
			PluginGUID:         h.PluginGUID,
			PluginInput:        h.PluginInput,
		}
	}
	return cs, nil
}

// Map returns the credspec as the generic map stored in the
// GMSACredentialSpec object's credspec field.
func (c *CredentialSpec) Map() (map[string]any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Check reports what a credspec given raw or found in the cluster lacks for
// a Windows node to use it. It returns nil for a usable credspec.
func Check(content map[string]any) error {
	if content == nil {
		return fmt.Errorf("the credspec field is missing")
	}
	b, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("credspec is not JSON: %w", err)
	}
	var cs CredentialSpec
	if err := json.Unmarshal(b, &cs); err != nil {
		return fmt.Errorf("credspec does not have the credential spec shape: %w", err)
	}
	switch {
	case len(cs.CmsPlugins) == 0:
		return fmt.Errorf("credspec.CmsPlugins is empty")
	case cs.DomainJoinConfig.DnsName == "" || cs.DomainJoinConfig.Sid == "" || cs.DomainJoinConfig.Guid == "":
		return fmt.Errorf("credspec.DomainJoinConfig needs DnsName, Sid and Guid")
	case len(cs.ActiveDirectoryConfig.GroupManagedServiceAccounts) == 0:
		return fmt.Errorf("credspec.ActiveDirectoryConfig.GroupManagedServiceAccounts is empty")
	}
	return nil
}
