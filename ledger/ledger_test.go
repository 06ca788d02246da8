package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/maintenance"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

type bundle struct {
	ctx    context.Context
	srv    *redistest.Server
	rdb    *redis.Client
	ledger *ledger.Ledger
	now    time.Time
}

func setup(t *testing.T) bundle {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	return bundle{ctx: context.Background(), srv: srv, rdb: rdb, ledger: ledger.New(rdb), now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

// outbox reads the callback outbox the ledger fills.
func (b bundle) outbox() *maintenance.Store { return maintenance.NewStore(b.rdb, ledger.DefaultPrefix) }

// open creates a batch holding ids, and seals it.
func (b bundle) open(t *testing.T, spec ledger.BatchSpec, ids ...string) {
	t.Helper()
	a := b.adder(t, spec)
	if len(ids) > 0 {
		if _, err := a.Add(b.ctx, ids); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Seal(b.ctx); err != nil {
		t.Fatal(err)
	}
}

// adder opens a batch and returns its adder, unsealed.
func (b bundle) adder(t *testing.T, spec ledger.BatchSpec) *ledger.Adder {
	t.Helper()
	if spec.Created.IsZero() {
		spec.Created = b.now
	}
	if spec.Now == nil {
		spec.Now = func() time.Time { return b.now }
	}
	a, err := b.ledger.OpenBatch(b.ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (b bundle) batch(t *testing.T, name string) ledger.Batch {
	t.Helper()
	got, ok, err := b.ledger.Batch(b.ctx, name)
	if err != nil || !ok {
		t.Fatalf("batch %s: %v %v", name, ok, err)
	}
	return got
}

func (b bundle) record(t *testing.T, batch, id string, o ledger.Outcome, logID string) ledger.Recorded {
	t.Helper()
	code := int64(0)
	switch o {
	case ledger.NotFound:
		code = 4002
	case ledger.Failed, ledger.Retrying:
		code = 5000
	}
	r, err := b.ledger.Record(b.ctx, ledger.Attempt{
		ConversationID: id, Batch: batch, Queue: "default", Outcome: o,
		Code: code, HasCode: true, Msg: "msg " + string(o), HTTPStatus: 200, LogID: logID, At: b.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOpenBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	due := b.now.Add(72 * time.Hour)
	spec := ledger.BatchSpec{Name: "gdpr-1", Created: b.now, Due: due, Note: "ticket 118", CallbackURL: "http://127.0.0.1:1/cb"}
	if a, err := b.ledger.OpenBatch(b.ctx, spec); err != nil || !a.Created {
		t.Fatalf("first open: %+v %v", a, err)
	}
	if a, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "gdpr-1", Created: b.now.Add(time.Hour)}); err != nil || a.Created {
		t.Errorf("open without settings: %+v %v; want the existing batch", a, err)
	}
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "gdpr-1", Due: due.Add(time.Hour)}); !errors.Is(err, ledger.ErrBatchConflict) {
		t.Errorf("another due time: %v, want ErrBatchConflict", err)
	}
	got := b.batch(t, "gdpr-1")
	if !got.CreatedAt.Equal(b.now) || !got.DueAt.Equal(due) || got.Note != "ticket 118" || got.CallbackURL != spec.CallbackURL || got.TTL != ledger.DefaultTTL {
		t.Errorf("batch = %+v", got)
	}
	b.open(t, ledger.BatchSpec{Name: "default-due"})
	if got := b.batch(t, "default-due"); !got.DueAt.Equal(b.now.Add(ledger.DefaultDueIn)) {
		t.Errorf("default due = %v, want 30 days after creation", got.DueAt)
	}
}

func TestAddIDsCountsEachIDOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.adder(t, ledger.BatchSpec{Name: "x"})
	got, err := a.Add(b.ctx, []string{"1", "2", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(membership(got)) != "nnp" {
		t.Errorf("memberships %q, want nnp", membership(got))
	}
	b.record(t, "x", "2", ledger.Deleted, "L")
	got, _ = a.Add(b.ctx, []string{"2", "3"})
	if string(membership(got)) != "tn" {
		t.Errorf("memberships %q, want tn", membership(got))
	}
	if bt := b.batch(t, "x"); bt.Total != 3 || bt.Pending() != 2 || bt.Deleted != 1 {
		t.Errorf("batch %+v", bt)
	}
	_, _ = a.Seal(b.ctx)
	if _, err := b.ledger.CompleteIfDone(b.ctx, "nope", b.now); err != nil {
		t.Errorf("completing a batch that does not exist: %v", err)
	}
}

func membership(m []ledger.Membership) []byte {
	out := make([]byte, len(m))
	for i, x := range m {
		out[i] = byte(x)
	}
	return out
}

func TestRecordMovesOnlyForward(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "b1"}, "11")
	steps := []struct {
		outcome         ledger.Outcome
		wantTransitions int
		wantAttempts    int
	}{
		{ledger.Retrying, 0, 1},
		{ledger.Retrying, 0, 2},
		{ledger.NotFound, 1, 3},
		{ledger.Deleted, 0, 0}, // a duplicate run after the terminal outcome
		{ledger.Failed, 0, 0},
	}
	for i, s := range steps {
		got := b.record(t, "b1", "11", s.outcome, "L"+strconv.Itoa(i))
		if got.Transitions != s.wantTransitions || got.Attempts != s.wantAttempts {
			t.Errorf("step %d (%s): got %+v, want transitions=%d attempts=%d", i, s.outcome, got, s.wantTransitions, s.wantAttempts)
		}
	}
	e, ok, err := b.ledger.Entry(b.ctx, "b1", "11")
	if err != nil || !ok {
		t.Fatalf("Entry: %v %v", ok, err)
	}
	if e.Outcome != ledger.NotFound || e.LogID != "L2" || e.Attempts != 3 || e.Code != "4002" || !e.FinishedAt.Equal(b.now) {
		t.Errorf("entry = %+v", e)
	}
	f, ok, err := b.ledger.Failure(b.ctx, "b1", "11")
	if err != nil || !ok {
		t.Fatalf("Failure: %v %v", ok, err)
	}
	if f.Outcome != ledger.NotFound || f.Attempts != 3 || f.LogID != "L2" || f.Batch != "b1" || f.Queue != "default" {
		t.Errorf("failure = %+v", f)
	}
	if bt := b.batch(t, "b1"); bt.NotFound != 1 || bt.Pending() != 0 || bt.Completions != 1 || !bt.CompletedAt.Equal(b.now) {
		t.Errorf("batch %+v", bt)
	}
}

func TestDeletionClearsTheFailureRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "b1"}, "22")
	b.record(t, "b1", "22", ledger.Retrying, "LA")
	got := b.record(t, "b1", "22", ledger.Deleted, "LB")
	if got.Transitions != 1 || got.Attempts != 2 {
		t.Errorf("deleted after one failure: %+v, want 1 transition after 2 attempts", got)
	}
	if _, ok, _ := b.ledger.Failure(b.ctx, "b1", "22"); ok {
		t.Error("failure record still there after the deletion")
	}
	var n int
	_ = b.ledger.Failures(b.ctx, ledger.Filter{}, func(ledger.Failure) error { n++; return nil })
	if n != 0 {
		t.Errorf("failure index lists %d records, want 0", n)
	}
	e, _, _ := b.ledger.Entry(b.ctx, "b1", "22")
	if e.Outcome != ledger.Deleted || e.LogID != "LB" || e.Code != "0" {
		t.Errorf("entry = %+v", e)
	}
}

