package sweep_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/sweep"
)

// gateLister counts its list calls and how many run at once; with
// blockFirst set, the first call waits for release (or its context).
type gateLister struct {
	discovery.Lister
	blockFirst                   bool
	release                      chan struct{}
	calls, inFlight, maxInFlight atomic.Int64
}

func newGateLister(l discovery.Lister, blockFirst bool) *gateLister {
	return &gateLister{Lister: l, blockFirst: blockFirst, release: make(chan struct{})}
}

func (g *gateLister) ListConversations(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error) {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for m := g.maxInFlight.Load(); n > m && !g.maxInFlight.CompareAndSwap(m, n); m = g.maxInFlight.Load() {
	}
	if g.calls.Add(1) == 1 && g.blockFirst {
		select {
		case <-g.release:
		case <-ctx.Done():
			return coze.Page{}, coze.Result{}, ctx.Err()
		}
	}
	return g.Lister.ListConversations(ctx, q)
}

// withSweeper returns an edit that gives a scheduler its own sweeper,
// b's with lister.
func withSweeper(b *bundle, lister discovery.Lister) func(*sweep.Scheduler) {
	return func(s *sweep.Scheduler) {
		sw := *b.sweeper
		sw.Lister = lister
		s.Sweepers = map[string]*sweep.Sweeper{"default": &sw}
	}
}

// redisNowMs is Redis's clock, in ms.
func redisNowMs(t *testing.T, b *bundle) int64 {
	t.Helper()
	now, err := b.rdb.Time(b.ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMilli()
}

// TestLiveSchedulerTakesOverACrashedRun: a run whose worker crashed
// (running, lease still alive when the other scheduler starts) is run
// again, into the same batch, by a scheduler that is already up, once the
// lease runs out; not only by one that starts.
func TestLiveSchedulerTakesOverACrashedRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AddConversations(cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: time.Now().Add(-48 * time.Hour)})
	f := newFleet(t, b, "0 3 * * *", sweep.Spec{Name: "nightly", BotIDs: []string{botA}, OlderThan: time.Hour})
	tick := f.sched.Next(time.Now().Add(-24 * time.Hour)) // the latest tick: no catch-up due
	key := keyspace.New(keyspace.DefaultPrefix).Sweep("nightly")
	leaseUntil := redisNowMs(t, b) + 2000
	if err := b.rdb.HSet(b.ctx, key, "tick", tick.Unix(), "state", "running", "holder", "crashed", "lease_until", leaseUntil,
		"since", tick.Add(-time.Hour).Unix()).Err(); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	waitFor(t, 20*time.Second, "the crashed run to be run again", func() bool { return f.runs(sweep.ResultSuccess) == 1 })
	if ran := redisNowMs(t, b); ran < leaseUntil {
		t.Errorf("run again at %d, before the lease ran out at %d", ran, leaseUntil)
	}
	rec := b.rdb.HGetAll(b.ctx, key).Val()
	if rec["state"] != "success" || rec["batch"] != sweep.BatchName("nightly", tick) || rec["tick"] != strconv.FormatInt(tick.Unix(), 10) {
		t.Errorf("record %v", rec)
	}
	if ticks := f.ticks(t); len(ticks) != 1 || !ticks[0].Equal(tick) {
		t.Errorf("batches of ticks %v, want %v", ticks, tick)
	}
	if got := b.queued(t, "default"); len(got) != 1 || got[0] != id(1) {
		t.Errorf("queued %v", got)
	}
}

// TestShutdownRecordsTheRunAbandoned: a scheduler shut down mid-run
// records the run as abandoned, lease ended, with its batch, instead of
// leaving it running.
func TestShutdownRecordsTheRunAbandoned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AddConversations(cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: time.Now().Add(-48 * time.Hour)})
	f := newFleet(t, b, "0 3 * * *", sweep.Spec{Name: "nightly", BotIDs: []string{botA}, OlderThan: time.Hour})
	key := keyspace.New(keyspace.DefaultPrefix).Sweep("nightly")
	if err := b.rdb.HSet(b.ctx, key, "since", time.Now().Add(-48*time.Hour).Unix()).Err(); err != nil {
		t.Fatal(err)
	}
	gate := newGateLister(b.client, true)
	stop := f.startWith(t, withSweeper(b, gate)) // runs the missed tick, and blocks in it
	waitFor(t, 20*time.Second, "the catch-up run to list", func() bool { return gate.inFlight.Load() == 1 })
	tick := f.sched.Next(time.Now().Add(-24 * time.Hour))
	stop()
	rec := b.rdb.HGetAll(b.ctx, key).Val()
	if rec["state"] != "abandoned" || rec["lease_until"] != "0" || rec["batch"] != sweep.BatchName("nightly", tick) ||
		rec["tick"] != strconv.FormatInt(tick.Unix(), 10) || rec["last_success"] != "" {
		t.Errorf("record after a shutdown mid-run: %v; want tick %d abandoned, lease 0, its batch", rec, tick.Unix())
	}
	if n := f.runs(sweep.ResultSuccess) + f.runs(sweep.ResultFailure); n != 0 {
		t.Errorf("%d runs counted for a run stopped by shutdown", n)
	}
}

