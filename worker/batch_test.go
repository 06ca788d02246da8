package worker_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/maintenance"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/tasks"
	"github.com/coze-eraser/coze-eraser/worker"
)

// TestBatchOfTenThousandAgreesWithTheFake is issue 3's first acceptance
// point: 10,000 ids with faults; at the end the batch's tallies equal the
// fake's own record and the report, and every deleted row carries the log
// id the fake returned for it.
func TestBatchOfTenThousandAgreesWithTheFake(t *testing.T) {
	t.Parallel()
	b := setup(t,
		cozetest.WithSeed(3),
		cozetest.WithFaults(map[cozetest.Fault]float64{
			cozetest.RateLimited:   0.01,
			cozetest.BadGateway:    0.02,
			cozetest.InternalError: 0.03,
			cozetest.NotFound:      0.01,
			cozetest.ConnReset:     0.01,
			cozetest.LostAnswer:    0.02,
		}))
	all := ids(10_000, 7500000000000000001)
	for _, id := range all[:7] {
		b.fake.ScriptForever(id, cozetest.BadParameter)
	}
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("ten-k"), enqueue.MaxRetry(10)); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Concurrency = 50
	b.startWorker(t, cfg)
	waitFor(t, 5*time.Minute, "the batch to complete", func() bool {
		bt, _, _ := b.ledger.Batch(b.ctx, "ten-k")
		return bt.Total == len(all) && bt.Pending() == 0
	})

	// The proof, as `coze-eraser report ten-k` writes it.
	var proof bytes.Buffer
	if err := report.WriteProof(b.ctx, b.ledger, "ten-k", "csv", &proof, time.Now()); err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	for _, line := range strings.SplitAfter(proof.String(), "\n") {
		if !strings.HasPrefix(line, "# ") {
			body.WriteString(line)
		}
	}
	rows, err := csv.NewReader(strings.NewReader(body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(all)+1 || !slices.Equal(rows[0], report.ProofCSVHeader) {
		t.Fatalf("%d report rows for %d ids; header %q", len(rows)-1, len(all), rows[0])
	}
	fromReport := map[string]int{}
	deletions := b.fake.Deletions()
	fromFake := map[string]int{}
	for _, row := range rows[1:] {
		id, outcome, logID := row[0], row[1], row[3]
		fromReport[outcome]++
		d, deleted := deletions[id]
		switch {
		case deleted && !d.AnswerLost:
			fromFake["deleted"]++
			if outcome != "deleted" || logID != d.LogID {
				t.Errorf("id %s: report says %s with log id %q; the fake deleted it with %s", id, outcome, logID, d.LogID)
			}
		case deleted:
			fromFake["deleted_answer_lost"]++
			if outcome != "not_found" {
				t.Errorf("id %s: deleted by a call whose answer was lost, so its retry must say not_found; report says %s", id, outcome)
			}
		case outcome == "deleted":
			t.Errorf("id %s: reported deleted, the fake never deleted it", id)
		}
	}
	bt, _, _ := b.ledger.Batch(b.ctx, "ten-k")
	t.Logf("batch %d deleted, %d not_found, %d failed; fake %v; calls %d", bt.Deleted, bt.NotFound, bt.Failed, fromFake, b.fake.Counts()["total"])
	if bt.Deleted != fromReport["deleted"] || bt.NotFound != fromReport["not_found"] || bt.Failed != fromReport["failed"] || fromReport["pending"] != 0 {
		t.Errorf("status %d/%d/%d, report %v", bt.Deleted, bt.NotFound, bt.Failed, fromReport)
	}
	if bt.Deleted != fromFake["deleted"] {
		t.Errorf("status says %d deleted, the fake answered %d deletions", bt.Deleted, fromFake["deleted"])
	}
	if bt.Failed != 7 {
		t.Errorf("%d failed, want the 7 scripted permanent failures", bt.Failed)
	}
	if bt.Completions != 1 || bt.CompletedAt.IsZero() {
		t.Errorf("completion not recorded: %+v", bt)
	}
}

// TestDuplicateExecutionCountsOnce is issue 3's second acceptance point:
// the same task handled twice, and the same id enqueued into two batches,
// count each id once per batch.
func TestDuplicateExecutionCountsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.startWorker(t, func() worker.Config {
		cfg := b.fastConfig(t, nil)
		cfg.Queues = map[string]int{"idle": 1} // tasks go to "unused", which no worker serves: the test runs the handler itself
		return cfg
	}())

	// The same task handled twice (as asynq's at-least-once delivery may).
	if _, err := b.enqueue.Enqueue(b.ctx, "7600000000000000001", enqueue.Batch("dup"), enqueue.Queue("unused")); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(tasks.Payload{ConversationID: "7600000000000000001", Batch: "dup"})
	task := asynq.NewTask(tasks.TypeDelete, payload)
	for range 2 {
		if err := w.Handler().ProcessTask(b.ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if bt, _, _ := b.ledger.Batch(b.ctx, "dup"); bt.Total != 1 || bt.Deleted != 1 || bt.NotFound != 0 {
		t.Errorf("after two runs: %+v", bt)
	}
	if got := counter(w, "deleted") + counter(w, "not_found"); got != 1 {
		t.Errorf("deletions counted %d times", got)
	}

	// The same id enqueued into two batches while its task waits: one
	// call, one outcome in each batch.
	id := "7600000000000000002"
	for _, batch := range []string{"first", "second"} {
		sum, err := b.enqueue.EnqueueAll(b.ctx, slices.Values([]string{id, id}), enqueue.Batch(batch), enqueue.Queue("unused"))
		if err != nil {
			t.Fatal(err)
		}
		if sum.Enqueued+sum.Duplicate != 2 {
			t.Errorf("batch %s: %+v", batch, sum)
		}
		// The ids wait in the ledger: feed them (the worker serves
		// another queue). The first batch's id gets the task; the
		// second's is linked to it.
		if _, err := b.enqueue.Feed(b.ctx, "unused", 1<<30); err != nil {
			t.Fatal(err)
		}
	}
	runQueued := func() {
		t.Helper()
		if _, err := b.enqueue.Feed(b.ctx, "unused", 1<<30); err != nil {
			t.Fatal(err)
		}
		info, err := b.inspector.GetTaskInfo("unused", tasks.TaskID(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Handler().ProcessTask(b.ctx, asynq.NewTask(tasks.TypeDelete, info.Payload)); err != nil {
			t.Fatal(err)
		}
		// asynq deletes a task that succeeded.
		if err := b.inspector.DeleteTask("unused", tasks.TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	runQueued()
	for _, batch := range []string{"first", "second"} {
		if bt, _, _ := b.ledger.Batch(b.ctx, batch); bt.Total != 1 || bt.Deleted != 1 || bt.Pending() != 0 {
			t.Errorf("batch %s: %+v, want the one id deleted", batch, bt)
		}
	}
	calls := 0
	for _, c := range b.fake.Calls() {
		if c.ID == id {
			calls++
		}
	}
	if calls != 1 {
		t.Errorf("%d API calls for the id in two batches, want 1", calls)
	}

	// Enqueued into a third batch after it was deleted: that batch gets
	// its own outcome (not found: it is gone), the others do not change.
	if _, err := b.enqueue.Enqueue(b.ctx, id, enqueue.Batch("third"), enqueue.Queue("unused")); err != nil {
		t.Fatal(err)
	}
	runQueued()
	if bt, _, _ := b.ledger.Batch(b.ctx, "third"); bt.NotFound != 1 {
		t.Errorf("third batch %+v", bt)
	}
	if bt, _, _ := b.ledger.Batch(b.ctx, "first"); bt.Deleted != 1 || bt.NotFound != 0 {
		t.Errorf("first batch changed: %+v", bt)
	}
}

// TestOverdueMetricWithAnInjectedClock is the third acceptance point: a
// batch past its due time shows as overdue, with time moved by the clock.
func TestOverdueMetricWithAnInjectedClock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := start
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	enq := enqueue.NewClient(b.rdb, enqueue.WithClock(clock))
	t.Cleanup(func() { enq.Close() })
	if _, err := enq.Enqueue(b.ctx, "7700000000000000001", enqueue.Batch("late"), enqueue.DueIn(720*time.Hour), enqueue.Queue("unused")); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Queues = map[string]int{"idle": 1}
	cfg.Now = clock
	w := b.startWorker(t, cfg)
	scrape := func() string {
		rec := httptest.NewRecorder()
		w.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	if m := scrape(); !strings.Contains(m, `coze_eraser_batches{state="open"} 1`) ||
		!strings.Contains(m, "coze_eraser_oldest_open_batch_due_seconds 2.592e+06") {
		t.Errorf("at creation:\n%s", grepLines(m, "coze_eraser_batches", "coze_eraser_oldest"))
	}
	mu.Lock()
	now = start.Add(721 * time.Hour)
	mu.Unlock()
	m := scrape()
	if !strings.Contains(m, `coze_eraser_batches{state="overdue"} 1`) || !strings.Contains(m, `coze_eraser_batches{state="open"} 0`) ||
		!strings.Contains(m, "coze_eraser_oldest_open_batch_due_seconds -3600") {
		t.Errorf("an hour past due:\n%s", grepLines(m, "coze_eraser_batches", "coze_eraser_oldest"))
	}
	bt, _, _ := b.ledger.Batch(b.ctx, "late")
	var table bytes.Buffer
	_ = report.WriteStatus(&table, []ledger.Batch{bt}, clock(), "table")
	if !strings.Contains(table.String(), "late   overdue") {
		t.Errorf("status table:\n%s", table.String())
	}
}

func grepLines(text string, prefixes ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestCallbackDeliveredOnceDespiteFailures is the fourth acceptance point:
// the receiver fails the first two deliveries; it gets the completion once,
// with a signature that verifies.
func TestCallbackDeliveredOnceDespiteFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	secret := []byte("callback-secret-for-the-test")
	var mu sync.Mutex
	var attempts int
	var accepted []callback.Summary
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts <= 2 {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if err := callback.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		var s callback.Summary
		if err := json.Unmarshal(body, &s); err != nil {
			t.Errorf("body: %v", err)
		}
		if got := r.Header.Get(callback.HeaderIdempotencyKey); got != "cb-test:1" {
			t.Errorf("idempotency key %q", got)
		}
		accepted = append(accepted, s)
	}))
	t.Cleanup(receiver.Close)

	all := ids(20, 7800000000000000001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("cb-test"), enqueue.CallbackURL(receiver.URL+"/done?token=x")); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.CallbackSecret = secret
	b.startWorker(t, cfg)
	waitFor(t, 30*time.Second, "the callback", func() bool { mu.Lock(); defer mu.Unlock(); return len(accepted) == 1 })
	// No duplicate can follow once the delivery task has completed (asynq
	// keeps it for callback.Retention, so queueing the completion again is
	// refused) and nothing else waits in the callbacks queue.
	waitFor(t, 10*time.Second, "the delivery task to complete", func() bool {
		info, err := b.inspector.GetQueueInfo(callback.Queue)
		return err == nil && info.Completed == 1 && info.Pending+info.Active+info.Scheduled+info.Retry+info.Archived == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 1 || attempts != 3 {
		t.Fatalf("%d accepted after %d attempts, want 1 after 3", len(accepted), attempts)
	}
	s := accepted[0]
	if s.Batch != "cb-test" || s.Total != 20 || s.Deleted != 20 || s.Completion != 1 || !s.OnTime || s.CompletedAt.IsZero() {
		t.Errorf("summary %+v", s)
	}
	if pending, _ := maintenance.NewStore(b.rdb, ledger.DefaultPrefix).PendingCallbacks(b.ctx); len(pending) != 0 {
		t.Errorf("callbacks still pending: %+v", pending)
	}
}

// TestSignatureRejectsTampering: Verify fails on a changed body, a wrong
// secret and a stale timestamp.
func TestSignatureRejectsTampering(t *testing.T) {
	t.Parallel()
	secret, body := []byte("s"), []byte(`{"batch":"x"}`)
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	h.Set(callback.HeaderTimestamp, "1800000000")
	h.Set(callback.HeaderSignature, callback.Sign(secret, now.Unix(), body))
	if err := callback.Verify(secret, h, body, now, time.Minute); err != nil {
		t.Fatalf("genuine request rejected: %v", err)
	}
	for name, check := range map[string]error{
		"changed body": callback.Verify(secret, h, []byte(`{"batch":"y"}`), now, time.Minute),
		"wrong secret": callback.Verify([]byte("t"), h, body, now, time.Minute),
		"stale":        callback.Verify(secret, h, body, now.Add(time.Hour), time.Minute),
	} {
		if check == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRerunLinksPendingIDs: an enqueue into batch B that stopped after
// adding an id but before queueing it, re-run while the id's task from
// batch A waits, links the id to that task: B gets the outcome too.
func TestRerunLinksPendingIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.fastConfig(t, nil)
	cfg.Queues = map[string]int{"idle": 1}
	w := b.startWorker(t, cfg)
	id := "7900000000000000001"
	if _, err := b.enqueue.Enqueue(b.ctx, id, enqueue.Batch("A"), enqueue.Queue("unused")); err != nil {
		t.Fatal(err)
	}
	// A's id is fed (the worker serves another queue): its task waits.
	if fed, err := b.enqueue.Feed(b.ctx, "unused", 1<<30); err != nil || fed.Tasks != 1 {
		t.Fatalf("feed of A: %+v, %v", fed, err)
	}
	// The interrupted run: the id joined B, no task was queued for it.
	adder, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "B", Queue: "unused"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Add(b.ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	// The re-run.
	if sum, err := b.enqueue.EnqueueAll(b.ctx, slices.Values([]string{id}), enqueue.Batch("B"), enqueue.Queue("unused")); err != nil || sum.Duplicate != 1 {
		t.Fatalf("re-run: %+v, %v", sum, err)
	}
	// B's id is fed: it finds A's task waiting and is linked to it.
	if fed, err := b.enqueue.Feed(b.ctx, "unused", 1<<30); err != nil || fed.Tasks != 0 || fed.Linked != 1 {
		t.Fatalf("feed of B: %+v, %v", fed, err)
	}
	info, err := b.inspector.GetTaskInfo("unused", tasks.TaskID(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handler().ProcessTask(b.ctx, asynq.NewTask(tasks.TypeDelete, info.Payload)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"A", "B"} {
		if bt, _, _ := b.ledger.Batch(b.ctx, name); bt.Deleted != 1 || bt.Pending() != 0 {
			t.Errorf("batch %s: %+v", name, bt)
		}
	}
}

// TestStalledBatchIsRepaired: ids whose tasks were lost after they were
// fed (their entries say a task was made, and none is in any queue), in a
// batch nobody enqueues into any more, are given tasks by the janitor once
// the batch stalls.
func TestStalledBatchIsRepaired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	adder, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "stalled", Queue: "default", AdderLease: time.Millisecond,
		ExpectedIDs: 40}) // few buckets: one janitor sweep reads them all
	if err != nil {
		t.Fatal(err)
	}
	all := ids(40, 8300000000000000001)
	if _, err := adder.Add(b.ctx, all); err != nil {
		t.Fatal(err)
	}
	if fed, err := b.enqueue.Feed(b.ctx, "default", 1<<30); err != nil || fed.Tasks != len(all) {
		t.Fatalf("feed: %+v, %v", fed, err)
	}
	// The tasks are lost, but for one of them: it is left alone.
	for _, id := range all[1:] {
		if err := b.inspector.DeleteTask("default", tasks.TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := b.fastConfig(t, nil)
	cfg.JanitorInterval = 50 * time.Millisecond
	cfg.StallAfter = 200 * time.Millisecond
	b.startWorker(t, cfg)
	waitFor(t, 20*time.Second, "the stalled batch to finish", func() bool {
		bt, _, _ := b.ledger.Batch(b.ctx, "stalled")
		return bt.Pending() == 0 && bt.Completions == 1
	})
	calls := map[string]int{}
	for _, c := range b.fake.Calls() {
		calls[c.ID]++
	}
	for _, id := range all {
		if calls[id] != 1 {
			t.Errorf("id %s called %d times", id, calls[id])
		}
	}
	if !strings.Contains(b.logs.String(), "queued tasks for pending ids that had none") {
		t.Error("the repair was not logged")
	}
}
