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
// Its shape is the API's RawCredentialSpec: one definition of the field
// names Windows uses, for raw credspecs and generated ones alike.
type CredentialSpec = gmsav1alpha1.RawCredentialSpec

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
		DomainJoinConfig: gmsav1alpha1.RawDomainJoinConfig{
			Sid:                d.SID,
			MachineAccountName: src.AccountName,
			Guid:               d.GUID,
			DnsTreeName:        tree,
			DnsName:            d.DNSName,
			NetBiosName:        d.NetBiosName,
		},
		ActiveDirectoryConfig: gmsav1alpha1.RawActiveDirectoryConfig{
			GroupManagedServiceAccounts: []gmsav1alpha1.RawGroupManagedServiceAccount{
				{Name: src.AccountName, Scope: d.NetBiosName},
				{Name: src.AccountName, Scope: d.DNSName},
			},
		},
	}
	if h := src.HostAccount; h != nil {
		cs.ActiveDirectoryConfig.HostAccountConfig = &gmsav1alpha1.RawHostAccountConfig{
			PortableCcgVersion: h.PortableCcgVersion,
			PluginGUID:         h.PluginGUID,
			PluginInput:        h.PluginInput,
		}
	}
	return cs, nil
}

// Map returns the credspec as the generic map stored in the
// GMSACredentialSpec object's credspec field.
func Map(c *CredentialSpec) (map[string]any, error) {
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