// TestLiveSchedulerRunsAnAbandonedRun: a scheduler that is already up
// runs the tick of a run another stopped at shutdown, into the same
// batch, without waiting for a lease (nor for a start).
func TestLiveSchedulerRunsAnAbandonedRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AddConversations(cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: time.Now().Add(-48 * time.Hour)})
	f := newFleet(t, b, "0 3 * * *", sweep.Spec{Name: "nightly", BotIDs: []string{botA}, OlderThan: time.Hour})
	key := keyspace.New(keyspace.DefaultPrefix).Sweep("nightly")
	if err := b.rdb.HSet(b.ctx, key, "since", time.Now().Add(-48*time.Hour).Unix()).Err(); err != nil {
		t.Fatal(err)
	}
	gate := newGateLister(b.client, true)
	stopA := f.startWith(t, withSweeper(b, gate))
	waitFor(t, 20*time.Second, "A's catch-up run to list", func() bool { return gate.inFlight.Load() == 1 })
	tick := f.sched.Next(time.Now().Add(-24 * time.Hour))
	f.start(t) // B: finds A's run under way
	waitFor(t, 20*time.Second, "B to read the record", func() bool {
		return testutil.ToFloat64(f.metrics[1].LastSuccess.WithLabelValues("nightly")) > 0
	})
	stopA()
	waitFor(t, 20*time.Second, "B to run the abandoned tick", func() bool {
		return testutil.ToFloat64(f.metrics[1].Runs.WithLabelValues("nightly", sweep.ResultSuccess)) == 1
	})
	rec := b.rdb.HGetAll(b.ctx, key).Val()
	if rec["state"] != "success" || rec["batch"] != sweep.BatchName("nightly", tick) || rec["last_success"] == "" {
		t.Errorf("record %v", rec)
	}
	if ticks := f.ticks(t); len(ticks) != 1 || !ticks[0].Equal(tick) {
		t.Errorf("batches of ticks %v, want %v", ticks, tick)
	}
	if got := b.queued(t, "default"); len(got) != 1 || got[0] != id(1) {
		t.Errorf("queued %v", got)
	}
}

// TestTicksDoNotOverlap: while a run's lease is alive, no scheduler claims
// a later tick, so two runs of one sweep never list at once; when the
// long run ends, the latest tick due runs once, not each tick it outlasted.
func TestTicksDoNotOverlap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AddConversations(cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: time.Now().Add(-48 * time.Hour)})
	gate := newGateLister(b.client, true)
	b.sweeper.Lister = gate
	f := newFleet(t, b, "* * * * * *", sweep.Spec{Name: "everysec", BotIDs: []string{botA}, OlderThan: time.Hour})
	stops := []func(){f.start(t), f.start(t)}
	waitFor(t, 20*time.Second, "a run to list", func() bool { return gate.inFlight.Load() == 1 })
	blocked := time.Now()
	waitFor(t, 20*time.Second, "five ticks to pass", func() bool { return time.Now().After(blocked.Add(5 * time.Second)) })
	if n := gate.calls.Load(); n != 1 {
		t.Errorf("%d list calls while the first run was under way, its lease alive; want none but its own", n)
	}
	close(gate.release)
	waitFor(t, 20*time.Second, "three runs", func() bool { return f.runs(sweep.ResultSuccess) >= 3 })
	for _, stop := range stops {
		stop()
	}
	ticks := f.ticks(t)
	if gate.maxInFlight.Load() != 1 || len(ticks) < 3 || f.runs(sweep.ResultFailure) != 0 {
		t.Fatalf("max runs at once %d, ticks %v, %d failures", gate.maxInFlight.Load(), ticks, f.runs(sweep.ResultFailure))
	}
	if ticks[1].Before(blocked.Add(5 * time.Second).Truncate(time.Second)) {
		t.Errorf("ticks %v: a tick outlasted by the run that began at %v ran on its own", ticks, blocked)
	}
	if !consecutive(ticks[1:], time.Second) {
		t.Errorf("ticks after the catch-up %v: want each second", ticks[1:])
	}
}

// logRecorder keeps the messages of the records it handles.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// TestSchedulerAheadOfRedisClaimsNoTick: a worker whose clock runs an hour
// ahead of Redis's claims no tick (it would sweep conversations an hour
// younger than the policy), and logs why.
func TestSchedulerAheadOfRedisClaimsNoTick(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.AddConversations(cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: time.Now().Add(-90 * time.Minute)})
	f := newFleet(t, b, "* * * * * *", sweep.Spec{Name: "skewed", BotIDs: []string{botA}, OlderThan: 2 * time.Hour})
	logs := &logRecorder{}
	stop := f.startWith(t, func(s *sweep.Scheduler) {
		s.Now = func() time.Time { return time.Now().Add(time.Hour) }
		s.Logger = slog.New(logs)
	})
	waitFor(t, 20*time.Second, "the refused claim's log line", func() bool { return logs.has("clock runs ahead") })
	stop()
	key := keyspace.New(keyspace.DefaultPrefix).Sweep("skewed")
	if calls, runs, rec := b.api.ListCalls(), f.runs(sweep.ResultSuccess)+f.runs(sweep.ResultFailure), b.rdb.HGetAll(b.ctx, key).Val(); calls != 0 || runs != 0 || rec["tick"] != "" {
		t.Errorf("a worker an hour ahead: %d list calls, %d runs, record %v; want no claim", calls, runs, rec)
	}
	if got := b.queued(t, "default"); len(got) != 0 {
		t.Errorf("queued %v: a conversation younger than the policy", got)
	}
}
