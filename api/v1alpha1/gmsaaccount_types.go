package v1alpha1

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GmsaAccountSpec is one gMSA and the service accounts allowed to use it.
// +kubebuilder:validation:XValidation:rule="!has(self.credentialSpecName) || !has(self.credentialSpec.existing)",fieldPath=".credentialSpecName",message="credentialSpecName cannot be combined with credentialSpec.existing: the existing credspec's own name is used"
type GmsaAccountSpec struct {
	// credentialSpecName is the name of the GMSACredentialSpec to generate.
	// Defaults to the GmsaAccount's name. Pods name it in
	// securityContext.windowsOptions.gmsaCredentialSpecName, and it is matched
	// exactly, so it must be lowercase.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a lowercase RFC 1123 subdomain: pods name credspecs exactly, so 'gmsa-WebApp1' could never be used"
	CredentialSpecName string `json:"credentialSpecName,omitempty"`

	// credentialSpec says where the credential spec comes from: generated from
	// accountName and domain (with an optional hostAccount), given whole as
	// raw, or an existing GMSACredentialSpec, which is then only read.
	// +required
	CredentialSpec CredentialSpecSource `json:"credentialSpec"`

	// serviceAccounts may use the gMSA: each entry is a namespace and
	// optionally a service account name; without a name, every service
	// account of the namespace may use it. A namespace that does not exist yet
	// is granted as soon as it is created.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	ServiceAccounts []ServiceAccountRef `json:"serviceAccounts"`
}

// CredentialSpecSource is exactly one way to obtain the credential spec.
// +kubebuilder:validation:XValidation:rule="[has(self.accountName), has(self.raw), has(self.existing)].filter(x, x).size() == 1",message="exactly one of accountName (with domain), raw or existing must be set"
// +kubebuilder:validation:XValidation:rule="has(self.accountName) == has(self.domain)",fieldPath=".domain",message="domain is required with accountName, and only with it"
// +kubebuilder:validation:XValidation:rule="!has(self.hostAccount) || has(self.accountName)",fieldPath=".hostAccount",message="hostAccount may only be set with accountName"
type CredentialSpecSource struct {
	// accountName is the gMSA's account name in Active Directory, without the
	// trailing $, such as WebApp1 (at most 15 characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9_-]*$')",message="must be a gMSA account name: letters, digits, '-' and '_', starting with a letter or digit, without the trailing $"
	AccountName string `json:"accountName,omitempty"`

	// domain is the Active Directory domain of the gMSA.
	// +optional
	Domain *Domain `json:"domain,omitempty"`

	// hostAccount configures non-domain-joined Windows nodes, which retrieve
	// the gMSA through a Container Credential Guard (CCG) plugin.
	// +optional
	HostAccount *HostAccount `json:"hostAccount,omitempty"`

	// raw is a complete credential spec (the JSON that
	// New-CredentialSpec writes), used as it is.
	// +optional
	Raw *RawCredentialSpec `json:"raw,omitempty"`

	// existing names a GMSACredentialSpec that already exists (made by
	// another tool). The operator only reads it and grants its use.
	// +optional
	Existing *ExistingCredentialSpec `json:"existing,omitempty"`
}

// Domain is an Active Directory domain as a credential spec names it.
type Domain struct {
	// dnsName is the domain's DNS name, such as contoso.com.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$')",message="must be a DNS domain name with at least two labels, such as contoso.com"
	DNSName string `json:"dnsName"`

	// netBiosName is the domain's NetBIOS name, such as CONTOSO (at most 15
	// characters).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9-]*$')",message="must be a NetBIOS domain name: letters, digits and '-', starting with a letter or digit"
	NetBiosName string `json:"netBiosName"`

	// dnsTreeName is the DNS name of the forest root. Defaults to dnsName.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$')",message="must be a DNS domain name with at least two labels, such as contoso.com"
	DNSTreeName string `json:"dnsTreeName,omitempty"`

	// guid is the domain's GUID, such as 244818ae-87ac-4fcd-92ec-e79e5252348a.
	// +required
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$')",message="must be a GUID such as 244818ae-87ac-4fcd-92ec-e79e5252348a"
	// +kubebuilder:validation:MaxLength=36
	GUID string `json:"guid"`

	// sid is the domain's security identifier, such as
	// S-1-5-21-2126449477-2524075714-3094792973.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^S-1-5-21-[0-9]{1,10}-[0-9]{1,10}-[0-9]{1,10}$')",message="must be a domain SID of the form S-1-5-21-a-b-c"
	SID string `json:"sid"`
}

// HostAccount is the CCG plugin configuration for non-domain-joined nodes
// (the credential spec's ActiveDirectoryConfig.HostAccountConfig).
type HostAccount struct {
	// pluginGUID is the CCG plugin's COM class GUID in braces, such as
	// {CCC2A336-D7F3-4818-A213-272B7924213E}.
	// +required
	// +kubebuilder:validation:MaxLength=38
	// +kubebuilder:validation:XValidation:rule="self.matches('^\\\\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\\\\}$')",message="must be a GUID in braces such as {CCC2A336-D7F3-4818-A213-272B7924213E}"
	PluginGUID string `json:"pluginGUID"`

	// portableCcgVersion is the portable CCG version, "1" today.
	// +required
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+$')",message="must be a version number such as \"1\""
	PortableCcgVersion string `json:"portableCcgVersion"`

	// pluginInput is the plugin's input, such as
	// ObjectId=...;SecretUri=... for the Azure Key Vault plugin. It must not
	// contain a secret itself: it names where the plugin finds one.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	PluginInput string `json:"pluginInput"`
}

