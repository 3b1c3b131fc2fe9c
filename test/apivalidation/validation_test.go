package apivalidation_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

// object decodes YAML as a user would write it (numbers stay integers).
func object(doc string) *unstructured.Unstructured {
	j, err := yaml.YAMLToJSON([]byte(doc))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{}
	ExpectWithOffset(1, u.UnmarshalJSON(j)).To(Succeed())
	return u
}

const validDomain = `
    domain:
      dnsName: contoso.com
      netBiosName: CONTOSO
      guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
      sid: S-1-5-21-2126449477-2524075714-3094792973`

// account returns a GmsaAccount whose credentialSpec and serviceAccounts
// are the given YAML fragments (indented for spec).
func account(name, credentialSpec, rest string) string {
	return `apiVersion: gmsa.io/v1alpha1
kind: GmsaAccount
metadata:
  name: ` + name + `
spec:
` + rest + `
  credentialSpec:` + credentialSpec + "\n"
}

const oneSA = `
  serviceAccounts:
  - {namespace: default, name: default}`

// generated is a valid generated credentialSpec with the given extra lines.
func generated(extra string) string {
	return `
    accountName: WebApp1` + validDomain + extra
}

// withDomain is a generated credentialSpec whose domain has one field
// replaced (or removed, with an empty value).
func withDomain(field, value string) string {
	lines := []string{}
	for _, l := range strings.Split(validDomain, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), field+":") {
			if value == "" {
				continue
			}
			l = "      " + field + ": " + value
		}
		lines = append(lines, l)
	}
	return `
    accountName: WebApp1` + strings.Join(lines, "\n")
}

func stack(spec string) string {
	return `apiVersion: gmsa.io/v1alpha1
kind: GmsaStack
metadata:
  name: bad
spec:
` + spec + "\n"
}

const hostAccountOK = `
    hostAccount:
      pluginGUID: "{CCC2A336-D7F3-4818-A213-272B7924213E}"
      portableCcgVersion: "1"
      pluginInput: "ObjectId=abc;SecretUri=https://vault.invalid/secret"`

