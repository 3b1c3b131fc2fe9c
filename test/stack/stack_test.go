package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gmsav1alpha1 "github.com/gmsa-operator/gmsa-operator/api/v1alpha1"
	"github.com/gmsa-operator/gmsa-operator/internal/certs"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/stack"
	"github.com/gmsa-operator/gmsa-operator/test/harness"
)

const appNS = "apps"

// The credspec JSON the Kubernetes documentation shows for WebApp1.
const webapp1JSON = `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"Sid":"S-1-5-21-2126449477-2524075714-3094792973","MachineAccountName":"WebApp1","Guid":"244818ae-87ac-4fcd-92ec-e79e5252348a","DnsTreeName":"contoso.com","DnsName":"contoso.com","NetBiosName":"CONTOSO"},"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":"WebApp1","Scope":"CONTOSO"},{"Name":"WebApp1","Scope":"contoso.com"}]}}`

func installOldCRD() {
	crd, err := credspeccrd.CRD()
	Expect(err).NotTo(HaveOccurred())
	crd.Annotations[credspeccrd.RevisionAnnotation] = "0"
	crd.Labels = map[string]string{gmsav1alpha1.LabelManagedBy: gmsav1alpha1.ManagedByValue}
	// The older revision served v1 only.
	versions := crd.Spec.Versions[:0]
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1" {
			versions = append(versions, v)
		}
	}
	crd.Spec.Versions = versions
	Expect(k8s.Create(context.Background(), crd)).To(Succeed())
	Eventually(func(g Gomega) {
		live := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: credspeccrd.Name}, live)).To(Succeed())
		g.Expect(live.Status.Conditions).To(ContainElement(HaveField("Type", apiextensionsv1.Established)))
	}).Should(Succeed())
	legacy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec",
		"metadata": map[string]any{"name": "legacy"},
		"credspec": map[string]any{"CmsPlugins": []any{"ActiveDirectory"}},
	}}
	Eventually(func() error { return k8s.Create(context.Background(), legacy) }).Should(Succeed())
}

func getStack(name string) *gmsav1alpha1.GmsaStack {
	s := &gmsav1alpha1.GmsaStack{}
	ExpectWithOffset(1, k8s.Get(context.Background(), client.ObjectKey{Name: name}, s)).To(Succeed())
	return s
}

// updateStack changes a GmsaStack's spec as a person would, reading it
// again when the operator wrote its status in between.
func updateStack(name string, change func(s *gmsav1alpha1.GmsaStack)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := getStack(name)
		change(s)
		return k8s.Update(context.Background(), s)
	})).To(Succeed())
}

// haveCondition matches a GmsaStack whose condition t has the status and
// reason.
func haveCondition(t string, status metav1.ConditionStatus, reason string) func(g Gomega, s *gmsav1alpha1.GmsaStack) {
	return func(g Gomega, s *gmsav1alpha1.GmsaStack) {
		c := meta.FindStatusCondition(s.Status.Conditions, t)
		g.Expect(c).NotTo(BeNil(), "no %s condition in %+v", t, s.Status.Conditions)
		g.Expect(c.Status).To(Equal(status), "%s: %s %s", t, c.Reason, c.Message)
		if reason != "" {
			g.Expect(c.Reason).To(Equal(reason), "%s: %s", t, c.Message)
		}
	}
}

func eventuallyStack(name string, checks ...func(Gomega, *gmsav1alpha1.GmsaStack)) *gmsav1alpha1.GmsaStack {
	var s *gmsav1alpha1.GmsaStack
	EventuallyWithOffset(1, func(g Gomega) {
		s = &gmsav1alpha1.GmsaStack{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: name}, s)).To(Succeed())
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		for _, c := range checks {
			c(g, s)
		}
	}).Should(Succeed())
	return s
}

func gmsaPod(name, sa, credspec string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appNS},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			SecurityContext:    &corev1.PodSecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{GMSACredentialSpecName: &credspec}},
			Containers:         []corev1.Container{{Name: "main", Image: "windows/servercore:ltsc2022"}},
			NodeSelector:       map[string]string{corev1.LabelOSStable: "windows"},
		},
	}
}

func plainPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appNS},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "windows/servercore:ltsc2022"}}},
	}
}

func webhookConfigs() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: stack.WebhookName}, m); err != nil {
		return nil, nil, err
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: stack.WebhookName}, v); err != nil {
		return nil, nil, err
	}
	return m, v, nil
}

// admissionLoad sends gMSA pods (dry run) from 2 workers until the
// returned function is called; that function asserts that more than 50
// were sent and none failed, and prints the figures.
func admissionLoad(what string) func() {
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				err := k8s.Create(ctx, gmsaPod(fmt.Sprintf("%s-%d-%d", what, w, i), "allowed", "webapp1"), client.DryRunAll)
				if ctx.Err() != nil {
					return
				}
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		GinkgoWriter.Printf("%s: %d admissions, %d failed\n", what, sent.Load(), failed.Load())
		ExpectWithOffset(1, sent.Load()).To(BeNumerically(">", 50))
		ExpectWithOffset(1, failed.Load()).To(BeZero(), "first failure: %v", firstErr.Load())
	}
}

// configDeletions counts DELETED events of the webhook configurations
// until stop is called.
func configDeletions() (count func() int64, stop func()) {
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range []func() (watch.Interface, error){
		func() (watch.Interface, error) {
			return clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Watch(ctx, metav1.ListOptions{})
		},
		func() (watch.Interface, error) {
			return clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Watch(ctx, metav1.ListOptions{})
		},
	} {
		wi, err := w()
		Expect(err).NotTo(HaveOccurred())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer wi.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case e, ok := <-wi.ResultChan():
					if !ok {
						return
					}
					if e.Type == watch.Deleted {
						n.Add(1)
					}
				}
			}
		}()
	}
	return n.Load, func() { cancel(); wg.Wait() }
}

