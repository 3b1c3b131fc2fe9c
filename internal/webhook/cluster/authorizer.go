package cluster

import (
	"context"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/credspeccrd"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook"
)

// UseVerb is the RBAC verb that lets a service account run pods under a
// credential spec.
const UseVerb = "use"

// SARAuthorizer asks the API server, with one LocalSubjectAccessReview per
// question, whether a service account may `use` a credential spec. It
// implements admission.Authorizer; its identity needs `create` on
// localsubjectaccessreviews.
type SARAuthorizer struct {
	client  authorizationclient.LocalSubjectAccessReviewsGetter
	metrics *webhook.Metrics
}

var _ admission.Authorizer = (*SARAuthorizer)(nil)

// NewSARAuthorizer returns an authorizer that sends reviews through client
// and records their duration in metrics (which may be nil).
func NewSARAuthorizer(client authorizationclient.LocalSubjectAccessReviewsGetter, metrics *webhook.Metrics) *SARAuthorizer {
	return &SARAuthorizer{client: client, metrics: metrics}
}

// MayUse asks whether user system:serviceaccount:<namespace>:<serviceAccount>,
// in the groups every service account of that namespace has, may `use` the
// gmsacredentialspecs.windows.k8s.io object called credSpecName.
func (a *SARAuthorizer) MayUse(ctx context.Context, namespace, serviceAccount, credSpecName string) (bool, string, error) {
	review := &authorizationv1.LocalSubjectAccessReview{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace},
		Spec: authorizationv1.SubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace,
				Verb:      UseVerb,
				Group:     credspeccrd.Group,
				Version:   "v1",
				Resource:  credspeccrd.Resource,
				Name:      credSpecName,
			},
			User:   ServiceAccountUser(namespace, serviceAccount),
			Groups: ServiceAccountGroups(namespace),
		},
	}
	start := time.Now()
	got, err := a.client.LocalSubjectAccessReviews(namespace).Create(ctx, review, metav1.CreateOptions{})
	if utilnet.IsConnectionRefused(err) {
		// A lone API server that just restarted is, for about a second, not
		// yet back behind the kubernetes Service (measured on a real node).
		// A review changes nothing, so asking once more is safe.
		select {
		case <-ctx.Done():
		case <-time.After(RefusedRetryDelay):
			got, err = a.client.LocalSubjectAccessReviews(namespace).Create(ctx, review, metav1.CreateOptions{})
		}
	}
	a.metrics.ObserveAuthorization(time.Since(start))
	if err != nil {
		return false, "", fmt.Errorf("create LocalSubjectAccessReview: %w", err)
	}
	reason := got.Status.Reason
	if reason == "" {
		reason = got.Status.EvaluationError
	}
	return got.Status.Allowed && !got.Status.Denied, reason, nil
}

// RefusedRetryDelay is how long the authorizer waits before asking once more
// when the API server refused the connection.
const RefusedRetryDelay = 300 * time.Millisecond

// ServiceAccountUser is the user name of a service account, as the API
// server authenticates its tokens.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ServiceAccountGroups are the groups every service account of namespace
// belongs to.
func ServiceAccountGroups(namespace string) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace}
}
