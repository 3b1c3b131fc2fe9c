package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmsa-operator/gmsa-operator/internal/webhook"
)

// fakeReviews answers from grants, counting the reviews it is asked for;
// each takes latency (fake time inside a synctest bubble) and, while gate
// is not nil, waits for it to close.
type fakeReviews struct {
	mu      sync.Mutex
	grants  map[question]bool
	fail    error
	latency time.Duration
	gate    chan struct{}
	asked   map[question]int
}

func newFakeReviews() *fakeReviews {
	return &fakeReviews{grants: map[question]bool{}, asked: map[question]int{}}
}

func (f *fakeReviews) MayUse(ctx context.Context, namespace, serviceAccount, credSpecName string) (bool, string, error) {
	q := question{namespace, serviceAccount, credSpecName}
	f.mu.Lock()
	f.asked[q]++
	gate, latency := f.gate, f.latency
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return false, "", ctx.Err()
		}
	}
	time.Sleep(latency)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return false, "", f.fail
	}
	if f.grants[q] {
		return true, "", nil
	}
	return false, "no RoleBinding", nil
}

func (f *fakeReviews) set(q question, allowed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.grants[q] = allowed
}

func (f *fakeReviews) count(q question) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[q]
}

// answers is gmsa_webhook_authorization_answers_total{source}.
func answers(t *testing.T, m *webhook.Metrics, source string) int {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "gmsa_webhook_authorization_answers_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					return int(metric.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

var webapp = question{"team-a", "web", "webapp1"}

func ask(t *testing.T, a *SharedAuthorizer, q question) bool {
	t.Helper()
	ok, _, err := a.MayUse(context.Background(), q.namespace, q.serviceAccount, q.credSpec)
	if err != nil {
		t.Fatalf("MayUse(%v): %v", q, err)
	}
	return ok
}

// Identical questions asked together share one review; another question
// gets a review of its own.
func TestSharedAuthorizerSharesOneReviewInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reviews := newFakeReviews()
		reviews.set(webapp, true)
		reviews.gate = make(chan struct{})
		m := webhook.NewMetrics()
		a := NewSharedAuthorizer(reviews, SharedAuthorizerOptions{TTL: -1, Metrics: m})
		other := question{"team-a", "intruder", "webapp1"}

		const n = 64
		got := make([]bool, n+1)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i] = ask(t, a, webapp) })
		}
		wg.Go(func() { got[n] = ask(t, a, other) })
		synctest.Wait() // every caller is waiting for a review
		close(reviews.gate)
		wg.Wait()

		if c := reviews.count(webapp); c != 1 {
			t.Errorf("%d concurrent identical questions sent %d reviews, want 1", n, c)
		}
		if c := reviews.count(other); c != 1 {
			t.Errorf("another question sent %d reviews, want 1", c)
		}
		for i := range n {
			if !got[i] {
				t.Fatalf("caller %d was denied; the review allowed", i)
			}
		}
		if got[n] {
			t.Error("the other question was allowed; its review denied")
		}
		if r, s, c := answers(t, m, SourceReview), answers(t, m, SourceShared), answers(t, m, SourceCache); r != 2 || s != n-1 || c != 0 {
			t.Errorf("answers by source: review %d, shared %d, cache %d; want 2, %d, 0", r, s, c, n-1)
		}

		// Without a TTL nothing is reused once the review is done.
		reviews.gate = nil
		ask(t, a, webapp)
		if c := reviews.count(webapp); c != 2 {
			t.Errorf("a later question sent %d reviews in all, want 2 (no decision cache)", c)
		}
	})
}

// A decision, allowed or denied, is reused until TTL after its review was
// sent, and not after: a revoked grant stops being honoured, and a new
// grant starts being, within the TTL.
func TestSharedAuthorizerReusesDecisionsForTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 2 * time.Second
		reviews := newFakeReviews()
		reviews.latency = 300 * time.Millisecond
		reviews.set(webapp, true)
		m := webhook.NewMetrics()
		a := NewSharedAuthorizer(reviews, SharedAuthorizerOptions{TTL: ttl, Metrics: m})

		sent := time.Now()
		if !ask(t, a, webapp) {
			t.Fatal("denied; the review allowed")
		}
		reviews.set(webapp, false) // the RoleBinding is deleted
		time.Sleep(ttl - time.Since(sent) - time.Millisecond)
		if !ask(t, a, webapp) {
			t.Fatal("denied before the TTL ran out: the decision was not reused")
		}
		if c := reviews.count(webapp); c != 1 {
			t.Fatalf("%d reviews within the TTL, want 1", c)
		}
		time.Sleep(2 * time.Millisecond) // just past TTL since the review was sent
		sent = time.Now()
		if ask(t, a, webapp) {
			t.Fatal("allowed TTL after the review was sent: a revoked grant outlived the TTL")
		}

		reviews.set(webapp, true) // granted again
		time.Sleep(ttl - time.Since(sent) - time.Millisecond)
		if ask(t, a, webapp) {
			t.Fatal("a denial was not reused within the TTL")
		}
		time.Sleep(2 * time.Millisecond)
		if !ask(t, a, webapp) {
			t.Fatal("still denied TTL after the denying review was sent")
		}
		if c := reviews.count(webapp); c != 3 {
			t.Errorf("%d reviews, want 3", c)
		}
		if r, c := answers(t, m, SourceReview), answers(t, m, SourceCache); r != 3 || c != 2 {
			t.Errorf("answers by source: review %d, cache %d; want 3, 2", r, c)
		}
	})
}