// The story is told in nested containers, which run in the order written
// (Ginkgo shuffles only top-level containers); each ensures what it needs, so
// that one failure does not skip every later spec.
var _ = Describe("a GmsaStack", func() {
	ctx := context.Background()

	Describe("installed from the samples", Ordered, func() {
		It("installs the whole stack and becomes Ready, upgrading the older CRD in place", func() {
			By("applying a GmsaStack with an empty spec, as in config/samples")
			sample, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "gmsa_v1alpha1_gmsastack.yaml"))
			Expect(err).NotTo(HaveOccurred())
			s := &gmsav1alpha1.GmsaStack{}
			Expect(yaml.UnmarshalStrict(sample, s)).To(Succeed())
			// What the stack says while it comes up, polled every 50 ms.
			reasons := map[string]bool{}
			var reasonsMu sync.Mutex
			watching, stopWatching := context.WithCancel(ctx)
			go func() {
				defer GinkgoRecover()
				for watching.Err() == nil {
					st := &gmsav1alpha1.GmsaStack{}
					if k8s.Get(watching, client.ObjectKey{Name: "default"}, st) == nil {
						if c := meta.FindStatusCondition(st.Status.Conditions, gmsav1alpha1.ConditionWebhookAvailable); c != nil {
							reasonsMu.Lock()
							reasons[c.Reason] = true
							reasonsMu.Unlock()
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
			Expect(k8s.Create(ctx, s)).To(Succeed())

			s = eventuallyStack("default",
				haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, gmsav1alpha1.ReasonSucceeded),
				haveCondition(gmsav1alpha1.ConditionCRDEstablished, metav1.ConditionTrue, ""),
				haveCondition(gmsav1alpha1.ConditionCertificateReady, metav1.ConditionTrue, ""),
				haveCondition(gmsav1alpha1.ConditionWebhookAvailable, metav1.ConditionTrue, ""),
				haveCondition(gmsav1alpha1.ConditionAdmissionConfigured, metav1.ConditionTrue, ""))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReconciling)).To(BeNil())
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionStalled)).To(BeNil())
			Expect(s.Status.Image).To(Equal(operatorImage))
			Expect(s.Status.ReadyReplicas).To(BeEquivalentTo(2))
			Expect(s.Status.Namespace).To(Equal(namespace))
			Expect(s.Status.CertificateNotAfter).NotTo(BeNil())
			Expect(s.Status.CertificateNotAfter.Time).To(BeTemporally("~", time.Now().Add(stack.DefaultDuration), time.Hour))
			stopWatching()

			By("the webhook was registered only once kube-controller-manager's EndpointSlice listed a ready endpoint, and kube-proxy had time to route it")
			reasonsMu.Lock()
			Expect(reasons).To(HaveKey(gmsav1alpha1.ReasonWaitingForEndpoints), "reasons seen: %v", reasons)
			reasonsMu.Unlock()
			slices := &discoveryv1.EndpointSliceList{}
			Expect(k8s.List(ctx, slices, client.InNamespace(namespace), client.MatchingLabels{discoveryv1.LabelServiceName: stack.WebhookName})).To(Succeed())
			Expect(slices.Items).NotTo(BeEmpty())
			Expect(slices.Items[0].Endpoints).NotTo(BeEmpty())

			By("the CRD is upgraded in place (v1alpha1 served again, revision 1) and the existing credspec survived")
			crd := &apiextensionsv1.CustomResourceDefinition{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: credspeccrd.Name}, crd)).To(Succeed())
			Expect(credspeccrd.Revision(crd)).To(Equal(1))
			Expect(crd.Spec.Versions).To(HaveLen(2))
			Expect(crd.OwnerReferences).To(BeEmpty(), "the CRD must never be garbage collected with the stack")
			legacy := &unstructured.Unstructured{}
			legacy.SetAPIVersion("windows.k8s.io/v1")
			legacy.SetKind("GMSACredentialSpec")
			Expect(k8s.Get(ctx, client.ObjectKey{Name: "legacy"}, legacy)).To(Succeed())

			By("the webhook's RBAC is exactly get/list/watch credspecs and create localsubjectaccessreviews")
			for _, check := range []struct {
				verb, group, resource string
				allowed               bool
			}{
				{"list", "windows.k8s.io", "gmsacredentialspecs", true},
				{"watch", "windows.k8s.io", "gmsacredentialspecs", true},
				{"create", "authorization.k8s.io", "localsubjectaccessreviews", true},
				{"create", "windows.k8s.io", "gmsacredentialspecs", false},
				{"use", "windows.k8s.io", "gmsacredentialspecs", false},
				{"get", "", "secrets", false},
			} {
				Expect(canI(check.verb, check.group, check.resource)).To(Equal(check.allowed), "%s %s.%s", check.verb, check.resource, check.group)
			}

			By("the Deployment runs the operator's own image as /webhook, non-root, read-only, on Linux nodes")
			dep := &appsv1.Deployment{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}, dep)).To(Succeed())
			c := dep.Spec.Template.Spec.Containers[0]
			Expect(c.Image).To(Equal(operatorImage))
			Expect(c.Command).To(Equal([]string{"/webhook"}))
			Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
			Expect(*dep.Spec.Template.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
			Expect(dep.Spec.Template.Spec.NodeSelector).To(HaveKeyWithValue(corev1.LabelOSStable, "linux"))

			By("the webhook configurations trust the operator's CA and skip the webhook's own namespace")
			m, v, err := webhookConfigs()
			Expect(err).NotTo(HaveOccurred())
			ca := &corev1.Secret{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.CASecretName}, ca)).To(Succeed())
			Expect(m.Webhooks[0].ClientConfig.CABundle).To(Equal(ca.Data[stack.CACertKey]))
			Expect(v.Webhooks[0].ClientConfig.CABundle).To(Equal(ca.Data[stack.CACertKey]))
			Expect(*m.Webhooks[0].FailurePolicy).To(Equal(admissionregistrationv1.Fail))
			Expect(m.Webhooks[0].MatchConditions).To(HaveLen(1))
		})

		It("makes no write when a reconcile finds everything as desired", func() {
			Consistently(func() int { return len(requests.Writes()) }).WithTimeout(3*time.Second).WithPolling(time.Second).
				Should(Equal(len(requests.Writes())), "the manager keeps writing to a stack that is Ready")
			before, reconciled := requests.Writes(), reconciles()
			By("touching an owned object in a way that changes nothing the operator sets: a reconcile runs")
			svc := &corev1.Service{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}, svc)).To(Succeed())
			if svc.Annotations == nil {
				svc.Annotations = map[string]string{}
			}
			svc.Annotations["example.invalid/owner"] = "platform"
			Expect(k8s.Update(ctx, svc)).To(Succeed())
			Eventually(reconciles).Should(BeNumerically(">", reconciled))
			Consistently(func() []string { return requests.Writes()[len(before):] }).WithTimeout(2 * time.Second).Should(BeEmpty())
		})

		It("admits a pod naming a credspec with the JSON filled in, and denies an unlisted service account", func() {
			ensureApp()

			pod := gmsaPod("webapp", "allowed", "webapp1")
			Eventually(func() error { return k8s.Create(ctx, pod) }).Should(Succeed())
			Expect(pod.Spec.SecurityContext.WindowsOptions.GMSACredentialSpec).NotTo(BeNil())
			Expect(*pod.Spec.SecurityContext.WindowsOptions.GMSACredentialSpec).To(MatchJSON(webapp1JSON))

			err := k8s.Create(ctx, gmsaPod("intruder", "other", "webapp1"))
			Expect(err).To(MatchError(ContainSubstring(`admission webhook "validate.gmsa.windows.k8s.io" denied the request`)))
			Expect(err).To(MatchError(ContainSubstring(`service account "other" is not authorized to ` + "`use`" + ` GMSA cred spec "webapp1"` +
				`; GmsaAccount "webapp1" generates this cred spec: add {namespace: ` + appNS + `, name: other} to its spec.serviceAccounts`)))
			Expect(err.Error()).NotTo(ContainSubstring("allowed"), "the hint names no other service account")

			By("naming the credspec as the Kubernetes docs' sample spells it: the denial says which name was meant")
			err = k8s.Create(ctx, gmsaPod("docs-spelling", "allowed", "WebApp1"))
			Expect(err).To(MatchError(ContainSubstring(`admission webhook "mutate.gmsa.windows.k8s.io" denied the request: ` +
				`cred spec WebApp1 does not exist; did you mean webapp1 (names are case-sensitive)`)))
		})

	})

	// Each day-2 spec starts from a Ready stack, and a failed one does not
	// skip the others.
	Describe("on day 2", Ordered, ContinueOnFailure, func() {
		BeforeAll(func() { ensureStack(); ensureApp() })
		BeforeEach(func() {
			eventuallyStack("default", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""))
		})

		It("repairs a deleted or edited Deployment, Service, Secret or webhook configuration within seconds", func() {
			key := client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}
			for _, obj := range []client.Object{
				&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}},
				&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}},
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: stack.TLSSecretName, Namespace: key.Namespace}},
				&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
			} {
				Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
				uid := obj.GetUID()
				By(fmt.Sprintf("deleting %T", obj))
				Expect(k8s.Delete(ctx, obj)).To(Succeed())
				Eventually(func(g Gomega) {
					g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
					g.Expect(obj.GetUID()).NotTo(Equal(uid))
				}).WithTimeout(15 * time.Second).Should(Succeed())
			}
			By("editing the mutating webhook's failurePolicy and timeout")
			m := &admissionregistrationv1.MutatingWebhookConfiguration{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: stack.WebhookName}, m)).To(Succeed())
			m.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
			m.Webhooks[0].TimeoutSeconds = ptr.To[int32](3)
			Expect(k8s.Update(ctx, m)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: stack.WebhookName}, m)).To(Succeed())
				g.Expect(*m.Webhooks[0].FailurePolicy).To(Equal(admissionregistrationv1.Fail))
				g.Expect(*m.Webhooks[0].TimeoutSeconds).To(BeEquivalentTo(10))
			}).WithTimeout(15 * time.Second).Should(Succeed())
			By("editing a label the operator sets on each of the other objects it owns")
			expectLabelsRepaired(
				&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}},
				&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}},
				&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}},
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: stack.WebhookName}},
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
			)
			eventuallyStack("default", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""))
			Eventually(func() error { return k8s.Create(ctx, gmsaPod("after-repair", "allowed", "webapp1"), client.DryRunAll) }).Should(Succeed())
		})

		It("admits pods without gMSA fields while every webhook replica is down, and refuses gMSA pods", func() {
			kl.SetServing(false)
			DeferCleanup(func() { kl.SetServing(true) })
			Eventually(func() error { return k8s.Create(ctx, gmsaPod("while-down", "allowed", "webapp1"), client.DryRunAll) }).
				Should(MatchError(ContainSubstring("failed calling webhook")))
			Expect(k8s.Create(ctx, plainPod("plain-while-down"))).To(Succeed())
			eventuallyStack("default", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, gmsav1alpha1.ReasonDeploymentUnavailable))
			_, _, err := webhookConfigs()
			Expect(err).NotTo(HaveOccurred(), "the webhook configurations must stay while the webhook is down")

			kl.SetServing(true)
			eventuallyStack("default", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""))
			Eventually(func() error { return k8s.Create(ctx, gmsaPod("back-up", "allowed", "webapp1"), client.DryRunAll) }).Should(Succeed())
		})

		It("rolls the Deployment on an image or replica change without ever removing the webhook configurations", func() {
			deletions, stop := configDeletions()
			defer stop()
			// Whatever happens below, later specs start from the default webhook.
			DeferCleanup(func() { updateStack("default", func(s *gmsav1alpha1.GmsaStack) { s.Spec.Webhook = nil }) })
			updateStack("default", func(s *gmsav1alpha1.GmsaStack) {
				s.Spec.Webhook = &gmsav1alpha1.WebhookSpec{Image: "gmsa-operator:e2e-v2", Replicas: ptr.To[int32](3)}
			})
			// kube-controller-manager finishes the rollout (the old
			// ReplicaSet's last pod goes); on a loaded machine that took
			// more than a minute twice. Say what is left if it does not.
			Eventually(func(g Gomega) {
				dep := &appsv1.Deployment{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}, dep)).To(Succeed())
				st := dep.Status
				g.Expect([]int32{st.Replicas, st.UpdatedReplicas, st.ReadyReplicas}).To(Equal([]int32{3, 3, 3}), func() string {
					rss := &appsv1.ReplicaSetList{}
					_ = k8s.List(ctx, rss, client.InNamespace(namespace))
					pods := &corev1.PodList{}
					_ = k8s.List(ctx, pods, client.InNamespace(namespace))
					var out []string
					for _, rs := range rss.Items {
						out = append(out, fmt.Sprintf("ReplicaSet %s: spec %d, status %+v", rs.Name, ptr.Deref(rs.Spec.Replicas, -1), rs.Status))
					}
					for _, p := range pods.Items {
						out = append(out, fmt.Sprintf("pod %s: image %s, deleting %v, phase %s, conditions %v", p.Name, p.Spec.Containers[0].Image, p.DeletionTimestamp != nil, p.Status.Phase, p.Status.Conditions))
					}
					return fmt.Sprintf("Deployment status %+v\n%s", st, strings.Join(out, "\n"))
				})
			}).WithTimeout(2 * time.Minute).Should(Succeed())
			eventuallyStack("default",
				haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""),
				func(g Gomega, s *gmsav1alpha1.GmsaStack) {
					g.Expect(s.Status.Image).To(Equal("gmsa-operator:e2e-v2"))
					g.Expect(s.Status.ReadyReplicas).To(BeEquivalentTo(3))
				})
			dep := &appsv1.Deployment{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}, dep)).To(Succeed())
			Expect(dep.Spec.Template.Spec.Containers[0].Command).To(BeEmpty(), "a foreign image runs its own entrypoint")
			Expect(deletions()).To(BeZero())
			Eventually(func() error { return k8s.Create(ctx, gmsaPod("after-upgrade", "allowed", "webapp1"), client.DryRunAll) }).Should(Succeed())

			By("an image that never becomes ready leaves the old replicas serving and says so")
			updateStack("default", func(s *gmsav1alpha1.GmsaStack) { s.Spec.Webhook.Image = brokenImage })
			s := eventuallyStack("default",
				haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, gmsav1alpha1.ReasonProgressing),
				haveCondition(gmsav1alpha1.ConditionReconciling, metav1.ConditionTrue, gmsav1alpha1.ReasonProgressing),
				haveCondition(gmsav1alpha1.ConditionWebhookAvailable, metav1.ConditionTrue, gmsav1alpha1.ReasonProgressing))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReady).Message).To(ContainSubstring("rolling out " + brokenImage))
			Expect(k8s.Create(ctx, gmsaPod("during-broken-rollout", "allowed", "webapp1"), client.DryRunAll)).To(Succeed())

			By("going back to the operator's own image")
			updateStack("default", func(s *gmsav1alpha1.GmsaStack) { s.Spec.Webhook = nil })
			eventuallyStack("default", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""),
				func(g Gomega, s *gmsav1alpha1.GmsaStack) { g.Expect(s.Status.ReadyReplicas).To(BeEquivalentTo(2)) })
			Expect(deletions()).To(BeZero())
		})

		It("rotates the CA under continuous admission traffic with zero failed admissions, ending with only the new CA", func() {
			ca := &corev1.Secret{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.CASecretName}, ca)).To(Succeed())
			oldCA := ca.Data[stack.CACertKey]

			By("sending gMSA pods (dry run) continuously")
			stopLoad := admissionLoad("rotation")
			By("shortening the certificate lifetimes to the shortest the API accepts, 3m renewed 2m before expiry")
			updateStack("default", func(s *gmsav1alpha1.GmsaStack) {
				s.Spec.Certificates = &gmsav1alpha1.CertificatesSpec{Duration: &metav1.Duration{Duration: 3 * time.Minute}, RenewBefore: &metav1.Duration{Duration: 2 * time.Minute}}
			})

			By("waiting until a new CA signs, the pods rolled out, and caBundle holds the new CA alone")
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.CASecretName}, ca)).To(Succeed())
				g.Expect(ca.Data[stack.CACertKey]).NotTo(Equal(oldCA))
				m, v, err := webhookConfigs()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(m.Webhooks[0].ClientConfig.CABundle).To(Equal(ca.Data[stack.CACertKey]))
				g.Expect(v.Webhooks[0].ClientConfig.CABundle).To(Equal(ca.Data[stack.CACertKey]))
			}).WithTimeout(150 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
			stopLoad()
			served, err := certs.ParseCertificate(mustGetSecret(stack.TLSSecretName).Data[stack.TLSCertKey])
			Expect(err).NotTo(HaveOccurred())
			newCA, err := certs.ParseCertificate(ca.Data[stack.CACertKey])
			Expect(err).NotTo(HaveOccurred())
			Expect(served.CheckSignatureFrom(newCA)).To(Succeed())

			By("going back to the default lifetimes")
			updateStack("default", func(s *gmsav1alpha1.GmsaStack) { s.Spec.Certificates = nil })
			eventuallyStack("default", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""),
				func(g Gomega, s *gmsav1alpha1.GmsaStack) {
					g.Expect(s.Status.CertificateNotAfter.Time).To(BeTemporally(">", time.Now().Add(24*time.Hour)))
				})
		})

		It("moves to another namespace and back under continuous admission traffic with zero failures", func() {
			By("a kubelet for the new namespace too: both webhooks run while the stack moves")
			kl2 := harness.StartKubelet(harness.KubeletOptions{Client: k8s, Config: env.Config, Namespace: "gmsa-webhooks",
				PodIP: "192.0.2.61", Images: []string{operatorImage}, Log: GinkgoWriter})
			DeferCleanup(kl2.Stop)
			move := func(to, specNS string) {
				stopLoad := admissionLoad("move-to-" + to)
				updateStack("default", func(s *gmsav1alpha1.GmsaStack) { s.Spec.Namespace = specNS })
				eventuallyStack("default", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""),
					func(g Gomega, s *gmsav1alpha1.GmsaStack) { g.Expect(s.Status.Namespace).To(Equal(to)) })
				m, v, err := webhookConfigs()
				Expect(err).NotTo(HaveOccurred())
				Expect(m.Webhooks[0].ClientConfig.Service.Namespace).To(Equal(to))
				Expect(v.Webhooks[0].ClientConfig.Service.Namespace).To(Equal(to))
				Expect(m.Webhooks[0].NamespaceSelector.MatchExpressions[0].Values).To(ContainElement(to), "the webhook's own namespace is excluded")
				Eventually(func(g Gomega) {
					crb := &rbacv1.ClusterRoleBinding{}
					g.Expect(k8s.Get(ctx, client.ObjectKey{Name: stack.WebhookName}, crb)).To(Succeed())
					g.Expect(crb.Subjects).To(ConsistOf(HaveField("Namespace", to)))
				}).Should(Succeed(), "the old webhook's binding goes once the configurations call the new one")
				Eventually(func(g Gomega) {
					for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}} {
						g.Expect(k8s.List(ctx, l, client.MatchingLabels{gmsav1alpha1.LabelStack: "default"})).To(Succeed())
						g.Expect(meta.LenList(l)).To(Equal(1), "%T: the old one is pruned", l)
					}
				}).WithTimeout(90 * time.Second).Should(Succeed())
				time.Sleep(2 * time.Second) // and on, after the old webhook is gone
				stopLoad()
			}
			By("moving to gmsa-webhooks, a namespace the platform team made")
			Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gmsa-webhooks", Labels: map[string]string{"team": "platform"}}})).To(Succeed())
			move("gmsa-webhooks", "gmsa-webhooks")
			Eventually(func() bool {
				return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: namespace}, &corev1.Namespace{}))
			}).WithTimeout(90*time.Second).Should(BeTrue(), "the old namespace, made by the stack, is removed")
			By("moving back: the stack's objects leave gmsa-webhooks, which stays as its owners made it")
			move(namespace, "")
			Eventually(func(g Gomega) {
				for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.SecretList{}, &corev1.ServiceAccountList{}, &policyv1.PodDisruptionBudgetList{}} {
					g.Expect(k8s.List(ctx, l, client.InNamespace("gmsa-webhooks"), client.MatchingLabels{gmsav1alpha1.LabelStack: "default"})).To(Succeed())
					g.Expect(meta.LenList(l)).To(BeZero(), "%T left behind", l)
				}
			}).Should(Succeed())
			other := &corev1.Namespace{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: "gmsa-webhooks"}, other)).To(Succeed())
			Expect(other.DeletionTimestamp).To(BeNil())
			Expect(other.Labels).To(HaveKeyWithValue("team", "platform"))
		})

		It("stalls a second GmsaStack, which changes nothing", func() {
			dep := &appsv1.Deployment{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}, dep)).To(Succeed())
			second := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "second"},
				Spec: gmsav1alpha1.GmsaStackSpec{Namespace: "other-gmsa", Webhook: &gmsav1alpha1.WebhookSpec{Replicas: ptr.To[int32](5)}}}
			Expect(k8s.Create(ctx, second)).To(Succeed())
			s := eventuallyStack("second",
				haveCondition(gmsav1alpha1.ConditionStalled, metav1.ConditionTrue, gmsav1alpha1.ReasonDuplicateStack),
				haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, gmsav1alpha1.ReasonDuplicateStack))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionStalled).Message).To(ContainSubstring(`GmsaStack "default" already manages`))
			Consistently(func(g Gomega) {
				g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: "other-gmsa"}, &corev1.Namespace{}))).To(BeTrue())
				now := &appsv1.Deployment{}
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dep), now)).To(Succeed())
				g.Expect(now.Generation).To(Equal(dep.Generation))
			}).WithTimeout(3 * time.Second).Should(Succeed())
			Expect(k8s.Delete(ctx, second)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: "second"}, &gmsav1alpha1.GmsaStack{}))
			}).Should(BeTrue())
			_, _, err := webhookConfigs()
			Expect(err).NotTo(HaveOccurred(), "deleting the duplicate must not remove the active stack's webhooks")
		})

	})

	// Uninstalling ends the default stack; CertManager mode then makes its own.
	Describe("uninstalled, then in CertManager mode", Ordered, func() {
		BeforeAll(func() { ensureStack(); ensureApp() })

		It("uninstalls webhook configurations first, then the rest, keeping the CRD and every credspec", func() {
			var mu sync.Mutex
			var order []string
			deletedAt := map[string]time.Time{}
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			watchers := map[string]watch.Interface{}
			var err error
			watchers["MutatingWebhookConfiguration"], err = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Watch(wctx, metav1.ListOptions{})
			Expect(err).NotTo(HaveOccurred())
			watchers["ValidatingWebhookConfiguration"], err = clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Watch(wctx, metav1.ListOptions{})
			Expect(err).NotTo(HaveOccurred())
			watchers["Deployment"], err = clientset.AppsV1().Deployments(namespace).Watch(wctx, metav1.ListOptions{})
			Expect(err).NotTo(HaveOccurred())
			for kind, w := range watchers {
				go func() {
					for e := range w.ResultChan() {
						if e.Type == watch.Deleted {
							mu.Lock()
							order = append(order, kind)
							deletedAt[kind] = time.Now()
							mu.Unlock()
						}
					}
				}()
			}
			Expect(k8s.Delete(ctx, getStack("default"))).To(Succeed())
			Eventually(func() []string {
				mu.Lock()
				defer mu.Unlock()
				return append([]string(nil), order...)
			}).Should(HaveLen(3))
			Expect(order[2]).To(Equal("Deployment"), "deletion order: %v", order)
			By("the webhook keeps serving for the teardown delay after its configurations are gone")
			mu.Lock()
			gap := deletedAt["Deployment"].Sub(deletedAt[order[1]])
			mu.Unlock()
			GinkgoWriter.Printf("webhook configurations deleted -> Deployment deleted: %v (teardown delay %v)\n", gap, stack.TeardownDelay)
			Expect(gap).To(BeNumerically(">=", stack.TeardownDelay-200*time.Millisecond),
				"API servers that have not yet dropped the configurations would call a webhook that is gone")
			Eventually(func() bool {
				return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: "default"}, &gmsav1alpha1.GmsaStack{}))
			}).Should(BeTrue())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: namespace}, &corev1.Namespace{}))
			}).
				WithTimeout(90*time.Second).Should(BeTrue(), "the namespace the operator made is removed")

			Expect(k8s.Get(ctx, client.ObjectKey{Name: credspeccrd.Name}, &apiextensionsv1.CustomResourceDefinition{})).To(Succeed())
			for _, name := range []string{"legacy", "webapp1"} {
				cs := &unstructured.Unstructured{}
				cs.SetAPIVersion("windows.k8s.io/v1")
				cs.SetKind("GMSACredentialSpec")
				Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, cs)).To(Succeed(), "credspec %s", name)
			}
			Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: stack.WebhookName}, &admissionregistrationv1.MutatingWebhookConfiguration{}))).To(BeTrue())
		})

		It("in CertManager mode makes the Issuers and Certificates, waits for cert-manager's Secret, and leaves caBundle to cainjector", func() {
			By("naming an issuer that does not exist")
			s := &gmsav1alpha1.GmsaStack{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Spec: gmsav1alpha1.GmsaStackSpec{
				Admission: &gmsav1alpha1.AdmissionSpec{Mode: gmsav1alpha1.AdmissionModeWebhook},
				Certificates: &gmsav1alpha1.CertificatesSpec{Source: gmsav1alpha1.CertificateSourceCertManager,
					CertManager: &gmsav1alpha1.CertManagerSpec{IssuerRef: &gmsav1alpha1.IssuerReference{Name: "corp-ca", Kind: "ClusterIssuer"}}},
			}}
			Expect(k8s.Create(ctx, s)).To(Succeed())
			s = eventuallyStack("cm", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, gmsav1alpha1.ReasonIssuerNotFound))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReady).Message).To(ContainSubstring(`spec.certificates.certManager.issuerRef: ClusterIssuer "corp-ca" does not exist`))

			By("creating the ClusterIssuer: the stack sees it at once, and says it is not Ready (cert-manager's controllers do not run here)")
			created := time.Now()
			Expect(k8s.Create(ctx, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "corp-ca"},
				Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "corp-ca"}}}})).To(Succeed())
			s = eventuallyStack("cm", haveCondition(gmsav1alpha1.ConditionCertificateReady, metav1.ConditionFalse, gmsav1alpha1.ReasonCertificatePending))
			Expect(time.Since(created)).To(BeNumerically("<", 10*time.Second), "the issuer was not watched: the stack waited for its poll")
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReady).Message).To(ContainSubstring(`ClusterIssuer "corp-ca" (spec.certificates.certManager.issuerRef) is not Ready`))

			By("its Ready condition, as cert-manager would set it, is quoted")
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				ci := &cmapi.ClusterIssuer{}
				if err := k8s.Get(ctx, client.ObjectKey{Name: "corp-ca"}, ci); err != nil {
					return err
				}
				ci.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionFalse, Reason: "ErrGetKeyPair", Message: `Error getting keypair for CA issuer: secrets "corp-ca" not found`}}
				return k8s.Status().Update(ctx, ci)
			})).To(Succeed())
			Eventually(func() string {
				return meta.FindStatusCondition(getStack("cm").Status.Conditions, gmsav1alpha1.ConditionReady).Message
			}).WithTimeout(10 * time.Second).Should(ContainSubstring(`ErrGetKeyPair: Error getting keypair for CA issuer: secrets "corp-ca" not found`))
			Expect(k8s.Delete(ctx, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "corp-ca"}})).To(Succeed())

			By("dropping issuerRef: the operator makes a self-signed CA chain")
			updateStack("cm", func(s *gmsav1alpha1.GmsaStack) { s.Spec.Certificates.CertManager = nil })
			s = eventuallyStack("cm", haveCondition(gmsav1alpha1.ConditionCertificateReady, metav1.ConditionFalse, gmsav1alpha1.ReasonCertificatePending))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReady).Message).To(ContainSubstring("waiting for cert-manager"))
			for _, name := range []string{stack.SelfSignedIssuerName, stack.CAIssuerName} {
				Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cmapi.Issuer{})).To(Succeed(), "Issuer %s", name)
			}
			caCert := &cmapi.Certificate{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.CACertificateName}, caCert)).To(Succeed())
			Expect(caCert.Spec.IsCA).To(BeTrue())
			Expect(caCert.Spec.IssuerRef.Name).To(Equal(stack.SelfSignedIssuerName))
			serving := &cmapi.Certificate{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.ServingCertificateName}, serving)).To(Succeed())
			Expect(serving.Spec.DNSNames).To(ContainElement(stack.WebhookName + "." + namespace + ".svc"))
			Expect(serving.Spec.IssuerRef.Name).To(Equal(stack.CAIssuerName))
			Expect(serving.Spec.SecretName).To(Equal(stack.TLSSecretName))
			Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.WebhookName}, &appsv1.Deployment{}))).To(BeTrue(),
				"nothing runs before the certificate exists")

			By("writing the Secret as cert-manager would (its controllers do not run in this test), with no webhook replica becoming ready")
			kl.SetServing(false)
			ca, err := certs.NewCA("cert-manager test CA", time.Now(), 24*time.Hour)
			Expect(err).NotTo(HaveOccurred())
			leaf, err := certs.NewServingCert(ca, certs.ServiceDNSNames(stack.WebhookName, namespace), time.Now(), time.Hour)
			Expect(err).NotTo(HaveOccurred())
			Expect(k8s.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: stack.TLSSecretName, Namespace: namespace, Labels: serving.Spec.SecretTemplate.Labels,
					Annotations: map[string]string{"cert-manager.io/certificate-name": stack.ServingCertificateName}},
				Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{stack.TLSCertKey: leaf.CertPEM, stack.TLSKeyKey: leaf.KeyPEM, stack.CACertKey: ca.CertPEM},
			})).To(Succeed())
			s = eventuallyStack("cm",
				haveCondition(gmsav1alpha1.ConditionCertificateReady, metav1.ConditionTrue, ""),
				haveCondition(gmsav1alpha1.ConditionWebhookAvailable, metav1.ConditionFalse, gmsav1alpha1.ReasonDeploymentUnavailable),
				haveCondition(gmsav1alpha1.ConditionAdmissionConfigured, metav1.ConditionFalse, gmsav1alpha1.ReasonWaitingForWebhook))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReady).Message).To(ContainSubstring("0 of 2 replicas available"))
			Consistently(func() bool {
				return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: stack.WebhookName}, &admissionregistrationv1.MutatingWebhookConfiguration{}))
			}).WithTimeout(2*time.Second).Should(BeTrue(), "no webhook is registered before the Deployment is Available")

			By("the webhook becomes ready: the stack registers it, but is not Ready until cainjector filled caBundle")
			kl.SetServing(true)
			s = eventuallyStack("cm",
				haveCondition(gmsav1alpha1.ConditionWebhookAvailable, metav1.ConditionTrue, ""),
				haveCondition(gmsav1alpha1.ConditionAdmissionConfigured, metav1.ConditionFalse, gmsav1alpha1.ReasonWaitingForCAInjection),
				haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionFalse, gmsav1alpha1.ReasonWaitingForCAInjection),
				haveCondition(gmsav1alpha1.ConditionReconciling, metav1.ConditionTrue, gmsav1alpha1.ReasonWaitingForCAInjection))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionReady).Message).To(ContainSubstring("Is cainjector running?"))
			m, v, err := webhookConfigs()
			Expect(err).NotTo(HaveOccurred())
			for _, obj := range []metav1.Object{m, v} {
				Expect(obj.GetAnnotations()).To(HaveKeyWithValue("cert-manager.io/inject-ca-from", namespace+"/"+stack.ServingCertificateName))
			}
			Expect(m.Webhooks[0].ClientConfig.CABundle).To(BeEmpty(), "the operator never writes caBundle in CertManager mode")
			Expect(v.Webhooks[0].ClientConfig.CABundle).To(BeEmpty())
			Consistently(func() bool {
				return meta.IsStatusConditionTrue(getStack("cm").Status.Conditions, gmsav1alpha1.ConditionReady)
			}).WithTimeout(2*time.Second).Should(BeFalse(), "Ready while the API server cannot trust the webhook")

			By("cainjector fills caBundle of one configuration only: still not Ready")
			m.Webhooks[0].ClientConfig.CABundle = ca.CertPEM
			Expect(k8s.Update(ctx, m)).To(Succeed())
			Consistently(func() bool {
				return meta.IsStatusConditionTrue(getStack("cm").Status.Conditions, gmsav1alpha1.ConditionReady)
			}).WithTimeout(2*time.Second).Should(BeFalse(), "Ready with the validating configuration's caBundle empty")

			By("and of the other: Ready")
			v.Webhooks[0].ClientConfig.CABundle = ca.CertPEM
			Expect(k8s.Update(ctx, v)).To(Succeed())
			eventuallyStack("cm", haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""))

			By("an edited Certificate or Issuer is put back")
			expectLabelsRepaired(
				&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Name: stack.ServingCertificateName, Namespace: namespace}},
				&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Name: stack.CAIssuerName, Namespace: namespace}},
			)

			By("cainjector's caBundle is left alone")
			Consistently(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: stack.WebhookName}, m)).To(Succeed())
				g.Expect(bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, ca.CertPEM)).To(BeTrue())
			}).WithTimeout(3 * time.Second).Should(Succeed())
			Eventually(func() error { return k8s.Create(ctx, gmsaPod("cm-pod", "allowed", "webapp1"), client.DryRunAll) }).Should(Succeed())

			By("switching the running stack to SelfSigned is refused, and changes nothing")
			updateStack("cm", func(s *gmsav1alpha1.GmsaStack) { s.Spec.Certificates = nil })
			s = eventuallyStack("cm", haveCondition(gmsav1alpha1.ConditionStalled, metav1.ConditionTrue, gmsav1alpha1.ReasonInvalidSpec))
			Expect(meta.FindStatusCondition(s.Status.Conditions, gmsav1alpha1.ConditionStalled).Message).To(ContainSubstring("switching a running stack from CertManager to SelfSigned is not supported"))
			Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: stack.CASecretName}, &corev1.Secret{}))).To(BeTrue(),
				"the operator made no CA of its own")
			Expect(k8s.Get(ctx, client.ObjectKey{Name: stack.WebhookName}, m)).To(Succeed())
			Expect(m.Webhooks[0].ClientConfig.CABundle).To(Equal(ca.CertPEM), "caBundle is still cainjector's")
			Eventually(func() error { return k8s.Create(ctx, gmsaPod("cm-pod-2", "allowed", "webapp1"), client.DryRunAll) }).Should(Succeed())
		})

	})

	Describe("under the shipped RBAC", func() {
		It("needed every permission the shipped RBAC grants it for the stack (each one is in use)", func() {
			Expect(requests.Missing(harness.SuiteStack)).To(BeEmpty(),
				"permissions of config/rbac/role.yaml that harness.PermissionUse assigns to this suite but no request needed")
		})
	})
})

