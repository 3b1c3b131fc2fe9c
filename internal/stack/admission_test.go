package stack

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

func TestWebhookConfigurations(t *testing.T) {
	m, v := WebhookConfigurations(AdmissionOptions{Name: "gmsa", Namespace: "gmsa-system", ServiceName: "svc", Port: 443,
		CABundle: []byte("ca"), FailurePolicy: admissionregistrationv1.Fail, TimeoutSeconds: 10})
	mw, vw := m.Webhooks[0], v.Webhooks[0]

	if *mw.ClientConfig.Service.Path != "/mutate" || *vw.ClientConfig.Service.Path != "/validate" {
		t.Errorf("paths: %s %s", *mw.ClientConfig.Service.Path, *vw.ClientConfig.Service.Path)
	}
	ops := func(rules []admissionregistrationv1.RuleWithOperations) map[string][]admissionregistrationv1.OperationType {
		out := map[string][]admissionregistrationv1.OperationType{}
		for _, r := range rules {
			for _, res := range r.Resources {
				out[res] = append(out[res], r.Operations...)
			}
		}
		return out
	}
	if got := ops(mw.Rules); len(got["pods"]) != 1 || got["pods"][0] != admissionregistrationv1.Create || got["pods/ephemeralcontainers"][0] != admissionregistrationv1.Update {
		t.Errorf("mutating rules: %v", got)
	}
	if got := ops(vw.Rules); len(got["pods"]) != 2 || got["pods/ephemeralcontainers"][0] != admissionregistrationv1.Update {
		t.Errorf("validating rules: %v (CREATE and UPDATE of pods, UPDATE of ephemeral containers)", got)
	}
	for _, w := range []struct {
		side    *admissionregistrationv1.SideEffectClass
		timeout *int32
		policy  *admissionregistrationv1.FailurePolicyType
		conds   []admissionregistrationv1.MatchCondition
		reviews []string
	}{{mw.SideEffects, mw.TimeoutSeconds, mw.FailurePolicy, mw.MatchConditions, mw.AdmissionReviewVersions},
		{vw.SideEffects, vw.TimeoutSeconds, vw.FailurePolicy, vw.MatchConditions, vw.AdmissionReviewVersions}} {
		if *w.side != admissionregistrationv1.SideEffectClassNone || *w.timeout != 10 || *w.policy != admissionregistrationv1.Fail {
			t.Errorf("sideEffects/timeout/failurePolicy: %v %v %v", *w.side, *w.timeout, *w.policy)
		}
		if len(w.conds) != 1 || w.conds[0].Expression != MentionsGMSA {
			t.Errorf("match conditions: %v", w.conds)
		}
		if len(w.reviews) != 1 || w.reviews[0] != "v1" {
			t.Errorf("admissionReviewVersions: %v", w.reviews)
		}
	}
	sel := mw.NamespaceSelector.MatchExpressions
	if len(sel) != 2 || sel[0].Values[0] != "gmsa-system" || sel[0].Values[1] != "kube-system" || sel[1].Key != DisabledLabel {
		t.Errorf("namespace selector: %+v", sel)
	}
}
