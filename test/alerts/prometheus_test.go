package alerts_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
)

// prometheus is the part of a Prometheus server the rules need, driven by a
// simulated clock: each step scrapes every target for real (HTTP GET of
// /metrics, parsed by Prometheus's own text parser), stores the samples at
// the simulated time with the target's job and instance labels, an up
// sample and staleness markers as Prometheus's scrape loop writes them, and
// then evaluates the rule groups at that time with Prometheus's rules
// package and PromQL engine. Simulated time lets a test hold a state for
// 15 minutes ("for: 15m") in a few seconds: the state itself is real, only
// the time between scrapes is not.
type prometheus struct {
	db      *teststorage.TestStorage
	engine  *promql.Engine
	groups  []*rules.Group
	targets []*target
	now     time.Time
	// seen are the metric names any scrape returned.
	seen map[string]bool
}

// target is one scrape target, with what its last successful scrape
// returned (for staleness markers).
type target struct {
	job, instance, url string
	last               map[uint64]labels.Labels
}

// newPrometheus loads the rules file at path and starts the clock at start.
func newPrometheus(path string, start time.Time, targets ...*target) (*prometheus, error) {
	db, err := teststorage.NewWithError()
	if err != nil {
		return nil, err
	}
	p := &prometheus{db: db, now: start, targets: targets, seen: map[string]bool{}}
	p.engine = promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: 10 * time.Second})
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(p.engine, db),
		AppendableV2: db,
		Queryable:    db,
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       promslog.NewNopLogger(),
	})
	groups, errs := m.LoadGroups(30*time.Second, labels.EmptyLabels(), "", nil, false, path)
	if len(errs) > 0 {
		db.Close()
		return nil, fmt.Errorf("load rules: %v", errs)
	}
	for _, g := range groups {
		p.groups = append(p.groups, g)
	}
	return p, nil
}

func (p *prometheus) Close() error { return p.db.Close() }

// Step advances the clock by d, scrapes every target and evaluates the
// rules. It fails on a rule that cannot be evaluated.
func (p *prometheus) Step(d time.Duration) error {
	p.now = p.now.Add(d)
	app := p.db.Appender(context.Background())
	for _, t := range p.targets {
		if err := p.scrape(app, t); err != nil {
			_ = app.Rollback()
			return err
		}
	}
	if err := app.Commit(); err != nil {
		return err
	}
	for _, g := range p.groups {
		g.Eval(context.Background(), p.now)
		for _, r := range g.Rules() {
			if err := r.LastError(); err != nil {
				return fmt.Errorf("rule %s at %s: %w", r.Name(), p.now.Format(time.RFC3339), err)
			}
		}
	}
	return nil
}

// Run steps every interval for d, calling each (when not nil) with the
// alerts firing after each step.
func (p *prometheus) Run(d, interval time.Duration, each func(firing map[string][]labels.Labels)) error {
	for elapsed := time.Duration(0); elapsed < d; elapsed += interval {
		if err := p.Step(interval); err != nil {
			return err
		}
		if each != nil {
			each(p.Firing())
		}
	}
	return nil
}

// Firing returns the labels of each firing alert, by alert name.
func (p *prometheus) Firing() map[string][]labels.Labels {
	out := map[string][]labels.Labels{}
	for _, g := range p.groups {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State == rules.StateFiring {
					out[ar.Name()] = append(out[ar.Name()], a.Labels)
				}
			}
		}
	}
	return out
}

// scrape appends what t serves now, as Prometheus's scrape loop does: the
// samples with job and instance, up (1, or 0 when the scrape fails), and a
// staleness marker for each series the previous scrape had and this one
// has not (every series, when it fails).
func (p *prometheus) scrape(app storage.Appender, t *target) error {
	ts := p.now.UnixMilli()
	series, values, scrapeErr := scrapeOnce(t)
	now := make(map[uint64]labels.Labels, len(series))
	for i, l := range series {
		now[l.Hash()] = l
		p.seen[l.Get(labels.MetricName)] = true
		if _, err := app.Append(0, l, ts, values[i]); err != nil {
			return fmt.Errorf("append %s: %w", l, err)
		}
	}
	for h, l := range t.last {
		if _, ok := now[h]; !ok {
			if _, err := app.Append(0, l, ts, math.Float64frombits(value.StaleNaN)); err != nil {
				return fmt.Errorf("append staleness marker %s: %w", l, err)
			}
		}
	}
	t.last = now
	up := 1.0
	if scrapeErr != nil {
		up = 0
	}
	upLabels := labels.FromStrings(labels.MetricName, "up", "job", t.job, "instance", t.instance)
	_, err := app.Append(0, upLabels, ts, up)
	return err
}

// scrapeOnce fetches and parses one target's metrics.
func scrapeOnce(t *target) ([]labels.Labels, []float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, t.url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", t.url, resp.Status)
	}
	parser, err := textparse.New(body, resp.Header.Get("Content-Type"), labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		return nil, nil, err
	}
	var (
		series []labels.Labels
		values []float64
	)
	for {
		e, err := parser.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parse %s: %w", t.url, err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, _, v := parser.Series()
		var l labels.Labels
		parser.Labels(&l)
		b := labels.NewBuilder(l)
		b.Set("job", t.job)
		b.Set("instance", t.instance)
		series = append(series, b.Labels())
		values = append(values, v)
	}
	return series, values, nil
}