var _ = Describe("GmsaStack and GmsaAccount validation", func() {
	ctx := context.Background()

	type badCase struct {
		doc     string
		field   string // the field path the error must name
		message string // a fragment of the message the user reads
	}

	DescribeTable("rejects bad input with an error that names the field",
		func(c badCase) {
			obj := object(c.doc)
			err := env.Client.Create(ctx, obj, client.FieldValidation("Strict"))
			Expect(err).To(HaveOccurred(), "the API server accepted a bad object:\n%s", c.doc)
			GinkgoWriter.Printf("rejected: %v\n", err)
			Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(), "not a validation error: %v", err)
			Expect(err.Error()).To(ContainSubstring(c.field))
			Expect(err.Error()).To(ContainSubstring(c.message))
			// Nothing was created.
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(obj.GroupVersionKind())
			Expect(apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got))).To(BeTrue())
		},

		// The Kubernetes docs trap: credspec names are matched exactly, so an
		// uppercase name could never be used by a pod.
		Entry("credspec name with capitals (gmsa-WebApp1)", badCase{
			account("webapp1", generated(""), `  credentialSpecName: gmsa-WebApp1`+oneSA),
			"spec.credentialSpecName", "lowercase RFC 1123 subdomain"}),
		Entry("GmsaAccount named gmsa-WebApp1 (its name is the default credspec name)", badCase{
			account("gmsa-WebApp1", generated(""), oneSA),
			"metadata.name", "lowercase RFC 1123 subdomain"}),
		Entry("GmsaAccount name over 63 characters", badCase{
			account(strings.Repeat("a", 64), generated(""), oneSA),
			"metadata.name", "at most 63 characters"}),
		Entry("credspec name with an underscore", badCase{
			account("a1", generated(""), `  credentialSpecName: gmsa_webapp1`+oneSA),
			"spec.credentialSpecName", "lowercase RFC 1123 subdomain"}),
		Entry("SID with too few sub-authorities", badCase{
			account("a2", withDomain("sid", "S-1-5-21-2126449477-2524075714"), oneSA),
			"spec.credentialSpec.domain.sid", "S-1-5-21-a-b-c"}),
		Entry("SID that is not a domain SID", badCase{
			account("a3", withDomain("sid", "S-1-5-32-544"), oneSA),
			"spec.credentialSpec.domain.sid", "S-1-5-21-a-b-c"}),
		Entry("GUID that is not a GUID", badCase{
			account("a4", withDomain("guid", "244818ae-87ac-4fcd-92ec"), oneSA),
			"spec.credentialSpec.domain.guid", "must be a GUID"}),
		Entry("GUID in braces", badCase{
			account("a5", withDomain("guid", `"{244818ae-87ac-4fcd-92ec-e79e5252348a}"`), oneSA),
			"spec.credentialSpec.domain.guid", ""}),
		Entry("single-label DNS name", badCase{
			account("a6", withDomain("dnsName", "contoso"), oneSA),
			"spec.credentialSpec.domain.dnsName", "DNS domain name"}),
		Entry("DNS name with an empty label", badCase{
			account("a7", withDomain("dnsName", "contoso..com"), oneSA),
			"spec.credentialSpec.domain.dnsName", "DNS domain name"}),
		Entry("DNS tree name starting with a hyphen", badCase{
			account("a8", generated("\n      dnsTreeName: -contoso.com"), oneSA),
			"spec.credentialSpec.domain.dnsTreeName", "DNS domain name"}),
		Entry("NetBIOS name of 16 characters", badCase{
			account("a9", withDomain("netBiosName", "CONTOSOCORPORATE"), oneSA),
			"spec.credentialSpec.domain.netBiosName", "15"}),
		Entry("NetBIOS name with a space", badCase{
			account("a10", withDomain("netBiosName", `"CON TOSO"`), oneSA),
			"spec.credentialSpec.domain.netBiosName", "NetBIOS"}),
		Entry("domain without its SID", badCase{
			account("a11", withDomain("sid", ""), oneSA),
			"spec.credentialSpec.domain.sid", "Required"}),
		Entry("account name with the trailing $", badCase{
			account("a12", `
    accountName: WebApp1$`+validDomain, oneSA),
			"spec.credentialSpec.accountName", "without the trailing $"}),
		Entry("account name of 16 characters", badCase{
			account("a13", `
    accountName: WebApplication01`+validDomain, oneSA),
			"spec.credentialSpec.accountName", "15"}),
		Entry("no credential spec source", badCase{
			account("a14", ` {}`, oneSA),
			"spec.credentialSpec", "exactly one of accountName (with domain), raw or existing"}),
		Entry("two credential spec sources", badCase{
			account("a15", generated(`
    existing: {name: webapp1}`), oneSA),
			"spec.credentialSpec", "exactly one of accountName (with domain), raw or existing"}),
		Entry("account name without a domain", badCase{
			account("a16", `
    accountName: WebApp1`, oneSA),
			"spec.credentialSpec.domain", "domain is required with accountName"}),
		Entry("host account with an existing credspec", badCase{
			account("a17", `
    existing: {name: webapp1}
    hostAccount: {pluginGUID: "{CCC2A336-D7F3-4818-A213-272B7924213E}", portableCcgVersion: "1", pluginInput: x}`, oneSA),
			"spec.credentialSpec.hostAccount", "hostAccount may only be set with accountName"}),
		Entry("raw credspec without DomainJoinConfig", badCase{
			account("a18", `
    raw:
      CmsPlugins: [ActiveDirectory]
      ActiveDirectoryConfig: {GroupManagedServiceAccounts: [{Name: WebApp1, Scope: contoso.com}]}`, oneSA),
			"spec.credentialSpec.raw.DomainJoinConfig", "Required"}),
		Entry("raw credspec with an empty DomainJoinConfig", badCase{
			account("a18b", `
    raw:
      CmsPlugins: [ActiveDirectory]
      DomainJoinConfig: {}
      ActiveDirectoryConfig: {GroupManagedServiceAccounts: [{Name: WebApp1, Scope: contoso.com}]}`, oneSA),
			"spec.credentialSpec.raw.DomainJoinConfig.Sid", "Required"}),
		Entry("raw credspec with a bad SID", badCase{
			account("a18c", `
    raw:
      CmsPlugins: [ActiveDirectory]
      DomainJoinConfig: {Sid: S-1-5-32-544, MachineAccountName: WebApp1, Guid: 244818ae-87ac-4fcd-92ec-e79e5252348a, DnsName: contoso.com, NetBiosName: CONTOSO}
      ActiveDirectoryConfig: {GroupManagedServiceAccounts: [{Name: WebApp1, Scope: contoso.com}]}`, oneSA),
			"spec.credentialSpec.raw.DomainJoinConfig.Sid", "S-1-5-21-a-b-c"}),
		Entry("raw credspec with an unknown key (strict field validation)", badCase{
			account("a18d", `
    raw:
      CmsPlugins: [ActiveDirectory]
      DomainJoinConfig: {Sid: S-1-5-21-1-2-3, MachineAccountName: WebApp1, Guid: 244818ae-87ac-4fcd-92ec-e79e5252348a, DnsName: contoso.com, NetBiosName: CONTOSO, DnsNmae: typo.com}
      ActiveDirectoryConfig: {GroupManagedServiceAccounts: [{Name: WebApp1, Scope: contoso.com}]}`, oneSA),
			"DnsNmae", "unknown field"}),
		Entry("existing credspec named with capitals", badCase{
			account("a19", `
    existing: {name: gmsa-WebApp1}`, oneSA),
			"spec.credentialSpec.existing.name", "lowercase RFC 1123 subdomain"}),
		Entry("credentialSpecName together with an existing credspec", badCase{
			account("a20", `
    existing: {name: webapp1}`, `  credentialSpecName: other`+oneSA),
			"spec.credentialSpecName", "cannot be combined with credentialSpec.existing"}),
		Entry("empty service account list", badCase{
			account("a21", generated(""), `  serviceAccounts: []`),
			"spec.serviceAccounts", "at least 1 item"}),
		Entry("no service account list", badCase{
			account("a22", generated(""), ""),
			"spec.serviceAccounts", "Required"}),
		Entry("service account namespace that is not a namespace name", badCase{
			account("a23", generated(""), `  serviceAccounts:
  - {namespace: Team_A}`),
			"spec.serviceAccounts[0].namespace", "namespace name"}),
		Entry("service account name with a space", badCase{
			account("a24", generated(""), `  serviceAccounts:
  - {namespace: default, name: default}
  - {namespace: team-a, name: "web app"}`),
			"spec.serviceAccounts[1].name", "service account name"}),
		Entry("service account without a namespace", badCase{
			account("a25", generated(""), `  serviceAccounts:
  - {name: default}`),
			"spec.serviceAccounts[0].namespace", "Required"}),
		Entry("CCG plugin GUID without braces", badCase{
			account("a26", generated(strings.Replace(hostAccountOK, `"{CCC2A336-D7F3-4818-A213-272B7924213E}"`, "CCC2A336-D7F3-4818-A213-272B7924213E", 1)), oneSA),
			"spec.credentialSpec.hostAccount.pluginGUID", "GUID in braces"}),
		Entry("portable CCG version that is not a number", badCase{
			account("a27", generated(strings.Replace(hostAccountOK, `portableCcgVersion: "1"`, `portableCcgVersion: "v1"`, 1)), oneSA),
			"spec.credentialSpec.hostAccount.portableCcgVersion", "version number"}),
		Entry("host account without plugin input", badCase{
			account("a28", generated(strings.Replace(hostAccountOK, `pluginInput: "ObjectId=abc;SecretUri=https://vault.invalid/secret"`, "", 1)), oneSA),
			"spec.credentialSpec.hostAccount.pluginInput", "Required"}),
		Entry("a misspelt field (strict field validation, as kubectl does)", badCase{
			account("a29", generated(""), `  serviceAcounts: []`+oneSA),
			"spec.serviceAcounts", "unknown field"}),

		Entry("stack: an unknown admission mode", badCase{stack(`  admission: {mode: Both}`),
			"spec.admission.mode", `supported values: "Webhook", "Policy", "Auto"`}),
		Entry("stack: Policy mode with a random hostname", badCase{stack("  admission: {mode: Policy}\n  webhook: {randomHostname: true}"),
			"spec.admission.mode", "Policy mode cannot set a random hostname"}),
		Entry("stack: zero replicas", badCase{stack(`  webhook: {replicas: 0}`),
			"spec.webhook.replicas", "greater than or equal to 1"}),
		Entry("stack: 100 replicas", badCase{stack(`  webhook: {replicas: 100}`),
			"spec.webhook.replicas", "less than or equal to 50"}),
		Entry("stack: unknown failurePolicy", badCase{stack(`  webhook: {failurePolicy: Sometimes}`),
			"spec.webhook.failurePolicy", `supported values: "Fail", "Ignore"`}),
		Entry("stack: timeout over 30 seconds", badCase{stack(`  webhook: {timeoutSeconds: 31}`),
			"spec.webhook.timeoutSeconds", "less than or equal to 30"}),
		Entry("stack: unknown log level", badCase{stack(`  webhook: {logLevel: verbose}`),
			"spec.webhook.logLevel", "supported values"}),
		Entry("stack: renewBefore longer than the default duration", badCase{stack(`  certificates: {renewBefore: 9000h}`),
			"spec.certificates.renewBefore", "renewBefore must be shorter than duration"}),
		Entry("stack: renewBefore longer than duration", badCase{stack(`  certificates: {duration: 1h, renewBefore: 2h}`),
			"spec.certificates.renewBefore", "renewBefore must be shorter than duration"}),
		Entry("stack: duration that is not a duration", badCase{stack(`  certificates: {duration: 1 year}`),
			"spec.certificates.duration", "should match"}),
		Entry("stack: duration under three minutes", badCase{stack(`  certificates: {duration: 1m}`),
			"spec.certificates.duration", "must be at least 3m"}),
		Entry("stack: renewBefore shorter than a default kubelet needs", badCase{stack(`  certificates: {duration: 1h, renewBefore: 30s}`),
			"spec.certificates.renewBefore", "must be at least 2m: a kubelet with default settings"}),
		Entry("stack: CertManager with a duration cert-manager refuses", badCase{stack(`  certificates: {source: CertManager, duration: 30m}`),
			"spec.certificates.duration", "at least 1h with source CertManager"}),
		Entry("stack: CertManager with a renewBefore cert-manager refuses", badCase{stack(`  certificates: {source: CertManager, duration: 2h, renewBefore: 2m}`),
			"spec.certificates.renewBefore", "at least 5m with source CertManager"}),
		Entry("stack: unknown certificate source", badCase{stack(`  certificates: {source: Vault}`),
			"spec.certificates.source", `supported values: "SelfSigned", "CertManager"`}),
		Entry("stack: certManager settings with self-signed certificates", badCase{stack(`  certificates: {certManager: {issuerRef: {name: ca}}}`),
			"spec.certificates.certManager", "only be set when certificates.source is CertManager"}),
		Entry("stack: issuer of an unknown kind", badCase{stack(`  certificates: {source: CertManager, certManager: {issuerRef: {name: ca, kind: VaultIssuer}}}`),
			"spec.certificates.certManager.issuerRef.kind", "supported values"}),
		Entry("stack: issuer without a name", badCase{stack(`  certificates: {source: CertManager, certManager: {issuerRef: {kind: Issuer}}}`),
			"spec.certificates.certManager.issuerRef.name", "Required"}),
		Entry("stack: namespace that is not a namespace name", badCase{stack(`  namespace: GMSA_System`),
			"spec.namespace", "lowercase RFC 1123 label"}),
		Entry("stack: kube-system as the webhook namespace", badCase{stack(`  namespace: kube-system`),
			"spec.namespace", "namespace of its own"}),
		Entry("stack: unknown CRD policy", badCase{stack(`  credentialSpecCRD: {policy: Delete}`),
			"spec.credentialSpecCRD.policy", `supported values: "Manage", "Adopt", "External"`}),
		Entry("stack: image with a space", badCase{stack(`  webhook: {image: "registry.invalid/gmsa webhook:1"}`),
			"spec.webhook.image", "without spaces"}),
		Entry("stack: namespaceSelector with two requirements (their negation is no selector)", badCase{stack(`  webhook: {namespaceSelector: {matchLabels: {team: a, tier: b}}}`),
			"spec.webhook.namespaceSelector", "give exactly one label or one expression"}),
	)

	It("accepts every sample in config/samples", func() {
		root, err := harness.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		files, err := filepath.Glob(filepath.Join(root, "config", "samples", "gmsa_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		for _, f := range files {
			b, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			obj := object(string(b))
			Expect(env.Client.Create(ctx, obj, client.FieldValidation("Strict"), client.DryRunAll)).To(Succeed(), f)
		}
	})

	DescribeTable("accepts valid variants",
		func(doc string) {
			Expect(env.Client.Create(ctx, object(doc), client.FieldValidation("Strict"), client.DryRunAll)).To(Succeed())
		},
		Entry("a host account for non-domain-joined nodes", account("ok1", generated(hostAccountOK), oneSA)),
		Entry("a raw credspec", account("ok2", `
    raw:
      CmsPlugins: [ActiveDirectory]
      DomainJoinConfig: {Sid: S-1-5-21-1-2-3, MachineAccountName: WebApp1, Guid: 244818ae-87ac-4fcd-92ec-e79e5252348a, DnsTreeName: contoso.com, DnsName: contoso.com, NetBiosName: CONTOSO}
      ActiveDirectoryConfig: {GroupManagedServiceAccounts: [{Name: WebApp1, Scope: contoso.com}, {Name: WebApp1, Scope: CONTOSO}]}`, oneSA)),
		Entry("an existing credspec, whole namespaces", account("ok3", `
    existing: {name: gmsa-webapp1}`, `  serviceAccounts:
  - {namespace: team-a}
  - {namespace: team-b}`)),
		Entry("a stack with every field set", stack(`  namespace: gmsa-webhook
  credentialSpecCRD: {policy: Adopt}
  webhook:
    image: registry.invalid/gmsa-webhook:v1.0.0
    replicas: 3
    failurePolicy: Ignore
    timeoutSeconds: 5
    namespaceSelector: {matchLabels: {gmsa: "off"}}
    randomHostname: true
    logLevel: debug
    resources: {requests: {cpu: 10m, memory: 32Mi}}
    nodeSelector: {pool: system}
    tolerations: [{key: dedicated, operator: Exists}]
    priorityClassName: system-cluster-critical
  certificates:
    source: CertManager
    duration: 2160h
    renewBefore: 360h
    certManager: {issuerRef: {name: corp-ca, kind: ClusterIssuer}}`)),
		Entry("CertManager at cert-manager's shortest lifetimes", stack(`  certificates: {source: CertManager, duration: 1h, renewBefore: 5m}`)),
		Entry("SelfSigned below cert-manager's minimums (the operator issues those itself)", stack(`  certificates: {duration: 30m, renewBefore: 2m}`)),
	)

	Describe("round trip", func() {
		It("adds no field to the spec of a minimal GmsaStack or GmsaAccount", func() {
			for _, doc := range []string{
				stack(`  {}`),
				account("minimal", generated(""), oneSA),
			} {
				sent := object(strings.Replace(doc, "name: bad", "name: minimal", 1))
				Expect(env.Client.Create(ctx, sent.DeepCopy())).To(Succeed())
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(sent.GroupVersionKind())
				Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(sent), got)).To(Succeed())
				Expect(got.Object["spec"]).To(Equal(sent.Object["spec"]), "the API server changed the spec of %s", sent.GetKind())
				// A new object says the operator has not seen it yet.
				og, found, err := unstructured.NestedInt64(got.Object, "status", "observedGeneration")
				Expect(err).NotTo(HaveOccurred())
				Expect(found).To(BeTrue(), "status.observedGeneration missing")
				Expect(og).To(Equal(int64(-1)))
			}
		})
	})
})