// TestConcurrentRecordsGiveOneTerminalOutcome races duplicate executions of
// the same task.
func TestConcurrentRecordsGiveOneTerminalOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "b1"}, "33")
	outcomes := []ledger.Outcome{ledger.Deleted, ledger.NotFound, ledger.Failed, ledger.Retrying}
	var wg sync.WaitGroup
	var mu sync.Mutex
	transitions := 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := b.ledger.Record(b.ctx, ledger.Attempt{ConversationID: "33", Batch: "b1", Outcome: outcomes[i%4], At: b.now})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			transitions += got.Transitions
			mu.Unlock()
		}()
	}
	wg.Wait()
	if transitions != 1 {
		t.Errorf("%d transitions, want exactly 1", transitions)
	}
	if bt := b.batch(t, "b1"); bt.Finished() != 1 || bt.Total != 1 {
		t.Errorf("batch tallies %+v", bt)
	}
}

// TestLinkedBatchGetsTheOutcome: an id enqueued into batch B while its task
// (from batch A) was queued is recorded in both, once each.
func TestLinkedBatchGetsTheOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "A"}, "44", "45")
	b.open(t, ledger.BatchSpec{Name: "B"}, "44")
	taskKey := asynqwire.TaskKey("default", "del:44")
	b.rdb.HSet(b.ctx, taskKey, "state", "pending")
	if state, err := b.ledger.Link(b.ctx, "B", "44", "default", "del:44"); err != nil || state != "pending" {
		t.Fatalf("Link = %q, %v", state, err)
	}
	got := b.record(t, "A", "44", ledger.Deleted, "L44")
	if got.Transitions != 2 || len(got.Completed) != 1 || got.Completed[0] != "B" {
		t.Errorf("record = %+v, want 2 transitions completing B", got)
	}
	for _, name := range []string{"A", "B"} {
		if e, _, _ := b.ledger.Entry(b.ctx, name, "44"); e.Outcome != ledger.Deleted || e.LogID != "L44" {
			t.Errorf("batch %s entry %+v", name, e)
		}
	}
	if again := b.record(t, "B", "44", ledger.NotFound, "L2"); again.Transitions != 0 {
		t.Errorf("B's own late task counted again: %+v", again)
	}
	if bt := b.batch(t, "B"); bt.Deleted != 1 || bt.NotFound != 0 || bt.Total != 1 {
		t.Errorf("batch B %+v", bt)
	}
}

