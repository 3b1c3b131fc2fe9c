package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/controllers"
)

var ctx = context.Background()

func contoso(account string) gmsav1alpha1.CredentialSpecSource {
	return gmsav1alpha1.CredentialSpecSource{
		AccountName: account,
		Domain: &gmsav1alpha1.Domain{
			DNSName:     "contoso.com",
			NetBiosName: "CONTOSO",
			DNSTreeName: "contoso.com",
			GUID:        "244818ae-87ac-4fcd-92ec-e79e5252348a",
			SID:         "S-1-5-21-2126449477-2524075714-3094792973",
		},
	}
}

func newAccount(name string, src gmsav1alpha1.CredentialSpecSource, sas ...gmsav1alpha1.ServiceAccountRef) *gmsav1alpha1.GmsaAccount {
	return &gmsav1alpha1.GmsaAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       gmsav1alpha1.GmsaAccountSpec{CredentialSpec: src, ServiceAccounts: sas},
	}
}

func sa(ns, name string) gmsav1alpha1.ServiceAccountRef {
	return gmsav1alpha1.ServiceAccountRef{Namespace: ns, Name: name}
}

func createNamespace(name string) {
	ExpectWithOffset(1, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
}

func getCredSpec(name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(controllers.CredentialSpecGVK)
	err := k8s.Get(ctx, client.ObjectKey{Name: name}, u)
	return u, err
}

func credSpecExists(name string) func() bool {
	return func() bool { _, err := getCredSpec(name); return err == nil }
}

// mayUse asks the real API server's authorizer whether a service account
// may `use` a credspec in its namespace, as the validating webhook does.
func mayUse(ns, saName, credspec string) bool {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   fmt.Sprintf("system:serviceaccount:%s:%s", ns, saName),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Group: "windows.k8s.io", Resource: "gmsacredentialspecs", Verb: "use", Name: credspec,
		},
	}}
	ExpectWithOffset(1, k8s.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed
}

func condition(name, t string) func() *metav1.Condition {
	return func() *metav1.Condition {
		a := &gmsav1alpha1.GmsaAccount{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, a); err != nil {
			return nil
		}
		c := meta.FindStatusCondition(a.Status.Conditions, t)
		if c == nil || c.ObservedGeneration != a.Generation {
			return nil
		}
		return c
	}
}

func haveStatus(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()), WithTransform(func(c *metav1.Condition) string { return string(c.Status) + "/" + c.Reason }, Equal(string(status)+"/"+reason)))
}

func eventuallyReady(name string) {
	EventuallyWithOffset(1, condition(name, gmsav1alpha1.ConditionReady)).Should(haveStatus(metav1.ConditionTrue, gmsav1alpha1.ReasonSucceeded))
}

func getAccount(name string) *gmsav1alpha1.GmsaAccount {
	a := &gmsav1alpha1.GmsaAccount{}
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Name: name}, a)).To(Succeed())
	return a
}

func updateAccount(name string, mutate func(a *gmsav1alpha1.GmsaAccount)) {
	EventuallyWithOffset(1, func() error {
		a := &gmsav1alpha1.GmsaAccount{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, a); err != nil {
			return err
		}
		mutate(a)
		return k8s.Update(ctx, a)
	}).Should(Succeed())
}

const docsCredSpec = `
ActiveDirectoryConfig:
  GroupManagedServiceAccounts:
  - {Name: WebApp1, Scope: CONTOSO}
  - {Name: WebApp1, Scope: contoso.com}
CmsPlugins: [ActiveDirectory]
DomainJoinConfig:
  DnsName: contoso.com
  DnsTreeName: contoso.com
  Guid: 244818ae-87ac-4fcd-92ec-e79e5252348a
  MachineAccountName: WebApp1
  NetBiosName: CONTOSO
  Sid: S-1-5-21-2126449477-2524075714-3094792973
`

