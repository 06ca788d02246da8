package worker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestCancelMidRun: a batch cancelled while a worker deletes it stops at
// once: after the cancel returns, the API sees no DELETE for an id the
// cancel ended, except from the few tasks already past their check (at
// most the worker's concurrency, in flight); the tallies add up; the
// callback is sent once and counts the cancelled ids.
func TestCancelMidRun(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithLatency(20*time.Millisecond))
	var mu sync.Mutex
	var summaries []callback.Summary
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var s callback.Summary
		_ = json.Unmarshal(body, &s)
		mu.Lock()
		summaries = append(summaries, s)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	all := ids(3000, 7379996104798150001) // more than a first window: most wait in the ledger
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("cx"), enqueue.CallbackURL(receiver.URL)); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Concurrency = 4
	cfg.JanitorInterval = 50 * time.Millisecond
	w := b.startWorker(t, cfg)
	waitForBatch(t, b, "cx", func(bt ledger.Batch) bool { return bt.Deleted >= 10 })

	r, err := b.enqueue.Cancel(b.ctx, "cx", "requester withdrew")
	// The cancel completes the batch: its last step does, or (cancelled
	// in steps of buckets) a record or the janitor between two of them,
	// once no id is pending; r.Completed says only the former.
	if err != nil || r.Cancelled == 0 {
		t.Fatalf("cancel %+v, %v", r, err)
	}
	if bt := b.batch(t, "cx"); bt.Completions != 1 || bt.Pending() != 0 {
		t.Fatalf("after the cancel (%+v): batch %+v, want it complete", r, bt)
	}
	callsAtCancel := len(b.fake.Calls())
	b.waitDrained(t, 30*time.Second)

	// Most ids were still waiting in the ledger when the cancel came: only
	// the tasks fed by then existed. Each ended in the handler (a call
	// before the cancel, or no call after it) or was removed by the cancel:
	// TasksRemoved is the fed tasks the handler never took (give or take a
	// task retried after a failed call, which both called and was removed).
	fed := int(testutil.ToFloat64(w.Metrics().TasksFed.WithLabelValues(enqueue.DefaultQueue)))
	handled := map[string]bool{}
	for _, c := range b.fake.Calls() {
		handled[c.ID] = true
	}
	for _, id := range noCallIDs(t, b, "cx") {
		handled[id] = true
	}
	retried := 0
	for _, reason := range []string{"rate_limited", "auth", "transient", "unknown", "waiting", "ledger", "profile_busy", "batch_paused"} {
		retried += int(testutil.ToFloat64(w.Metrics().Retries.WithLabelValues(reason)))
	}
	if want := fed - len(handled); r.TasksRemoved < want || r.TasksRemoved > want+retried || fed >= len(all) {
		t.Errorf("cancel removed %d tasks; %d were fed, the handler took %d (%d retries): want %d removed, with the rest never fed",
			r.TasksRemoved, fed, len(handled), retried, want)
	}

	got := b.batch(t, "cx")
	if got.Total != len(all) || got.Deleted+got.NotFound+got.Failed+got.Cancelled != len(all) || got.Pending() != 0 || got.Cancelled != r.Cancelled {
		t.Errorf("tallies %+v (cancel said %d cancelled)", got, r.Cancelled)
	}
	cancelled := map[string]bool{}
	for id, e := range b.finals(t, "cx") {
		if e.Outcome == ledger.Cancelled {
			cancelled[id] = true
		}
	}
	late := 0
	for _, c := range b.fake.Calls()[callsAtCancel:] {
		if cancelled[c.ID] {
			late++
		}
	}
	if late > cfg.Concurrency {
		t.Errorf("%d DELETEs of cancelled ids after the cancel returned; at most %d were in flight", late, cfg.Concurrency)
	}
	for _, id := range all {
		if !handled[id] && !cancelled[id] {
			t.Errorf("id %s: never called, yet not cancelled", id)
		}
	}
	waitFor(t, 30*time.Second, "the callback", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(summaries) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(summaries) != 1 || summaries[0].Cancelled != r.Cancelled || summaries[0].Total != len(all) {
		t.Errorf("callbacks %+v, want one with %d cancelled", summaries, r.Cancelled)
	}
}

// TestPauseHoldsTasks: a paused batch's tasks (fed before the pause: a
// paused batch is fed no more) make no call and use up no retry; resumed,
// they finish.
func TestPauseHoldsTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := ids(20, 7379996104798160001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("px"), enqueue.MaxRetry(1)); err != nil {
		t.Fatal(err)
	}
	if fed, err := b.enqueue.Feed(b.ctx, enqueue.DefaultQueue, 1<<30); err != nil || fed.Tasks != len(all) {
		t.Fatalf("feed: %+v, %v", fed, err)
	}
	if err := b.enqueue.Pause(b.ctx, "px", "legal hold"); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.PausedRetry = 100 * time.Millisecond
	w := b.startWorker(t, cfg)
	held := func() float64 { return testutil.ToFloat64(w.Metrics().Retries.WithLabelValues("batch_paused")) }
	waitFor(t, 30*time.Second, "every task held twice", func() bool { return held() >= 40 })
	if n := len(b.fake.Calls()); n != 0 {
		t.Fatalf("%d calls for a paused batch", n)
	}
	if got := b.batch(t, "px"); got.State(time.Now()) != ledger.StatePaused || got.Pending() != 20 {
		t.Errorf("paused batch %+v state %s", got, got.State(time.Now()))
	}
	if err := b.enqueue.Resume(b.ctx, "px", ""); err != nil {
		t.Fatal(err)
	}
	waitForBatch(t, b, "px", func(bt ledger.Batch) bool { return bt.Deleted == 20 })
	if n := b.archived(t); n != 0 {
		t.Errorf("%d tasks archived: holding must not use up retries", n)
	}
}

// noCallIDs returns the ids of batch whose task the handler took after the
// batch was cancelled, making no call (from its log).
func noCallIDs(t *testing.T, b *bundle, batch string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(b.logs.String(), "\n") {
		var rec struct {
			Msg            string `json:"msg"`
			Batch          string `json:"batch"`
			ConversationID string `json:"conversation_id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "task of a cancelled batch: no call" && rec.Batch == batch {
			out = append(out, rec.ConversationID)
		}
	}
	return out
}

func (b *bundle) batch(t *testing.T, name string) ledger.Batch {
	t.Helper()
	got, ok, err := b.ledger.Batch(b.ctx, name)
	if err != nil || !ok {
		t.Fatalf("batch %s: %v %v", name, ok, err)
	}
	return got
}