// TestEntryKeyAndLinkSeeAFinishedID: a producer that found an id pending
// may race a worker that finishes it. EntryKey names where the id's entry
// is (for a guarded task write), and Link tells "finished" rather than
// "gone", so that neither queues a second task.
func TestEntryKeyAndLinkSeeAFinishedID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, expected := range []int{0, 10} {
		name := fmt.Sprintf("race-%d", expected)
		a := b.adder(t, ledger.BatchSpec{Name: name, ExpectedIDs: expected})
		if _, err := a.Add(b.ctx, []string{"7379996104798150001"}); err != nil {
			t.Fatal(err)
		}
		key := a.EntryKey("7379996104798150001")
		if v := b.rdb.HGet(b.ctx, key, "7379996104798150001").Val(); !slices.Contains(ledger.PendingValues(), v) {
			t.Fatalf("%s: entry at EntryKey %q is %q, want a pending value", name, key, v)
		}
		if state, err := b.ledger.Link(b.ctx, name, "7379996104798150001", "default", "del:7379996104798150001"); err != nil || state != "gone" {
			t.Errorf("%s: Link of a pending id without a task = %q, %v; want gone", name, state, err)
		}
		b.record(t, name, "7379996104798150001", ledger.Deleted, "L1")
		if v := b.rdb.HGet(b.ctx, key, "7379996104798150001").Val(); slices.Contains(ledger.PendingValues(), v) {
			t.Errorf("%s: entry at EntryKey still pending after the record: %q", name, v)
		}
		if state, err := b.ledger.Link(b.ctx, name, "7379996104798150001", "default", "del:7379996104798150001"); err != nil || state != "finished" {
			t.Errorf("%s: Link of a finished id = %q, %v; want finished", name, state, err)
		}
	}
}

func TestAsynqTaskKeyMatchesAsynq(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := asynq.NewClientFromRedisClient(b.rdb)
	if _, err := client.Enqueue(asynq.NewTask("x", nil), asynq.TaskID("del:7"), asynq.Queue("gdpr")); err != nil {
		t.Fatal(err)
	}
	if state := b.rdb.HGet(b.ctx, asynqwire.TaskKey("gdpr", "del:7"), "state").Val(); state != "pending" {
		t.Errorf("state at %s = %q: asynq's key layout changed", asynqwire.TaskKey("gdpr", "del:7"), state)
	}
}

func TestCompletionAndReopen(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "c", CallbackURL: "http://127.0.0.1:1/"}, "1", "2")
	if r := b.record(t, "c", "1", ledger.Deleted, "L1"); len(r.Completed) != 0 {
		t.Errorf("completed with an id pending: %+v", r)
	}
	if r := b.record(t, "c", "2", ledger.Failed, "L2"); len(r.Completed) != 1 {
		t.Errorf("not completed: %+v", r)
	}
	pending, _ := b.outbox().PendingCallbacks(b.ctx)
	if len(pending) != 1 || pending[0].Batch != "c" || pending[0].N != 1 || pending[0].Total != 2 ||
		pending[0].Deleted != 1 || pending[0].Failed != 1 || !pending[0].CompletedAt.Equal(b.now) {
		t.Errorf("pending callbacks %+v", pending)
	}
	_ = b.outbox().CallbackQueued(b.ctx, pending[0])

	if ok, err := b.ledger.Reopen(b.ctx, "c", "2", ledger.Failed); !ok || err != nil {
		t.Fatalf("Reopen: %v %v", ok, err)
	}
	if ok, _ := b.ledger.Reopen(b.ctx, "c", "2", ledger.Failed); ok {
		t.Error("Reopen twice must be a no-op")
	}
	bt := b.batch(t, "c")
	if bt.Failed != 0 || bt.Pending() != 1 || bt.State(b.now) != ledger.StateOpen {
		t.Errorf("after reopen: %+v state %s", bt, bt.State(b.now))
	}
	if f, _, _ := b.ledger.Failure(b.ctx, "c", "2"); f.Outcome != ledger.Retrying {
		t.Errorf("failure record outcome %s, want retrying", f.Outcome)
	}
	b.record(t, "c", "2", ledger.Deleted, "L3")
	bt = b.batch(t, "c")
	if bt.Completions != 2 || bt.Deleted != 2 || bt.State(b.now) != ledger.StateComplete {
		t.Errorf("after the second completion: %+v", bt)
	}
	if pending, _ := b.outbox().PendingCallbacks(b.ctx); len(pending) != 1 || pending[0].N != 2 {
		t.Errorf("second completion's callback: %+v", pending)
	}
}