// ensureStack makes the sample GmsaStack unless it exists, and waits until
// it is Ready.
func ensureStack() {
	GinkgoHelper()
	ctx := context.Background()
	sample, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "gmsa_v1alpha1_gmsastack.yaml"))
	Expect(err).NotTo(HaveOccurred())
	s := &gmsav1alpha1.GmsaStack{}
	Expect(yaml.UnmarshalStrict(sample, s)).To(Succeed())
	if err := k8s.Create(ctx, s); !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	eventuallyStack(s.Name, haveCondition(gmsav1alpha1.ConditionReady, metav1.ConditionTrue, ""))
}

// ensureApp makes the application namespace, its service accounts "allowed"
// and "other", and the sample GmsaAccount webapp1 granting "allowed", unless
// they exist, and waits until the account is Ready.
func ensureApp() {
	GinkgoHelper()
	ctx := context.Background()
	create := func(obj client.Object) {
		if err := k8s.Create(ctx, obj); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}})
	for _, sa := range []string{"allowed", "other"} {
		create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: appNS}})
	}
	sample, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "gmsa_v1alpha1_gmsaaccount.yaml"))
	Expect(err).NotTo(HaveOccurred())
	acct := &gmsav1alpha1.GmsaAccount{}
	Expect(yaml.UnmarshalStrict(sample, acct)).To(Succeed())
	acct.Spec.ServiceAccounts = []gmsav1alpha1.ServiceAccountRef{{Namespace: appNS, Name: "allowed"}}
	create(acct)
	Eventually(func(g Gomega) {
		a := &gmsav1alpha1.GmsaAccount{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "webapp1"}, a)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(a.Status.Conditions, gmsav1alpha1.ConditionReady)).To(BeTrue(), "%+v", a.Status.Conditions)
	}).Should(Succeed())
}