// RawCredentialSpec is a credential spec given whole, with the field names
// Windows uses. The operator checks its shape and copies it as it is.
type RawCredentialSpec struct {
	// CmsPlugins lists the credential plugins, ["ActiveDirectory"] for a gMSA.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=64
	CmsPlugins []string `json:"CmsPlugins"`

	// DomainJoinConfig identifies the domain and the account.
	// +required
	DomainJoinConfig RawDomainJoinConfig `json:"DomainJoinConfig"`

	// ActiveDirectoryConfig lists the gMSAs and, for non-domain-joined
	// nodes, the CCG plugin.
	// +required
	ActiveDirectoryConfig RawActiveDirectoryConfig `json:"ActiveDirectoryConfig"`
}

// RawDomainJoinConfig is a credential spec's DomainJoinConfig.
type RawDomainJoinConfig struct {
	// Sid is the domain's SID (S-1-5-21-a-b-c).
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^S-1-5-21-[0-9]{1,10}-[0-9]{1,10}-[0-9]{1,10}$')",message="must be a domain SID of the form S-1-5-21-a-b-c"
	Sid string `json:"Sid"`

	// MachineAccountName is the gMSA's account name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	MachineAccountName string `json:"MachineAccountName"`

	// Guid is the domain's GUID.
	// +required
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$')",message="must be a GUID such as 244818ae-87ac-4fcd-92ec-e79e5252348a"
	Guid string `json:"Guid"` //nolint:revive // Windows' spelling.

	// DnsTreeName is the DNS name of the forest root.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DnsTreeName string `json:"DnsTreeName,omitempty"` //nolint:revive // Windows' spelling.

	// DnsName is the domain's DNS name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DnsName string `json:"DnsName"` //nolint:revive // Windows' spelling.

	// NetBiosName is the domain's NetBIOS name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	NetBiosName string `json:"NetBiosName"`
}

// RawActiveDirectoryConfig is a credential spec's ActiveDirectoryConfig.
type RawActiveDirectoryConfig struct {
	// GroupManagedServiceAccounts lists the gMSA under each scope (DNS and
	// NetBIOS domain names).
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	GroupManagedServiceAccounts []RawGroupManagedServiceAccount `json:"GroupManagedServiceAccounts"`

	// HostAccountConfig configures the CCG plugin of non-domain-joined
	// nodes.
	// +optional
	HostAccountConfig *RawHostAccountConfig `json:"HostAccountConfig,omitempty"`
}

// RawGroupManagedServiceAccount is a gMSA under one scope.
type RawGroupManagedServiceAccount struct {
	// Name of the gMSA.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	Name string `json:"Name"`
	// Scope is a DNS or NetBIOS domain name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Scope string `json:"Scope"`
}

// RawHostAccountConfig is a credential spec's HostAccountConfig.
type RawHostAccountConfig struct {
	// PortableCcgVersion is the portable CCG version, "1" today.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8
	PortableCcgVersion string `json:"PortableCcgVersion"`
	// PluginGUID is the CCG plugin's COM class GUID in braces.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=38
	PluginGUID string `json:"PluginGUID"`
	// PluginInput is the plugin's input.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	PluginInput string `json:"PluginInput"`
}

// ExistingCredentialSpec names a GMSACredentialSpec made by someone else.
type ExistingCredentialSpec struct {
	// name of the GMSACredentialSpec.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a lowercase RFC 1123 subdomain: pods name credspecs exactly, so 'gmsa-WebApp1' could never be used"
	Name string `json:"name"`
}

// ServiceAccountRef names service accounts that may use the gMSA: one
// service account, or every service account of a namespace.
type ServiceAccountRef struct {
	// namespace of the service account(s).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be a Kubernetes namespace name (a lowercase RFC 1123 label)"
	Namespace string `json:"namespace"`

	// name of the service account. Without it, every service account of the
	// namespace may use the gMSA.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a Kubernetes service account name (a lowercase RFC 1123 subdomain)"
	Name string `json:"name,omitempty"`
}

// GmsaAccountStatus is what the operator observed of the account.
type GmsaAccountStatus struct {
	// observedGeneration is the metadata.generation the status describes; -1
	// until the operator first saw the object.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// credentialSpecName is the GMSACredentialSpec pods name.
	// +optional
	CredentialSpecName string `json:"credentialSpecName,omitempty"`

	// clusterRoleName is the ClusterRole that grants use of the credspec.
	// +optional
	ClusterRoleName string `json:"clusterRoleName,omitempty"`

	// boundSubjects are the subjects the RoleBindings grant use to.
	// +optional
	// +listType=atomic
	BoundSubjects []rbacv1.Subject `json:"boundSubjects,omitempty"`
}

// GmsaAccount is one Group Managed Service Account: the operator generates
// its GMSACredentialSpec (or uses an existing one), a ClusterRole allowing
// `use` of exactly that credspec, and a RoleBinding per namespace listed in
// serviceAccounts.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=gmsa
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters: it labels every object generated for the account"
// +kubebuilder:printcolumn:name="CredSpec",type=string,JSONPath=`.status.credentialSpecName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GmsaAccount struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata. Its name is the default credspec
	// name.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired gMSA and who may use it.
	// +required
	Spec GmsaAccountSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status GmsaAccountStatus `json:"status,omitempty"`
}

// GmsaAccountList is a list of GmsaAccounts.
//
// +kubebuilder:object:root=true
type GmsaAccountList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the GmsaAccounts.
	Items []GmsaAccount `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GmsaAccount{}, &GmsaAccountList{})
}