var _ = Describe("GmsaAccount controller", func() {
	It("generates the Kubernetes docs' credspec and the RBAC that lets exactly the listed service accounts use it", func() {
		createNamespace("docs-a")
		createNamespace("docs-b")
		acct := newAccount("webapp1", contoso("WebApp1"), sa("docs-a", "web"), sa("docs-a", "batch"), sa("docs-b", ""))
		acct.Labels = map[string]string{"app.kubernetes.io/instance": "from-git"}
		Expect(k8s.Create(ctx, acct)).To(Succeed())
		eventuallyReady("webapp1")

		By("the credspec equals, as JSON, the one on the Kubernetes GMSA page")
		cs, err := getCredSpec("webapp1")
		Expect(err).NotTo(HaveOccurred())
		got, err := json.Marshal(cs.Object["credspec"])
		Expect(err).NotTo(HaveOccurred())
		want, err := yaml.YAMLToJSON([]byte(docsCredSpec))
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(MatchJSON(want))

		By("generated objects carry the operator's labels, never the account's own")
		Expect(cs.GetLabels()).To(Equal(map[string]string{"app.kubernetes.io/managed-by": "gmsa-operator", "gmsa.io/account": "webapp1"}))
		Expect(metav1.GetControllerOf(cs).UID).To(Equal(getAccount("webapp1").UID))

		By("the ClusterRole allows use of that one credspec")
		cr := &rbacv1.ClusterRole{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "gmsa:webapp1"}, cr)).To(Succeed())
		Expect(cr.Rules).To(Equal([]rbacv1.PolicyRule{{APIGroups: []string{"windows.k8s.io"}, Resources: []string{"gmsacredentialspecs"}, Verbs: []string{"use"}, ResourceNames: []string{"webapp1"}}}))
		Expect(cr.Labels).NotTo(HaveKey("app.kubernetes.io/instance"))

		By("the API server's authorizer agrees, per service account")
		// The authorizer reads RBAC through its own informers: poll.
		Eventually(func() bool { return mayUse("docs-a", "web", "webapp1") }).Should(BeTrue())
		Eventually(func() bool { return mayUse("docs-a", "batch", "webapp1") }).Should(BeTrue())
		Expect(mayUse("docs-a", "other", "webapp1")).To(BeFalse(), "an unlisted service account")
		Expect(mayUse("docs-a", "web", "another-credspec")).To(BeFalse(), "another credspec")
		Eventually(func() bool { return mayUse("docs-b", "anyone", "webapp1") }).Should(BeTrue(), "whole-namespace grant")
		Expect(mayUse("default", "default", "webapp1")).To(BeFalse(), "a namespace that is not listed")

		By("status says what was made")
		a := getAccount("webapp1")
		Expect(a.Status.CredentialSpecName).To(Equal("webapp1"))
		Expect(a.Status.ClusterRoleName).To(Equal("gmsa:webapp1"))
		Expect(a.Status.BoundSubjects).To(ConsistOf(
			rbacv1.Subject{Kind: "ServiceAccount", Namespace: "docs-a", Name: "batch"},
			rbacv1.Subject{Kind: "ServiceAccount", Namespace: "docs-a", Name: "web"},
			rbacv1.Subject{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "system:serviceaccounts:docs-b"},
		))
		Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
		Expect(meta.FindStatusCondition(a.Status.Conditions, gmsav1alpha1.ConditionStalled)).To(BeNil())
		Expect(meta.FindStatusCondition(a.Status.Conditions, gmsav1alpha1.ConditionReconciling)).To(BeNil())

		By("an Event says what was created")
		Eventually(func() []string {
			evs := &eventsv1.EventList{}
			Expect(k8s.List(ctx, evs)).To(Succeed())
			var notes []string
			for _, e := range evs.Items {
				if e.Regarding.Kind == "GmsaAccount" && e.Regarding.Name == "webapp1" && e.Reason == "Created" {
					notes = append(notes, e.Note)
				}
			}
			return notes
		}).Should(ContainElement(And(
			ContainSubstring(`GMSACredentialSpec "webapp1"`),
			ContainSubstring(`ClusterRole "gmsa:webapp1"`),
			ContainSubstring(`RoleBinding "docs-a/gmsa:webapp1"`),
			ContainSubstring(`RoleBinding "docs-b/gmsa:webapp1"`),
		)))

		By("removing a service account from the list revokes its use")
		updateAccount("webapp1", func(a *gmsav1alpha1.GmsaAccount) {
			a.Spec.ServiceAccounts = []gmsav1alpha1.ServiceAccountRef{sa("docs-a", "web")}
		})
		Eventually(func() bool { return mayUse("docs-a", "batch", "webapp1") }).Should(BeFalse())
		Expect(mayUse("docs-a", "web", "webapp1")).To(BeTrue())
		By("and the binding of a namespace no longer listed is deleted")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: "docs-b", Name: "gmsa:webapp1"}, &rbacv1.RoleBinding{}))
		}).Should(BeTrue())
		Expect(mayUse("docs-b", "anyone", "webapp1")).To(BeFalse())
	})

	It("puts a host account into ActiveDirectoryConfig.HostAccountConfig", func() {
		src := contoso("WebApp2")
		src.HostAccount = &gmsav1alpha1.HostAccount{PluginGUID: "{CCC2A336-D7F3-4818-A213-272B7924213E}", PortableCcgVersion: "1", PluginInput: "ObjectId=abc;SecretUri=def"}
		Expect(k8s.Create(ctx, newAccount("webapp2", src, sa("default", "default")))).To(Succeed())
		eventuallyReady("webapp2")
		cs, err := getCredSpec("webapp2")
		Expect(err).NotTo(HaveOccurred())
		hac, found, err := unstructured.NestedStringMap(cs.Object, "credspec", "ActiveDirectoryConfig", "HostAccountConfig")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue())
		Expect(hac).To(Equal(map[string]string{"PortableCcgVersion": "1", "PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}", "PluginInput": "ObjectId=abc;SecretUri=def"}))
	})

	It("removes HostAccountConfig from the credspec when hostAccount is removed from the spec", func() {
		src := contoso("Ccg")
		src.HostAccount = &gmsav1alpha1.HostAccount{PluginGUID: "{CCC2A336-D7F3-4818-A213-272B7924213E}", PortableCcgVersion: "1", PluginInput: "ObjectId=abc"}
		Expect(k8s.Create(ctx, newAccount("ccg", src, sa("default", "ccg")))).To(Succeed())
		eventuallyReady("ccg")
		updateAccount("ccg", func(a *gmsav1alpha1.GmsaAccount) { a.Spec.CredentialSpec.HostAccount = nil })
		Eventually(func() bool {
			cs, err := getCredSpec("ccg")
			Expect(err).NotTo(HaveOccurred())
			_, found, _ := unstructured.NestedMap(cs.Object, "credspec", "ActiveDirectoryConfig", "HostAccountConfig")
			return found
		}, 10*time.Second).Should(BeFalse())
		eventuallyReady("ccg")
	})

	It("takes back the grant of an account that loses its credspec name to an older account", func() {
		Expect(k8s.Create(ctx, newAccount("elder", contoso("Elder"), sa("default", "elder")))).To(Succeed())
		eventuallyReady("elder")
		Expect(k8s.Create(ctx, newAccount("younger", contoso("Younger"), sa("default", "younger")))).To(Succeed())
		eventuallyReady("younger")
		Eventually(func() bool { return mayUse("default", "younger", "younger") }).Should(BeTrue())

		By("the older account now asks for the name the younger one holds")
		updateAccount("elder", func(a *gmsav1alpha1.GmsaAccount) { a.Spec.CredentialSpecName = "younger" })
		Eventually(condition("younger", gmsav1alpha1.ConditionStalled)).Should(haveStatus(metav1.ConditionTrue, gmsav1alpha1.ReasonCredentialSpecConflict))
		Eventually(func() string {
			cs, err := getCredSpec("younger")
			if err != nil {
				return ""
			}
			v, _, _ := unstructured.NestedString(cs.Object, "credspec", "DomainJoinConfig", "MachineAccountName")
			return v
		}).Should(Equal("Elder"), "the older account gets the name")
		Eventually(func() bool { return mayUse("default", "younger", "younger") }).Should(BeFalse(), "the younger account's service accounts must not use the elder's gMSA")
		Eventually(func() bool { return mayUse("default", "elder", "younger") }).Should(BeTrue())
		eventuallyReady("elder")
	})

	It("copies a raw credspec as it is given", func() {
		raw := &gmsav1alpha1.RawCredentialSpec{
			CmsPlugins: []string{"ActiveDirectory"},
			DomainJoinConfig: gmsav1alpha1.RawDomainJoinConfig{Sid: "S-1-5-21-1-2-3", MachineAccountName: "RawApp",
				Guid: "244818ae-87ac-4fcd-92ec-e79e5252348a", DnsName: "fabrikam.com", NetBiosName: "FABRIKAM"},
			ActiveDirectoryConfig: gmsav1alpha1.RawActiveDirectoryConfig{
				GroupManagedServiceAccounts: []gmsav1alpha1.RawGroupManagedServiceAccount{{Name: "RawApp", Scope: "fabrikam.com"}},
			},
		}
		Expect(k8s.Create(ctx, newAccount("rawapp", gmsav1alpha1.CredentialSpecSource{Raw: raw}, sa("default", "rawapp")))).To(Succeed())
		eventuallyReady("rawapp")
		cs, err := getCredSpec("rawapp")
		Expect(err).NotTo(HaveOccurred())
		got, _ := json.Marshal(cs.Object["credspec"])
		want, _ := json.Marshal(raw)
		Expect(got).To(MatchJSON(want))
	})

	It("binds a namespace as soon as it is created", func() {
		Expect(k8s.Create(ctx, newAccount("later", contoso("Later"), sa("not-yet", "app")))).To(Succeed())
		Eventually(condition("later", gmsav1alpha1.ConditionReady)).Should(haveStatus(metav1.ConditionTrue, gmsav1alpha1.ReasonSucceeded))
		Expect(*condition("later", gmsav1alpha1.ConditionReady)()).To(HaveField("Message", ContainSubstring("not-yet do not exist yet")))
		// No RoleBinding can exist in a namespace that does not: what can be
		// wrong here is the status claiming a grant it did not make.
		Expect(getAccount("later").Status.BoundSubjects).To(BeEmpty(), "nothing is bound in a namespace that does not exist")
		createNamespace("not-yet")
		Eventually(func() bool { return mayUse("not-yet", "app", "later") }).Should(BeTrue())
		Eventually(func() []rbacv1.Subject { return getAccount("later").Status.BoundSubjects }).Should(
			ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Namespace: "not-yet", Name: "app"}))
		Expect(*condition("later", gmsav1alpha1.ConditionReady)()).NotTo(HaveField("Message", ContainSubstring("do not exist yet")))
	})

	It("repairs drift of the credspec, the ClusterRole and a RoleBinding within seconds", func() {
		createNamespace("drift")
		Expect(k8s.Create(ctx, newAccount("drift", contoso("Drift"), sa("drift", "app")))).To(Succeed())
		eventuallyReady("drift")

		By("an edited credspec is put back")
		cs, err := getCredSpec("drift")
		Expect(err).NotTo(HaveOccurred())
		Expect(unstructured.SetNestedField(cs.Object, "EVIL", "credspec", "DomainJoinConfig", "NetBiosName")).To(Succeed())
		Expect(k8s.Update(ctx, cs)).To(Succeed())
		Eventually(func() string {
			cs, _ := getCredSpec("drift")
			v, _, _ := unstructured.NestedString(cs.Object, "credspec", "DomainJoinConfig", "NetBiosName")
			return v
		}, 10*time.Second).Should(Equal("CONTOSO"))

		By("a deleted credspec is recreated")
		Expect(k8s.Delete(ctx, cs)).To(Succeed())
		Eventually(credSpecExists("drift"), 10*time.Second).Should(BeTrue())

		By("an edited ClusterRole is put back")
		cr := &rbacv1.ClusterRole{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "gmsa:drift"}, cr)).To(Succeed())
		cr.Rules[0].ResourceNames = []string{"drift", "webapp1"}
		Expect(k8s.Update(ctx, cr)).To(Succeed())
		Eventually(func() []string {
			Expect(k8s.Get(ctx, client.ObjectKey{Name: "gmsa:drift"}, cr)).To(Succeed())
			return cr.Rules[0].ResourceNames
		}, 10*time.Second).Should(Equal([]string{"drift"}))

		By("a deleted ClusterRole is recreated")
		Expect(k8s.Delete(ctx, cr)).To(Succeed())
		Eventually(func() error { return k8s.Get(ctx, client.ObjectKey{Name: "gmsa:drift"}, &rbacv1.ClusterRole{}) }, 10*time.Second).Should(Succeed())

		By("an edited RoleBinding is put back")
		rb := &rbacv1.RoleBinding{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "drift", Name: "gmsa:drift"}, rb)).To(Succeed())
		rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Namespace: "drift", Name: "intruder"})
		Expect(k8s.Update(ctx, rb)).To(Succeed())
		Eventually(func() []rbacv1.Subject {
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "drift", Name: "gmsa:drift"}, rb)).To(Succeed())
			return rb.Subjects
		}, 10*time.Second).Should(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "drift", Name: "app"}}))

		By("a deleted RoleBinding is recreated")
		Expect(k8s.Delete(ctx, rb)).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: "drift", Name: "gmsa:drift"}, &rbacv1.RoleBinding{})
		}, 10*time.Second).Should(Succeed())
		Eventually(func() bool { return mayUse("drift", "app", "drift") }, 10*time.Second).Should(BeTrue())
	})

	It("never changes a credspec it does not own, and says whose it is", func() {
		foreign := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
			"metadata": map[string]any{"name": "handmade"},
			"credspec": map[string]any{"CmsPlugins": []any{"ActiveDirectory"}, "DomainJoinConfig": map[string]any{"DnsName": "fabrikam.com"}},
		}}
		Expect(k8s.Create(ctx, foreign, client.FieldOwner("platform-team"))).To(Succeed())
		rv := foreign.GetResourceVersion()

		acct := newAccount("handmade", contoso("Handmade"), sa("default", "default"))
		Expect(k8s.Create(ctx, acct)).To(Succeed())
		Eventually(condition("handmade", gmsav1alpha1.ConditionStalled)).Should(haveStatus(metav1.ConditionTrue, gmsav1alpha1.ReasonCredentialSpecConflict))
		c := condition("handmade", gmsav1alpha1.ConditionReady)()
		Expect(c).To(haveStatus(metav1.ConditionFalse, gmsav1alpha1.ReasonCredentialSpecConflict))
		Expect(c.Message).To(ContainSubstring(`"platform-team"`))

		Consistently(func() string {
			cs, err := getCredSpec("handmade")
			Expect(err).NotTo(HaveOccurred())
			return cs.GetResourceVersion()
		}, 2*time.Second).Should(Equal(rv), "the operator changed a credspec it does not own")
		By("and grants nobody the use of someone else's credspec")
		Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: "gmsa:handmade"}, &rbacv1.ClusterRole{}))).To(BeTrue())
		Expect(mayUse("default", "default", "handmade")).To(BeFalse())
	})

	It("never takes over a ClusterRole someone else made under its name", func() {
		theirs := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "gmsa:squatted"}}
		Expect(k8s.Create(ctx, theirs)).To(Succeed())
		Expect(k8s.Create(ctx, newAccount("squatted", contoso("Squatted"), sa("default", "default")))).To(Succeed())
		Eventually(condition("squatted", gmsav1alpha1.ConditionStalled)).Should(haveStatus(metav1.ConditionTrue, gmsav1alpha1.ReasonRBACConflict))
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "gmsa:squatted"}, theirs)).To(Succeed())
		Expect(theirs.Rules).To(BeEmpty())
		Expect(theirs.Labels).To(BeEmpty())
		Expect(theirs.OwnerReferences).To(BeEmpty())
	})

	It("never takes over a RoleBinding someone else made under its name", func() {
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "squat-rb"}})).To(Succeed())
		theirs := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gmsa:rbsquatted", Namespace: "squat-rb"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "someone", Namespace: "squat-rb"}}}
		Expect(k8s.Create(ctx, theirs)).To(Succeed())
		Expect(k8s.Create(ctx, newAccount("rbsquatted", contoso("RbSquatted"), sa("squat-rb", "app")))).To(Succeed())
		Eventually(condition("rbsquatted", gmsav1alpha1.ConditionStalled)).Should(haveStatus(metav1.ConditionTrue, gmsav1alpha1.ReasonRBACConflict))
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(theirs), theirs)).To(Succeed())
		Expect(theirs.RoleRef.Name).To(Equal("view"))
		Expect(theirs.Subjects).To(HaveLen(1))
		Expect(theirs.Subjects[0].Name).To(Equal("someone"))
		Expect(theirs.OwnerReferences).To(BeEmpty())
		Expect(mayUse("squat-rb", "app", "rbsquatted")).To(BeFalse())
	})

	It("leaves a contested credspec name to the older GmsaAccount", func() {
		Expect(k8s.Create(ctx, newAccount("first", contoso("First"), sa("default", "default")))).To(Succeed())
		eventuallyReady("first")
		second := newAccount("second", contoso("Second"), sa("default", "second"))
		second.Spec.CredentialSpecName = "first"
		Expect(k8s.Create(ctx, second)).To(Succeed())
		Eventually(condition("second", gmsav1alpha1.ConditionStalled)).Should(haveStatus(metav1.ConditionTrue, gmsav1alpha1.ReasonCredentialSpecConflict))
		Expect(condition("second", gmsav1alpha1.ConditionStalled)().Message).To(ContainSubstring(`GmsaAccount "first"`))
		cs, err := getCredSpec("first")
		Expect(err).NotTo(HaveOccurred())
		Expect(metav1.GetControllerOf(cs).Name).To(Equal("first"))
		v, _, _ := unstructured.NestedString(cs.Object, "credspec", "DomainJoinConfig", "MachineAccountName")
		Expect(v).To(Equal("First"))
		Expect(mayUse("default", "second", "first")).To(BeFalse())

		By("once the older account is gone, the newer one takes the name")
		Expect(k8s.Delete(ctx, getAccount("first"))).To(Succeed())
		Eventually(func() string {
			cs, err := getCredSpec("first")
			if err != nil {
				return ""
			}
			v, _, _ := unstructured.NestedString(cs.Object, "credspec", "DomainJoinConfig", "MachineAccountName")
			return v
		}).Should(Equal("Second"))
		eventuallyReady("second")
	})

	It("waits for a referenced credspec, becomes Ready when it appears, and never changes or deletes it", func() {
		acct := newAccount("byref", gmsav1alpha1.CredentialSpecSource{Existing: &gmsav1alpha1.ExistingCredentialSpec{Name: "external-spec"}}, sa("default", "byref"))
		Expect(k8s.Create(ctx, acct)).To(Succeed())
		Eventually(condition("byref", gmsav1alpha1.ConditionReady)).Should(haveStatus(metav1.ConditionFalse, gmsav1alpha1.ReasonCredentialSpecNotFound))
		Expect(meta.FindStatusCondition(getAccount("byref").Status.Conditions, gmsav1alpha1.ConditionStalled)).To(BeNil())

		external := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
			"metadata": map[string]any{"name": "external-spec"},
			"credspec": map[string]any{
				"CmsPlugins":            []any{"ActiveDirectory"},
				"DomainJoinConfig":      map[string]any{"DnsName": "contoso.com", "Sid": "S-1-5-21-1-2-3", "Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a"},
				"ActiveDirectoryConfig": map[string]any{"GroupManagedServiceAccounts": []any{map[string]any{"Name": "Ext", "Scope": "contoso.com"}}},
			},
		}}
		Expect(k8s.Create(ctx, external)).To(Succeed())
		rv := external.GetResourceVersion()
		eventuallyReady("byref")
		Eventually(func() bool { return mayUse("default", "byref", "external-spec") }).Should(BeTrue())

		By("deleting the account removes its RBAC but keeps the referenced credspec")
		Expect(k8s.Delete(ctx, getAccount("byref"))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: "gmsa:byref"}, &rbacv1.ClusterRole{}))
		}).Should(BeTrue())
		cs, err := getCredSpec("external-spec")
		Expect(err).NotTo(HaveOccurred())
		Expect(cs.GetResourceVersion()).To(Equal(rv))
	})

	It("renames the credspec when credentialSpecName changes, and deletes the one it no longer uses", func() {
		Expect(k8s.Create(ctx, newAccount("renamed", contoso("Renamed"), sa("default", "renamed")))).To(Succeed())
		eventuallyReady("renamed")
		updateAccount("renamed", func(a *gmsav1alpha1.GmsaAccount) { a.Spec.CredentialSpecName = "renamed-v2" })
		Eventually(credSpecExists("renamed-v2")).Should(BeTrue())
		Eventually(credSpecExists("renamed")).Should(BeFalse())
		Eventually(func() bool { return mayUse("default", "renamed", "renamed-v2") }).Should(BeTrue())
		Eventually(func() bool { return mayUse("default", "renamed", "renamed") }).Should(BeFalse())
		eventuallyReady("renamed")
		Expect(getAccount("renamed").Status.CredentialSpecName).To(Equal("renamed-v2"))
	})

	It("removes everything it generated when the GmsaAccount is deleted", func() {
		createNamespace("gone")
		Expect(k8s.Create(ctx, newAccount("doomed", contoso("Doomed"), sa("gone", "app")))).To(Succeed())
		eventuallyReady("doomed")
		Expect(k8s.Delete(ctx, getAccount("doomed"))).To(Succeed())
		Eventually(func() bool {
			_, csErr := getCredSpec("doomed")
			crErr := k8s.Get(ctx, client.ObjectKey{Name: "gmsa:doomed"}, &rbacv1.ClusterRole{})
			rbErr := k8s.Get(ctx, client.ObjectKey{Namespace: "gone", Name: "gmsa:doomed"}, &rbacv1.RoleBinding{})
			return apierrors.IsNotFound(csErr) && apierrors.IsNotFound(crErr) && apierrors.IsNotFound(rbErr)
		}).Should(BeTrue(), "the garbage collector did not remove the generated objects")
	})

	It("makes no write request when a resync finds everything as desired", func() {
		createNamespace("steady-1")
		createNamespace("steady-2")
		for i := 0; i < 5; i++ {
			name := fmt.Sprintf("steady%d", i)
			Expect(k8s.Create(ctx, newAccount(name, contoso(fmt.Sprintf("Steady%d", i)), sa("steady-1", "a"), sa("steady-1", "b"), sa("steady-2", "")))).To(Succeed())
		}
		for i := 0; i < 5; i++ {
			eventuallyReady(fmt.Sprintf("steady%d", i))
		}
		list := &gmsav1alpha1.GmsaAccountList{}
		Expect(k8s.List(ctx, list)).To(Succeed())
		// Let in-flight reconciles (garbage collection of earlier specs,
		// events) settle before counting.
		time.Sleep(2 * time.Second)

		debugWrites.Store(true)
		defer debugWrites.Store(false)
		before, beforeReconciles := writes.Load(), reconciles("gmsaaccount")
		// Force a resync of every GmsaAccount: an annotation change is an
		// event for each, without a new generation.
		for _, a := range list.Items {
			patch := client.MergeFrom(a.DeepCopy())
			a.Annotations = map[string]string{"test/resync": time.Now().Format(time.RFC3339Nano)}
			Expect(k8s.Patch(ctx, &a, patch)).To(Succeed())
		}
		Eventually(func() float64 { return reconciles("gmsaaccount") - beforeReconciles }).Should(BeNumerically(">=", len(list.Items)))
		time.Sleep(time.Second)
		Expect(writes.Load()-before).To(BeZero(), "a reconcile that found everything as desired wrote to the API server")
		GinkgoWriter.Printf("resynced %d GmsaAccounts with %d write requests\n", len(list.Items), writes.Load()-before)
	})
})