// expectLabelsRepaired changes the part-of label the operator sets on each
// object, and expects the operator to put it back within seconds.
func expectLabelsRepaired(objs ...client.Object) {
	GinkgoHelper()
	const label = "app.kubernetes.io/part-of"
	ctx := context.Background()
	for _, obj := range objs {
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		Expect(obj.GetLabels()).To(HaveKeyWithValue(label, "gmsa-operator"), "%T %s", obj, obj.GetName())
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		l := obj.GetLabels()
		l[label] = "someone-else"
		obj.SetLabels(l)
		Expect(k8s.Patch(ctx, obj, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(obj.GetLabels()).To(HaveKeyWithValue(label, "gmsa-operator"))
		}).WithTimeout(15*time.Second).Should(Succeed(), "%T %s was not put back", obj, obj.GetName())
	}
}

func mustGetSecret(name string) *corev1.Secret {
	s := &corev1.Secret{}
	ExpectWithOffset(1, k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, s)).To(Succeed())
	return s
}

// canI asks the API server whether the webhook's service account may do
// verb on resource.
func canI(verb, group, resource string) (bool, error) {
	sar, err := clientset.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + namespace + ":" + stack.WebhookName,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: appNS},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// reconciles is how many reconciles of GmsaStacks the manager finished.
func reconciles() float64 {
	n, err := harness.Reconciles("gmsastack")
	Expect(err).NotTo(HaveOccurred())
	return n
}