// TestOverdueWithAnInjectedClock moves time through the clock the ledger is
// given, not by sleeping.
func TestOverdueWithAnInjectedClock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "due-soon", Due: b.now.Add(time.Hour)}, "1")
	b.open(t, ledger.BatchSpec{Name: "due-later", Due: b.now.Add(48 * time.Hour)}, "2")
	b.open(t, ledger.BatchSpec{Name: "done"}, "3")
	b.record(t, "done", "3", ledger.Deleted, "L")

	stats, err := b.ledger.OpenStats(b.ctx, b.now)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Open != 2 || stats.Overdue != 0 || stats.Complete != 1 || !stats.OldestDue.Equal(b.now.Add(time.Hour)) {
		t.Errorf("now: %+v", stats)
	}
	later := b.now.Add(2 * time.Hour)
	stats, _ = b.ledger.OpenStats(b.ctx, later)
	if stats.Open != 1 || stats.Overdue != 1 || stats.Complete != 1 {
		t.Errorf("two hours later: %+v", stats)
	}
	if s := b.batch(t, "due-soon").State(later); s != ledger.StateOverdue {
		t.Errorf("state two hours later %s, want overdue", s)
	}
	if s := b.batch(t, "due-later").State(later); s != ledger.StateOpen {
		t.Errorf("state %s, want open", s)
	}
}

func TestRateAndETA(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 100 {
		ids = append(ids, strconv.Itoa(1000+i))
	}
	b.open(t, ledger.BatchSpec{Name: "r", Created: b.now.Add(-time.Hour)}, ids...)
	for i, id := range ids[:60] { // 60 done over the last 30 s
		_, err := b.ledger.Record(b.ctx, ledger.Attempt{ConversationID: id, Batch: "r", Outcome: ledger.Deleted,
			At: b.now.Add(-30*time.Second + time.Duration(i)*500*time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
	}
	bt := b.batch(t, "r")
	rate := bt.Rate(b.now)
	if rate < 0.9 || rate > 1.3 {
		t.Errorf("rate %.2f/s, want about 60 over the last minute", rate)
	}
	if eta, ok := bt.ETA(b.now); !ok || eta < 25*time.Second || eta > 50*time.Second {
		t.Errorf("ETA %v %v for 40 pending at about 1/s", eta, ok)
	}
	if got := bt.Rate(b.now.Add(10 * time.Minute)); got != 0 {
		t.Errorf("rate ten minutes later %.2f, want 0", got)
	}
	// A batch ten seconds old is measured over its ten seconds, not a minute.
	b.open(t, ledger.BatchSpec{Name: "young", Created: b.now.Add(-10 * time.Second)}, "1", "2")
	for _, id := range []string{"1", "2"} {
		_, _ = b.ledger.Record(b.ctx, ledger.Attempt{ConversationID: id, Batch: "young", Outcome: ledger.Deleted, At: b.now.Add(-time.Second)})
	}
	if got := b.batch(t, "young").Rate(b.now); got < 0.19 || got > 0.21 {
		t.Errorf("young batch rate %.2f, want 2 ids over 10 s", got)
	}
}

func TestBucketsFor(t *testing.T) {
	t.Parallel()
	tests := []struct{ expected, want int }{
		{-1, ledger.Buckets}, {0, ledger.Buckets}, {1, ledger.MinBuckets}, {1024, 64}, {1025, 128},
		{10_000, 1024}, {30_000, 2048}, {50_000, 4096}, {65_536, 4096}, {409_600, 4096}, {409_601, 8192},
		{1_000_000, 16384}, {10_000_000, 131072}, {100_000_000, ledger.MaxBuckets},
	}
	for _, tt := range tests {
		if got := ledger.BucketsFor(tt.expected); got != tt.want {
			t.Errorf("BucketsFor(%d) = %d, want %d", tt.expected, got, tt.want)
		}
	}
}

// TestEntriesStreamEveryID checks every id is read back once, whatever the
// batch's bucket count, including a batch that got more ids than expected.
func TestEntriesStreamEveryID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		expected int
	}{
		{"unknown size", 0},
		{"size known", 3000},
		{"more ids than expected", 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var ids []string
			for i := range 3000 {
				ids = append(ids, strconv.Itoa(7379996104798150000+i*13))
			}
			b.open(t, ledger.BatchSpec{Name: "s", ExpectedIDs: tt.expected}, ids...)
			for _, id := range ids[:1000] {
				b.record(t, "s", id, ledger.Deleted, "L"+id)
			}
			seen := map[string]ledger.Outcome{}
			err := b.ledger.Entries(b.ctx, "s", func(e ledger.Entry) error {
				if _, dup := seen[e.ConversationID]; dup {
					return fmt.Errorf("%s twice", e.ConversationID)
				}
				seen[e.ConversationID] = e.Outcome
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			deleted := 0
			for _, o := range seen {
				if o == ledger.Deleted {
					deleted++
				}
			}
			if len(seen) != 3000 || deleted != 1000 {
				t.Errorf("%d entries, %d deleted", len(seen), deleted)
			}
			keys, err := b.rdb.Keys(b.ctx, "*batch:s:ids:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if want := ledger.BucketsFor(tt.expected); len(keys) > want || len(keys) < min(want, 3000)/2 {
				t.Errorf("%d bucket keys, want about %d", len(keys), want)
			}
		})
	}
}

func TestRecordsExpire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "ttl", TTL: 48 * time.Hour}, "7")
	b.record(t, "ttl", "7", ledger.Retrying, "L")
	for _, key := range []string{keyspace.New(ledger.DefaultPrefix).Batch("ttl"), keyspace.New(ledger.DefaultPrefix).BatchIDs("ttl", 7), keyspace.New(ledger.DefaultPrefix).Failure("ttl", "7")} {
		ttl := b.rdb.TTL(b.ctx, key).Val()
		if ttl < 47*time.Hour || ttl > 48*time.Hour {
			t.Errorf("%s TTL %v, want 48h", key, ttl)
		}
	}
}

func TestFailuresFilterAndPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "x"}, "1", "2")
	b.open(t, ledger.BatchSpec{Name: "y"}, "3", "4")
	b.record(t, "x", "1", ledger.Failed, "L1")
	b.record(t, "x", "2", ledger.NotFound, "L2")
	b.record(t, "y", "3", ledger.Failed, "L3")
	b.record(t, "y", "4", ledger.Retrying, "L4")
	list := func(f ledger.Filter) []string {
		var ids []string
		if err := b.ledger.Failures(b.ctx, f, func(r ledger.Failure) error { ids = append(ids, r.ConversationID); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, c := range []struct {
		f    ledger.Filter
		want int
	}{
		{ledger.Filter{}, 4},
		{ledger.Filter{Batch: "x"}, 2},
		{ledger.Filter{Outcome: ledger.Failed}, 2},
		{ledger.Filter{Batch: "y", Outcome: ledger.Retrying}, 1},
	} {
		if got := list(c.f); len(got) != c.want {
			t.Errorf("Failures(%+v) = %v, want %d", c.f, got, c.want)
		}
	}

	// Many records at the same millisecond span pages: each is listed once.
	var ids []string
	for i := range 1300 {
		ids = append(ids, strconv.Itoa(100000+i))
	}
	b.open(t, ledger.BatchSpec{Name: "z"}, ids...)
	for _, id := range ids {
		b.record(t, "z", id, ledger.Failed, "L")
	}
	got := list(ledger.Filter{Batch: "z"})
	unique := map[string]bool{}
	for _, id := range got {
		unique[id] = true
	}
	if len(got) != 1300 || len(unique) != 1300 {
		t.Errorf("listed %d (%d unique) of 1300", len(got), len(unique))
	}
}

// TestFailuresWhileWorkersMoveRecords: records re-scored to a later time
// while the listing pages through are neither skipped nor listed twice.
func TestFailuresWhileWorkersMoveRecords(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 2000 {
		ids = append(ids, strconv.Itoa(200000+i))
	}
	b.open(t, ledger.BatchSpec{Name: "m"}, ids...)
	for i, id := range ids {
		_, err := b.ledger.Record(b.ctx, ledger.Attempt{ConversationID: id, Batch: "m", Outcome: ledger.Retrying,
			At: b.now.Add(time.Duration(i) * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	moved := 0
	err := b.ledger.Failures(b.ctx, ledger.Filter{}, func(f ledger.Failure) error {
		seen[f.ConversationID]++
		if moved < 500 { // a worker records a later attempt of an id not yet listed
			id := ids[len(ids)-1-moved]
			moved++
			_, err := b.ledger.Record(b.ctx, ledger.Attempt{ConversationID: id, Batch: "m", Outcome: ledger.Retrying, At: b.now.Add(time.Hour)})
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("id %s listed %d times", id, seen[id])
		}
	}
}

// TestDuplicateRunServesLateLinks: a link made between two runs of the same
// task is served by the second run.
func TestDuplicateRunServesLateLinks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "A"}, "66")
	b.open(t, ledger.BatchSpec{Name: "B"}, "66")
	b.record(t, "A", "66", ledger.Deleted, "L1")
	b.rdb.HSet(b.ctx, asynqwire.TaskKey("default", "del:66"), "state", "pending") // the task, not yet marked done, runs again
	if _, err := b.ledger.Link(b.ctx, "B", "66", "default", "del:66"); err != nil {
		t.Fatal(err)
	}
	got := b.record(t, "A", "66", ledger.NotFound, "L2")
	if got.Transitions != 1 {
		t.Errorf("duplicate run: %+v, want B served", got)
	}
	if e, _, _ := b.ledger.Entry(b.ctx, "A", "66"); e.Outcome != ledger.Deleted || e.LogID != "L1" {
		t.Errorf("A changed: %+v", e)
	}
	if e, _, _ := b.ledger.Entry(b.ctx, "B", "66"); e.Outcome != ledger.NotFound {
		t.Errorf("B: %+v", e)
	}
}

// TestNoCompletionWhileIDsAreAdded: a batch fed in chunks does not
// complete (nor call back) between chunks, only once its adder seals it.
func TestNoCompletionWhileIDsAreAdded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.adder(t, ledger.BatchSpec{Name: "slow", CallbackURL: "http://127.0.0.1:1/"})
	for chunk := range 3 {
		id := strconv.Itoa(100 + chunk)
		if _, err := a.Add(b.ctx, []string{id}); err != nil {
			t.Fatal(err)
		}
		if r := b.record(t, "slow", id, ledger.Deleted, "L"); len(r.Completed) != 0 {
			t.Fatalf("completed after chunk %d while ids were still being added", chunk)
		}
	}
	if done, err := a.Seal(b.ctx); err != nil || !done {
		t.Fatalf("Seal = %v, %v; want it to complete the batch", done, err)
	}
	bt := b.batch(t, "slow")
	if bt.Completions != 1 || bt.Total != 3 || bt.State(b.now) != ledger.StateComplete {
		t.Errorf("batch %+v", bt)
	}
	if pending, _ := b.outbox().PendingCallbacks(b.ctx); len(pending) != 1 || pending[0].Total != 3 {
		t.Errorf("callbacks %+v, want one for the whole batch", pending)
	}
}

// TestAbandonedAdderStopsHoldingTheBatch: a producer that died without
// sealing holds the batch open for its lease only; the janitor's
// CompleteIfDone then completes it.
func TestAbandonedAdderStopsHoldingTheBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.adder(t, ledger.BatchSpec{Name: "crash", AdderLease: time.Minute})
	_, _ = a.Add(b.ctx, []string{"1"})
	b.record(t, "crash", "1", ledger.Deleted, "L")
	if done, _ := b.ledger.CompleteIfDone(b.ctx, "crash", b.now.Add(30*time.Second)); done {
		t.Error("completed within the adder's lease")
	}
	if done, _ := b.ledger.CompleteIfDone(b.ctx, "crash", b.now.Add(2*time.Minute)); !done {
		t.Error("not completed after the lease ran out")
	}
	if done, _ := b.ledger.CompleteIfDone(b.ctx, "crash", b.now.Add(3*time.Minute)); done {
		t.Error("completed twice")
	}
}

// TestLinkedBatchKeysAreRefreshed: finishing an id through a link renews
// the linked batch's retention too.
func TestLinkedBatchKeysAreRefreshed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "A", TTL: 48 * time.Hour}, "88")
	b.open(t, ledger.BatchSpec{Name: "B", TTL: 48 * time.Hour}, "88", "89")
	b.rdb.Expire(b.ctx, keyspace.New(ledger.DefaultPrefix).Batch("B"), time.Minute)
	b.rdb.HSet(b.ctx, asynqwire.TaskKey("default", "del:88"), "state", "pending")
	_, _ = b.ledger.Link(b.ctx, "B", "88", "default", "del:88")
	b.record(t, "A", "88", ledger.Deleted, "L")
	if ttl := b.rdb.TTL(b.ctx, keyspace.New(ledger.DefaultPrefix).Batch("B")).Val(); ttl < 47*time.Hour {
		t.Errorf("linked batch TTL %v after an outcome through the link", ttl)
	}
}

