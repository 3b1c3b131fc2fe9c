// Package stack renders, without touching the API server, the objects a
// GmsaStack installs. This file holds the admission registration: the
// mutating and validating webhook configurations.
package stack

import (
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DisabledLabel is the namespace label of the upstream webhook: namespaces
// labelled windows.k8s.io/disabled=true are never sent to the webhook.
const DisabledLabel = "windows.k8s.io/disabled"

// AdmissionOptions say where the webhook is served and how the API server
// treats it.
type AdmissionOptions struct {
	// Name of both webhook configurations.
	Name string
	// Namespace and ServiceName of the webhook's Service; Port its port.
	Namespace, ServiceName string
	Port                   int32
	// CABundle is the PEM CA bundle the API server trusts for the webhook;
	// empty when cert-manager injects it.
	CABundle []byte
	// FailurePolicy and TimeoutSeconds as in the GmsaStack spec.
	FailurePolicy  admissionregistrationv1.FailurePolicyType
	TimeoutSeconds int32
	// Labels and Annotations of both configurations (for example
	// cert-manager.io/inject-ca-from).
	Labels, Annotations map[string]string
	// ExtraExclusion, when set, is one more requirement a namespace must
	// meet to be sent to the webhook (the spec's namespaceSelector, negated).
	ExtraExclusion *metav1.LabelSelectorRequirement
}

// MentionsGMSA is a CEL condition that is true when a pod (or, on UPDATE,
// its previous version) names a gMSA credspec or carries credspec content
// at pod level or in any container, init container or ephemeral container.
// Pods that mention no gMSA are never sent to the webhook, so they are
// admitted even when no webhook replica answers.
var MentionsGMSA = mentions("object") + " || " + mentions("oldObject")

func mentions(pod string) string {
	windowsOptions := func(holder string) string {
		return fmt.Sprintf("(has(%[1]s.securityContext) && has(%[1]s.securityContext.windowsOptions) && "+
			"(has(%[1]s.securityContext.windowsOptions.gmsaCredentialSpecName) || has(%[1]s.securityContext.windowsOptions.gmsaCredentialSpec)))", holder)
	}
	lists := make([]string, 0, 3)
	for _, list := range []string{"containers", "initContainers", "ephemeralContainers"} {
		lists = append(lists, fmt.Sprintf("(has(%[1]s.spec.%[2]s) && %[1]s.spec.%[2]s.exists(c, %[3]s))", pod, list, windowsOptions("c")))
	}
	return fmt.Sprintf("(%[1]s != null && has(%[1]s.spec) && (%[2]s || %[3]s))", pod, windowsOptions(pod+".spec"), strings.Join(lists, " || "))
}

// NamespaceSelector excludes the webhook's own namespace, kube-system and
// namespaces labelled windows.k8s.io/disabled=true.
// A further requirement, when given, is added (ANDed).
func NamespaceSelector(webhookNamespace string, extra ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: append([]metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{webhookNamespace, "kube-system"}},
		{Key: DisabledLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}},
	}, extra...)}
}

func (o AdmissionOptions) namespaceSelector() *metav1.LabelSelector {
	if o.ExtraExclusion != nil {
		return NamespaceSelector(o.Namespace, *o.ExtraExclusion)
	}
	return NamespaceSelector(o.Namespace)
}

func podRule(ops ...admissionregistrationv1.OperationType) admissionregistrationv1.RuleWithOperations {
	scope := admissionregistrationv1.NamespacedScope
	return admissionregistrationv1.RuleWithOperations{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope},
	}
}

func ephemeralRule() admissionregistrationv1.RuleWithOperations {
	r := podRule(admissionregistrationv1.Update)
	r.Resources = []string{"pods/ephemeralcontainers"}
	return r
}

func (o AdmissionOptions) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	port := o.Port
	return admissionregistrationv1.WebhookClientConfig{
		Service:  &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: o.ServiceName, Path: &path, Port: &port},
		CABundle: o.CABundle,
	}
}

func (o AdmissionOptions) meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: o.Name, Labels: o.Labels, Annotations: o.Annotations}
}

// WebhookConfigurations returns the mutating webhook (pod CREATE, and the
// ephemeral containers subresource: names are expanded into content) and
// the validating webhook (pod CREATE and UPDATE, ephemeral containers:
// authorization, consistency and immutability).
func WebhookConfigurations(o AdmissionOptions) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	none := admissionregistrationv1.SideEffectClassNone
	policy, timeout := o.FailurePolicy, o.TimeoutSeconds
	equivalent := admissionregistrationv1.Equivalent
	never := admissionregistrationv1.NeverReinvocationPolicy
	conditions := []admissionregistrationv1.MatchCondition{{Name: "mentions-gmsa", Expression: MentionsGMSA}}

	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: o.meta(),
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "mutate.gmsa.windows.k8s.io",
			ClientConfig:            o.clientConfig("/mutate"),
			Rules:                   []admissionregistrationv1.RuleWithOperations{podRule(admissionregistrationv1.Create), ephemeralRule()},
			FailurePolicy:           &policy,
			MatchPolicy:             &equivalent,
			NamespaceSelector:       o.namespaceSelector(),
			ObjectSelector:          &metav1.LabelSelector{},
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &never,
			MatchConditions:         conditions,
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: o.meta(),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validate.gmsa.windows.k8s.io",
			ClientConfig:            o.clientConfig("/validate"),
			Rules:                   []admissionregistrationv1.RuleWithOperations{podRule(admissionregistrationv1.Create, admissionregistrationv1.Update), ephemeralRule()},
			FailurePolicy:           &policy,
			MatchPolicy:             &equivalent,
			NamespaceSelector:       o.namespaceSelector(),
			ObjectSelector:          &metav1.LabelSelector{},
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			MatchConditions:         conditions,
		}},
	}
	return mutating, validating
}