// A review slower than the TTL leaves nothing to reuse.
func TestSharedAuthorizerKeepsNoDecisionOlderThanTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reviews := newFakeReviews()
		reviews.latency = 3 * time.Second
		reviews.set(webapp, true)
		a := NewSharedAuthorizer(reviews, SharedAuthorizerOptions{TTL: 2 * time.Second})
		ask(t, a, webapp)
		ask(t, a, webapp)
		if c := reviews.count(webapp); c != 2 {
			t.Errorf("%d reviews, want 2: an answer older than the TTL was reused", c)
		}
	})
}

// An error is returned to every caller sharing the review and never reused.
func TestSharedAuthorizerDoesNotKeepErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reviews := newFakeReviews()
		reviews.set(webapp, true)
		reviews.fail = errors.New("apiserver unavailable")
		a := NewSharedAuthorizer(reviews, SharedAuthorizerOptions{TTL: time.Minute})
		if _, _, err := a.MayUse(context.Background(), webapp.namespace, webapp.serviceAccount, webapp.credSpec); err == nil {
			t.Fatal("no error from a failed review")
		}
		reviews.fail = nil
		if !ask(t, a, webapp) {
			t.Fatal("denied after the API server came back")
		}
		if c := reviews.count(webapp); c != 2 {
			t.Errorf("%d reviews, want 2: the error was reused", c)
		}
	})
}

// A caller that gives up gets its context's error; the review goes on for
// the others, and its decision is kept.
func TestSharedAuthorizerCallerGivingUpDoesNotCancelTheReview(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reviews := newFakeReviews()
		reviews.set(webapp, true)
		reviews.gate = make(chan struct{})
		a := NewSharedAuthorizer(reviews, SharedAuthorizerOptions{TTL: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		var leaderErr error
		var otherAllowed bool
		var wg sync.WaitGroup
		wg.Go(func() { _, _, leaderErr = a.MayUse(ctx, webapp.namespace, webapp.serviceAccount, webapp.credSpec) })
		synctest.Wait()
		wg.Go(func() { otherAllowed = ask(t, a, webapp) })
		synctest.Wait()
		cancel()
		synctest.Wait()
		close(reviews.gate)
		wg.Wait()
		if !errors.Is(leaderErr, context.Canceled) {
			t.Errorf("the caller that gave up got %v, want context.Canceled", leaderErr)
		}
		if !otherAllowed {
			t.Error("the caller that waited was denied; the review allowed")
		}
		ask(t, a, webapp)
		if c := reviews.count(webapp); c != 1 {
			t.Errorf("%d reviews, want 1", c)
		}
	})
}

// The cache holds at most Size decisions, dropping the least recently used.
func TestSharedAuthorizerIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reviews := newFakeReviews()
		a := NewSharedAuthorizer(reviews, SharedAuthorizerOptions{TTL: time.Minute, Size: 2})
		q1, q2, q3 := question{"a", "sa", "one"}, question{"a", "sa", "two"}, question{"a", "sa", "three"}
		for _, q := range []question{q1, q2, q3, q3, q2, q1} {
			ask(t, a, q)
		}
		if c1, c2, c3 := reviews.count(q1), reviews.count(q2), reviews.count(q3); c1 != 2 || c2 != 1 || c3 != 1 {
			t.Errorf("reviews: %d, %d, %d; want 2, 1, 1 (q1 dropped when q3 came)", c1, c2, c3)
		}
	})
}

// Questions that differ only in where a name ends are different questions.
func TestQuestionKeysAreUnambiguous(t *testing.T) {
	qs := []question{{"a", "b1", "c"}, {"a", "b", "1c"}, {"a1", "b", "c"}, {"a", "1b", "c"}, {"a:", "b", "c"}, {"a", ":b", "c"}}
	seen := map[string]question{}
	for _, q := range qs {
		if p, ok := seen[q.key()]; ok {
			t.Errorf("%v and %v share key %q", p, q, q.key())
		}
		seen[q.key()] = q
	}
}