// TestRecordManyMatchesOneByOne: a group commit gives the same outcomes,
// tallies, attempts and completions as recording one at a time, duplicate
// runs and links included.
func TestRecordManyMatchesOneByOne(t *testing.T) {
	t.Parallel()
	attempts := func(batch string) []ledger.Attempt {
		at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
		mk := func(id string, o ledger.Outcome, code int64, log string) ledger.Attempt {
			return ledger.Attempt{ConversationID: id, Batch: batch, Queue: "q", Outcome: o, Code: code, HasCode: true, LogID: log, At: at}
		}
		return []ledger.Attempt{
			mk("1", ledger.Retrying, 5000, "a"), mk("1", ledger.Deleted, 0, "b"), mk("1", ledger.NotFound, 4002, "c"),
			mk("2", ledger.Failed, 4000, "d"), mk("3", ledger.Retrying, 5000, "e"), mk("3", ledger.Retrying, 5000, "f"),
			mk("4", ledger.Deleted, 0, "g"), mk("3", ledger.NotFound, 4002, "h"), mk("9", ledger.Deleted, 0, "i"),
		}
	}
	run := func(many bool) (ledger.Batch, []ledger.Recorded, map[string]ledger.Entry) {
		b := setup(t)
		b.open(t, ledger.BatchSpec{Name: "x", CallbackURL: "http://127.0.0.1:1/"}, "1", "2", "3", "4")
		b.open(t, ledger.BatchSpec{Name: "y"}, "4")
		b.rdb.HSet(b.ctx, asynqwire.TaskKey("q", "del:4"), "state", "pending")
		_, _ = b.ledger.Link(b.ctx, "y", "4", "q", "del:4")
		var recs []ledger.Recorded
		if many {
			var err error
			if recs, err = b.ledger.RecordMany(b.ctx, attempts("x")); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, a := range attempts("x") {
				r, err := b.ledger.Record(b.ctx, a)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, r)
			}
		}
		entries := map[string]ledger.Entry{}
		_ = b.ledger.Entries(b.ctx, "x", func(e ledger.Entry) error { entries[e.ConversationID] = e; return nil })
		y, _, _ := b.ledger.Entry(b.ctx, "y", "4")
		entries["y/4"] = y
		return b.batch(t, "x"), recs, entries
	}
	oneBatch, oneRecs, oneEntries := run(false)
	manyBatch, manyRecs, manyEntries := run(true)
	// Completions may differ: one by one, the batch completes, then id 9
	// (queued by another producer) joins and it completes again; in one
	// call, the batch completes once, at the end.
	if oneBatch.Total != manyBatch.Total || oneBatch.Deleted != manyBatch.Deleted || oneBatch.NotFound != manyBatch.NotFound ||
		oneBatch.Failed != manyBatch.Failed {
		t.Errorf("tallies differ: one by one %+v, together %+v", oneBatch, manyBatch)
	}
	if manyBatch.Total != 5 || manyBatch.Completions != 1 {
		t.Errorf("batch %+v, want 5 ids (9 joined by its task) and one completion", manyBatch)
	}
	for i := range oneRecs {
		if oneRecs[i].Transitions != manyRecs[i].Transitions || oneRecs[i].Attempts != manyRecs[i].Attempts {
			t.Errorf("attempt %d: one by one %+v, together %+v", i, oneRecs[i], manyRecs[i])
		}
	}
	for id, e := range oneEntries {
		if manyEntries[id] != e {
			t.Errorf("entry %s: one by one %+v, together %+v", id, e, manyEntries[id])
		}
	}
	completions := 0
	for _, r := range manyRecs {
		completions += len(r.Completed)
	}
	if completions != 2 { // x and y, each once
		t.Errorf("completions reported %d times: %+v", completions, manyRecs)
	}
}

