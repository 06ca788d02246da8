package sweep_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/sweep"
)

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fleet is schedulers sharing one Redis and one fake.
type fleet struct {
	b       *bundle
	sched   sweep.Scheduled
	metrics []*sweep.Metrics
}

func newFleet(t *testing.T, b *bundle, schedule string, spec sweep.Spec) *fleet {
	t.Helper()
	b.sweeper.Now = nil // the real clock: the schedule's
	s, err := sweep.NewScheduled(spec, schedule, "")
	if err != nil {
		t.Fatal(err)
	}
	return &fleet{b: b, sched: s}
}

// start starts a scheduler; stop stops it and waits for it.
func (f *fleet) start(t *testing.T) (stop func()) {
	t.Helper()
	return f.startWith(t, nil)
}

// startWith starts a scheduler that edit, when set, changes first.
func (f *fleet) startWith(t *testing.T, edit func(*sweep.Scheduler)) (stop func()) {
	t.Helper()
	m := sweep.NewMetrics(prometheus.NewRegistry())
	f.metrics = append(f.metrics, m)
	ctx, cancel := context.WithCancel(f.b.ctx)
	s := &sweep.Scheduler{Redis: f.b.rdb, Sweeps: []sweep.Scheduled{f.sched}, Metrics: m,
		Sweepers: map[string]*sweep.Sweeper{"default": f.b.sweeper}, Lease: 3 * time.Second}
	if edit != nil {
		edit(s)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return stop
}

// runs sums the runs of result over every scheduler started.
func (f *fleet) runs(result string) int {
	n := 0.0
	for _, m := range f.metrics {
		n += testutil.ToFloat64(m.Runs.WithLabelValues(f.sched.Name, result))
	}
	return int(n)
}

// ticks returns the ticks of the sweep's batches, in order.
func (f *fleet) ticks(t *testing.T) []time.Time {
	t.Helper()
	names, err := ledger.New(f.b.rdb).RecentBatchNames(f.b.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, n := range names {
		if at, ok := strings.CutPrefix(n, f.sched.Name+"-"); ok {
			tick, err := time.Parse("20060102T150405Z", at)
			if err != nil {
				t.Fatalf("batch %s: %v", n, err)
			}
			out = append(out, tick)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// consecutive reports whether ticks follow each other every step.
func consecutive(ticks []time.Time, step time.Duration) bool {
	for i := 1; i < len(ticks); i++ {
		if ticks[i].Sub(ticks[i-1]) != step {
			return false
		}
	}
	return true
}

// TestSchedulersRunEachTickOnce is acceptance point 5 at CI size: three
// schedulers on one Redis and one fake, a tick every 2 s. Each tick runs
// once (one batch and one list call per tick, runs summed over the three
// equal to the ticks); with every scheduler stopped for two ticks, one
// that starts runs the latest missed tick once, then goes on.
func TestSchedulersRunEachTickOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	old := time.Now().Add(-48 * time.Hour)
	b.api.AddConversations(
		cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: old},
		cozetest.Conversation{ID: id(2), BotID: botA, CreatedAt: old.Add(time.Second)},
		cozetest.Conversation{ID: id(3), BotID: botA, CreatedAt: old.Add(2 * time.Second)},
		cozetest.Conversation{ID: id(4), BotID: botA, CreatedAt: time.Now().Add(time.Hour)}, // stops each walk on its first page
	)
	f := newFleet(t, b, "*/2 * * * * *", sweep.Spec{Name: "every2s", BotIDs: []string{botA}, OlderThan: time.Hour})
	stops := []func(){f.start(t), f.start(t), f.start(t)}
	waitFor(t, 30*time.Second, "five runs", func() bool { return f.runs(sweep.ResultSuccess) >= 5 })
	for _, stop := range stops {
		stop()
	}
	before := f.ticks(t)
	runs, calls := f.runs(sweep.ResultSuccess), b.api.ListCalls()
	if len(before) != runs || calls != runs || !consecutive(before, 2*time.Second) || f.runs(sweep.ResultFailure) != 0 {
		t.Fatalf("three schedulers: %d runs, %d list calls, ticks %v; want one run, one list call and one batch per tick", runs, calls, before)
	}
	for i, m := range f.metrics {
		if got := testutil.ToFloat64(m.LastSuccess.WithLabelValues("every2s")); got < float64(before[0].Unix()) {
			t.Errorf("scheduler %d: last success %v", i, got)
		}
		if got := testutil.ToFloat64(m.Interval.WithLabelValues("every2s")); got != 2 {
			t.Errorf("scheduler %d: interval %v", i, got)
		}
	}

	// Down for two ticks, then one scheduler starts.
	last := before[len(before)-1]
	waitFor(t, 30*time.Second, "two ticks to pass", func() bool { return time.Now().After(last.Add(5 * time.Second)) })
	restart := time.Now()
	stop := f.start(t)
	waitFor(t, 30*time.Second, "the catch-up run and one more", func() bool { return f.runs(sweep.ResultSuccess) >= runs+2 })
	stop() // no run under way while the ticks and calls are counted
	after := f.ticks(t)[len(before):]
	caughtUp := 0
	for _, tick := range after {
		if tick.Before(restart) {
			caughtUp++
		}
	}
	if caughtUp != 1 || after[0].Before(last.Add(4*time.Second)) || !consecutive(after, 2*time.Second) ||
		b.api.ListCalls()-calls != f.runs(sweep.ResultSuccess)-runs {
		t.Errorf("after the restart at %v (last tick %v): ticks %v, %d list calls for %d runs; want the latest missed tick once, then each tick",
			restart, last, after, b.api.ListCalls()-calls, f.runs(sweep.ResultSuccess)-runs)
	}
	t.Logf("%d ticks with three schedulers: %d runs, %d list calls; after two missed ticks, one catch-up run of %v",
		len(before), runs, calls, after[0].Format(time.TimeOnly))
}

// TestSchedulerTakesOverAnAbandonedRun: a run whose worker died (running,
// lease over) is run again by the next scheduler to start, into the same
// batch.
func TestSchedulerTakesOverAnAbandonedRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AddConversations(cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: time.Now().Add(-48 * time.Hour)})
	f := newFleet(t, b, "0 3 * * *", sweep.Spec{Name: "nightly", BotIDs: []string{botA}, OlderThan: time.Hour})
	tick := f.sched.Next(time.Now().Add(-24 * time.Hour))
	key := keyspace.New(keyspace.DefaultPrefix).Sweep("nightly")
	if err := b.rdb.HSet(b.ctx, key, "tick", tick.Unix(), "state", "running", "holder", "dead", "lease_until", 0,
		"since", tick.Add(-time.Hour).Unix()).Err(); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	waitFor(t, 20*time.Second, "the abandoned run to be run again", func() bool { return f.runs(sweep.ResultSuccess) == 1 })
	rec := b.rdb.HGetAll(b.ctx, key).Val()
	if rec["state"] != "success" || rec["batch"] != sweep.BatchName("nightly", tick) || rec["last_success"] == "" {
		t.Errorf("record %v", rec)
	}
	if ticks := f.ticks(t); len(ticks) != 1 || !ticks[0].Equal(tick) {
		t.Errorf("batches of ticks %v, want %v", ticks, tick)
	}
}

// flakyLister fails its first list calls, as an API outage does.
type flakyLister struct {
	discovery.Lister
	failures *atomic.Int64
}

func (f flakyLister) ListConversations(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error) {
	if f.failures.Add(-1) >= 0 {
		res := coze.Result{Class: coze.ClassAuth, Code: 4100, HasCode: true}
		return coze.Page{}, res, &coze.Error{Op: "list", Result: res}
	}
	return f.Lister.ListConversations(ctx, q)
}

// TestSchedulerRecordsAFailedRun: a run whose listing fails counts as a
// failure, and the next tick runs again and succeeds.
func TestSchedulerRecordsAFailedRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AddConversations(cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: time.Now().Add(-48 * time.Hour)})
	failures := &atomic.Int64{}
	failures.Store(1)
	b.sweeper.Lister = flakyLister{Lister: b.client, failures: failures}
	f := newFleet(t, b, "* * * * * *", sweep.Spec{Name: "flaky", BotIDs: []string{botA}, OlderThan: time.Hour})
	f.start(t)
	waitFor(t, 20*time.Second, "a failed run, then a successful one", func() bool {
		return f.runs(sweep.ResultFailure) == 1 && f.runs(sweep.ResultSuccess) >= 1
	})
	key := keyspace.New(keyspace.DefaultPrefix).Sweep("flaky")
	waitFor(t, 5*time.Second, "the record of the success", func() bool { return b.rdb.HGet(b.ctx, key, "last_success").Val() != "" })
	if ticks := f.ticks(t); len(ticks) < 1 {
		t.Errorf("no batch after the failure")
	}
}
