package credspeccrd

import "testing"

func TestCRD(t *testing.T) {
	crd, err := CRD()
	if err != nil {
		t.Fatal(err)
	}
	if crd.Name != Name || crd.Spec.Group != Group || crd.Spec.Names.Kind != Kind || crd.Spec.Names.Plural != Resource {
		t.Fatalf("unexpected identity: %s %s %s %s", crd.Name, crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Names.Plural)
	}
	if crd.Spec.Scope != "Cluster" {
		t.Errorf("scope = %s, want Cluster", crd.Spec.Scope)
	}
	if crd.Annotations["api-approved.kubernetes.io"] == "" {
		t.Error("windows.k8s.io is a protected group: the api-approved.kubernetes.io annotation is required")
	}
	if Revision(crd) < 1 {
		t.Errorf("revision = %d, want >= 1", Revision(crd))
	}
	var storage []string
	served := map[string]bool{}
	for _, v := range crd.Spec.Versions {
		served[v.Name] = v.Served
		if v.Storage {
			storage = append(storage, v.Name)
		}
		cs := v.Schema.OpenAPIV3Schema.Properties["credspec"]
		for _, f := range []string{"CmsPlugins", "DomainJoinConfig", "ActiveDirectoryConfig"} {
			if _, ok := cs.Properties[f]; !ok {
				t.Errorf("%s: credspec schema lacks %s", v.Name, f)
			}
		}
		dj := cs.Properties["DomainJoinConfig"]
		for _, f := range []string{"Sid", "MachineAccountName", "Guid", "DnsTreeName", "DnsName", "NetBiosName"} {
			if _, ok := dj.Properties[f]; !ok {
				t.Errorf("%s: DomainJoinConfig lacks %s", v.Name, f)
			}
		}
		hac := cs.Properties["ActiveDirectoryConfig"].Properties["HostAccountConfig"]
		for _, f := range []string{"PortableCcgVersion", "PluginGUID", "PluginInput"} {
			if _, ok := hac.Properties[f]; !ok {
				t.Errorf("%s: HostAccountConfig lacks %s", v.Name, f)
			}
		}
	}
	if len(storage) != 1 || storage[0] != "v1" {
		t.Errorf("storage versions = %v, want [v1]", storage)
	}
	if !served["v1"] || !served["v1alpha1"] {
		t.Errorf("served = %v, want v1 and v1alpha1", served)
	}
	// A copy must not share memory with the next caller's.
	crd.Name = "changed"
	again, _ := CRD()
	if again.Name != Name {
		t.Error("CRD() returned shared state")
	}
}