// TestWriterGroupsConcurrentAttempts: many goroutines through one writer,
// each gets its own result.
func TestWriterGroupsConcurrentAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 500 {
		ids = append(ids, strconv.Itoa(10_000+i))
	}
	b.open(t, ledger.BatchSpec{Name: "w"}, ids...)
	w := ledger.NewWriter(b.ledger, 32, time.Millisecond)
	defer w.Close()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := w.Record(b.ctx, ledger.Attempt{ConversationID: id, Batch: "w", Outcome: ledger.Deleted, LogID: "L" + id, At: b.now})
			if err == nil && (r.Transitions != 1 || r.Attempts != 1) {
				err = fmt.Errorf("id %s: %+v", id, r)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if bt := b.batch(t, "w"); bt.Deleted != 500 || bt.Completions != 1 {
		t.Errorf("batch %+v", bt)
	}
}

// TestEmbeddedRedisAgrees runs the ledger's scripts on the embedded Redis
// that `run` and `demo` use (miniredis, whose Lua differs from Redis's in
// corners: it reads a numeric string with a leading zero as octal) and on
// redis-server, and compares the tallies and every entry.
func TestEmbeddedRedisAgrees(t *testing.T) {
	t.Parallel()
	// Ids whose last six digits start with zeros pick their bucket from
	// those digits.
	ids := []string{"7379996104798000001", "7379996104798012345", "7379996104798099999", "7379996104798150001",
		"7379996104798100008", "7379996104798000800"}
	run := func(b bundle) (ledger.Batch, map[string]ledger.Entry) {
		b.open(t, ledger.BatchSpec{Name: "e"}, ids...)
		b.record(t, "e", ids[0], ledger.Deleted, "L0")
		b.record(t, "e", ids[1], ledger.Retrying, "L1")
		b.record(t, "e", ids[1], ledger.Deleted, "L1b")
		b.record(t, "e", ids[2], ledger.NotFound, "L2")
		b.record(t, "e", ids[3], ledger.Retrying, "L3")
		b.record(t, "e", ids[3], ledger.Failed, "L3b")
		b.record(t, "e", ids[0], ledger.Deleted, "dup")
		at := b.now
		_, err := b.ledger.RecordMany(b.ctx, []ledger.Attempt{
			{ConversationID: ids[4], Batch: "e", Queue: "default", Outcome: ledger.Deleted, HasCode: true, LogID: "L4", At: at},
			{ConversationID: ids[5], Batch: "e", Queue: "default", Outcome: ledger.Retrying, Code: 5000, HasCode: true, LogID: "L5", At: at},
		})
		if err != nil {
			t.Fatal(err)
		}
		entries := map[string]ledger.Entry{}
		if err := b.ledger.Entries(b.ctx, "e", func(e ledger.Entry) error { entries[e.ConversationID] = e; return nil }); err != nil {
			t.Fatal(err)
		}
		return b.batch(t, "e"), entries
	}
	real := setup(t)
	mini := miniredis.RunT(t)
	embedded := real
	embedded.rdb = redis.NewClient(&redis.Options{Addr: mini.Addr()})
	embedded.ledger = ledger.New(embedded.rdb)
	wantBatch, wantEntries := run(real)
	gotBatch, gotEntries := run(embedded)
	if wantBatch.Total != 6 || wantBatch.Deleted != 3 || wantBatch.NotFound != 1 || wantBatch.Failed != 1 {
		t.Errorf("redis-server tallies %+v, want total 6, 3 deleted, 1 not found, 1 failed", wantBatch)
	}
	if gotBatch.Total != wantBatch.Total || gotBatch.Deleted != wantBatch.Deleted || gotBatch.NotFound != wantBatch.NotFound ||
		gotBatch.Failed != wantBatch.Failed || gotBatch.Pending() != wantBatch.Pending() {
		t.Errorf("embedded Redis tallies %+v, redis-server's %+v", gotBatch, wantBatch)
	}
	for _, id := range ids {
		if gotEntries[id] != wantEntries[id] {
			t.Errorf("entry of %s: embedded %+v, redis-server %+v", id, gotEntries[id], wantEntries[id])
		}
	}
	if len(gotEntries) != len(ids) {
		t.Errorf("embedded Redis has %d entries, want %d", len(gotEntries), len(ids))
	}
}

