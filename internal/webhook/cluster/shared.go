package cluster

import (
	"context"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/gmsa-operator/gmsa-operator/internal/admission"
	"github.com/gmsa-operator/gmsa-operator/internal/webhook"
)

// Defaults of SharedAuthorizerOptions, and of the webhook's AUTHZ_CACHE_TTL
// and AUTHZ_CACHE_SIZE.
const (
	// DefaultDecisionTTL is how long a decision is reused, counted from
	// when the review that made it was sent: a revoked grant (or a new one)
	// takes effect for new pods at most this long after the change reaches
	// the API server's authorizer.
	DefaultDecisionTTL = 2 * time.Second
	// DefaultDecisionCacheSize bounds the decisions kept; the least
	// recently used goes first.
	DefaultDecisionCacheSize = 4096
	// SharedReviewTimeout bounds a review that several requests wait for.
	// It runs apart from any one request's context, so that a caller that
	// gives up does not fail the others.
	SharedReviewTimeout = 30 * time.Second
)

// Sources of an authorization answer, as counted by
// gmsa_webhook_authorization_answers_total.
const (
	SourceReview = "review" // this request's own review
	SourceShared = "shared" // a review another request had in flight
	SourceCache  = "cache"  // a decision made less than the TTL ago
)

// SharedAuthorizerOptions configure NewSharedAuthorizer.
type SharedAuthorizerOptions struct {
	// TTL is how long a decision (allowed or denied) is reused, from when
	// its review was sent; 0 or less keeps none (in-flight reviews are
	// still shared).
	TTL time.Duration
	// Size bounds the decisions kept; 0 means DefaultDecisionCacheSize.
	Size int
	// Metrics, if set, counts answers by source.
	Metrics *webhook.Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// SharedAuthorizer puts in front of another Authorizer (the
// LocalSubjectAccessReview one) two ways to ask it less often, without
// answering anything it did not answer:
//
//   - identical questions (namespace, service account, credspec) asked at
//     the same time share one review: the first asks, the others wait for
//     its answer;
//   - a decision, allowed or denied, is reused for TTL after its review was
//     sent. An error is never reused.
//
// A pod created while a RoleBinding is being revoked is thus admitted at
// most TTL after the revocation reached the API server; pods already
// running are never affected by a revocation, with or without this cache.
type SharedAuthorizer struct {
	next      admission.Authorizer
	ttl       time.Duration
	decisions *cache.LRUExpireCache
	now       func() time.Time
	flight    singleflight.Group
	metrics   *webhook.Metrics
}

var _ admission.Authorizer = (*SharedAuthorizer)(nil)

// NewSharedAuthorizer returns an authorizer that shares and reuses next's
// answers as SharedAuthorizer describes.
func NewSharedAuthorizer(next admission.Authorizer, opts SharedAuthorizerOptions) *SharedAuthorizer {
	a := &SharedAuthorizer{next: next, ttl: opts.TTL, now: opts.Now, metrics: opts.Metrics}
	if a.now == nil {
		a.now = time.Now
	}
	if a.ttl > 0 {
		size := opts.Size
		if size <= 0 {
			size = DefaultDecisionCacheSize
		}
		a.decisions = cache.NewLRUExpireCacheWithClock(size, clockFunc(a.now))
	}
	return a
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

type question struct{ namespace, serviceAccount, credSpec string }

type decision struct {
	allowed bool
	reason  string
}

// key is unambiguous whatever the names hold (a request may carry any
// string before the API server validates the pod).
func (q question) key() string {
	return strconv.Itoa(len(q.namespace)) + ":" + q.namespace + strconv.Itoa(len(q.serviceAccount)) + ":" + q.serviceAccount + q.credSpec
}

// MayUse answers from a decision younger than the TTL, else from the review
// in flight for the same question, else from a new review.
func (a *SharedAuthorizer) MayUse(ctx context.Context, namespace, serviceAccount, credSpecName string) (bool, string, error) {
	q := question{namespace, serviceAccount, credSpecName}
	if a.decisions != nil {
		if v, ok := a.decisions.Get(q); ok {
			a.metrics.ObserveAuthorizationAnswer(SourceCache)
			d := v.(decision)
			return d.allowed, d.reason, nil
		}
	}
	led := false // set only if this caller's function is the one that runs
	answer := a.flight.DoChan(q.key(), func() (any, error) {
		led = true
		sent := a.now()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SharedReviewTimeout)
		defer cancel()
		allowed, reason, err := a.next.MayUse(rctx, namespace, serviceAccount, credSpecName)
		if err != nil {
			return nil, err
		}
		d := decision{allowed: allowed, reason: reason}
		if a.decisions != nil {
			if left := a.ttl - a.now().Sub(sent); left > 0 {
				a.decisions.Add(q, d, left)
			}
		}
		return d, nil
	})
	select {
	case r := <-answer:
		// The channel receive orders the read of led after fn's write.
		if led {
			a.metrics.ObserveAuthorizationAnswer(SourceReview)
		} else {
			a.metrics.ObserveAuthorizationAnswer(SourceShared)
		}
		if r.Err != nil {
			return false, "", r.Err
		}
		d := r.Val.(decision)
		return d.allowed, d.reason, nil
	case <-ctx.Done():
		return false, "", ctx.Err()
	}
}
