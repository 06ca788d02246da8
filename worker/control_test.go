package worker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
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

	all := ids(300, 7379996104798150001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("cx"), enqueue.CallbackURL(receiver.URL)); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Concurrency = 4
	cfg.JanitorInterval = 50 * time.Millisecond
	b.startWorker(t, cfg)
	waitForBatch(t, b, "cx", func(bt ledger.Batch) bool { return bt.Deleted >= 10 })

	r, err := b.enqueue.Cancel(b.ctx, "cx", "requester withdrew")
	if err != nil || r.Cancelled == 0 || !r.Completed || r.TasksRemoved == 0 {
		t.Fatalf("cancel %+v, %v", r, err)
	}
	callsAtCancel := len(b.fake.Calls())
	b.waitDrained(t, 30*time.Second)

	got := b.batch(t, "cx")
	if got.Total != 300 || got.Deleted+got.NotFound+got.Failed+got.Cancelled != 300 || got.Pending() != 0 || got.Cancelled != r.Cancelled {
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
	waitFor(t, 30*time.Second, "the callback", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(summaries) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(summaries) != 1 || summaries[0].Cancelled != r.Cancelled || summaries[0].Total != 300 {
		t.Errorf("callbacks %+v, want one with %d cancelled", summaries, r.Cancelled)
	}
}

// TestPauseHoldsTasks: a paused batch's tasks make no call and use up no
// retry; resumed, they finish.
func TestPauseHoldsTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := ids(20, 7379996104798160001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("px"), enqueue.MaxRetry(1)); err != nil {
		t.Fatal(err)
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

func (b *bundle) batch(t *testing.T, name string) ledger.Batch {
	t.Helper()
	got, ok, err := b.ledger.Batch(b.ctx, name)
	if err != nil || !ok {
		t.Fatalf("batch %s: %v %v", name, ok, err)
	}
	return got
}