// TestLinkAcrossIdentities: a task of one identity serves a linked batch
// of another only with a deletion. Its "not found" (Coze's answer to
// whoever did not create the conversation) or failure leaves the id
// pending in the other batch, still linked, for a task of its own.
func TestLinkAcrossIdentities(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "subject", Profile: "app-cn", Session: "user-4711"}, "44", "45")
	b.open(t, ledger.BatchSpec{Name: "plain"}, "44", "45")
	b.open(t, ledger.BatchSpec{Name: "same", Profile: "app-cn", Session: "user-4711"}, "44")
	for _, id := range []string{"44", "45"} {
		b.rdb.HSet(b.ctx, asynqwire.TaskKey("default", "del:"+id), "state", "pending")
		for _, batch := range []string{"plain", "same"} {
			if _, err := b.ledger.Link(b.ctx, batch, id, "default", "del:"+id); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.record(t, "subject", "44", ledger.NotFound, "L44")
	if e, _, _ := b.ledger.Entry(b.ctx, "same", "44"); e.Outcome != ledger.NotFound {
		t.Errorf("the same identity's batch: %+v, want not_found through the link", e)
	}
	if e, _, _ := b.ledger.Entry(b.ctx, "plain", "44"); e.Outcome.Terminal() {
		t.Errorf("another identity's batch took a not_found: %+v", e)
	}
	also := b.rdb.HGet(b.ctx, keyspace.New(ledger.DefaultPrefix).Also(), "44").Val()
	if !strings.Contains(also, "plain@") || strings.Contains(also, "same@") {
		t.Errorf("links left for 44: %q, want plain's only", also)
	}
	b.record(t, "subject", "45", ledger.Deleted, "L45")
	if e, _, _ := b.ledger.Entry(b.ctx, "plain", "45"); e.Outcome != ledger.Deleted {
		t.Errorf("a deletion did not reach another identity's batch: %+v", e)
	}
}
