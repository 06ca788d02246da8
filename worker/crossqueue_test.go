package worker_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestOneCallPerIDAcrossQueues: the same ids enqueued into batch A on queue
// qa and batch B on queue qb (asynq task ids are unique per queue only),
// worked by a worker on both queues. Each id is deleted with one call, and
// both batches record that call's outcome and log id. Scheduled and
// pending tasks alike.
func TestOneCallPerIDAcrossQueues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := ids(200, 7930000000000000001)
	scheduled := ids(20, 7931000000000000001)
	enq := func(batch, queue string, list []string, opts ...enqueue.Option) {
		t.Helper()
		sum, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(list), append(opts, enqueue.Batch(batch), enqueue.Queue(queue))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s on %s: %s", batch, queue, sum)
	}
	enq("A", "qa", all)
	enq("A", "qa", scheduled, enqueue.In(time.Second))
	enq("B", "qb", append(slices.Clone(all), scheduled...))
	if n, _ := b.inspector.GetQueueInfo("qb"); n != nil && n.Size != 0 {
		t.Errorf("queue qb holds %d tasks for ids that have a task in qa", n.Size)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Queues = map[string]int{"qa": 1, "qb": 1}
	b.startWorker(t, cfg)
	for _, name := range []string{"A", "B"} {
		waitForBatch(t, b, name, func(bt ledger.Batch) bool { return bt.Pending() == 0 })
	}
	calls := map[string]int{}
	for _, c := range b.fake.Calls() {
		calls[c.ID]++
	}
	for _, id := range append(slices.Clone(all), scheduled...) {
		if calls[id] != 1 {
			t.Errorf("id %s: %d DELETE calls; want 1", id, calls[id])
		}
		ea, _, _ := b.ledger.Entry(b.ctx, "A", id)
		eb, _, _ := b.ledger.Entry(b.ctx, "B", id)
		if ea.Outcome != ledger.Deleted || eb.Outcome != ledger.Deleted || ea.LogID == "" || ea.LogID != eb.LogID {
			t.Errorf("id %s: A %+v, B %+v; want both deleted by the same call", id, ea, eb)
		}
	}
}

func waitForBatch(t *testing.T, b *bundle, name string, cond func(ledger.Batch) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		bt, ok, err := b.ledger.Batch(b.ctx, name)
		if err == nil && ok && cond(bt) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s: %+v", name, bt)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTaskWithAnotherIDIsRefused: a producer that leaves out the task id
// (asynq then makes a random one) could queue a second task for an id
// beside the first; such a task is archived without a call, with the
// reason recorded.
func TestTaskWithAnotherIDIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := asynq.NewClientFromRedisClient(b.rdb)
	defer client.Close()
	payload := []byte(`{"id":"7932000000000000001","batch":"foreign"}`)
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeDelete, payload)); err != nil {
		t.Fatal(err)
	}
	w := b.startWorker(t, b.fastConfig(t, nil))
	b.waitDrained(t, 10*time.Second)
	if total := b.fake.Counts()["total"]; total != 0 {
		t.Errorf("the API was called %d times", total)
	}
	if got := testutil.ToFloat64(w.Metrics().InvalidTasks); got != 1 {
		t.Errorf("invalid tasks metric = %v, want 1", got)
	}
	archived, _ := b.inspector.ListArchivedTasks(enqueue.DefaultQueue)
	if len(archived) != 1 || !strings.Contains(archived[0].LastErr, "del:7932000000000000001") {
		t.Errorf("archived %d tasks; want 1 whose reason names the expected task id", len(archived))
	}
}

// TestRollbackMarksOpenBatchesLost: Redis comes back from an older
// snapshot (SAVE, more progress, SIGKILL, restart). The batch it holds
// lacks what happened since; the worker sees the ledger's write count go
// back, marks the open batch lost, fails /readyz, and the old copy never
// completes or calls back. Enqueueing the input again ends the loss.
func TestRollbackMarksOpenBatchesLost(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithLatency(2*time.Millisecond))
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a callback for a rolled-back batch: %s %s", r.Method, r.URL)
	}))
	t.Cleanup(hook.Close)
	all := ids(3000, 7933000000000000001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("rb"), enqueue.CallbackURL(hook.URL)); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Concurrency = 5
	cfg.IntegrityInterval = 20 * time.Millisecond
	w := b.startWorker(t, cfg)
	waitForBatch(t, b, "rb", func(bt ledger.Batch) bool { return bt.Finished() >= 200 })
	if err := b.rdb.Save(b.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	saved, _, _ := b.ledger.Batch(b.ctx, "rb")
	waitForBatch(t, b, "rb", func(bt ledger.Batch) bool { return bt.Finished() >= saved.Finished()+300 })
	b.redis.Restart() // loads the snapshot
	deadline := time.Now().Add(20 * time.Second)
	for readyz(w) == http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still ready after Redis came back with older data")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bt, ok, _ := b.ledger.BatchOrLost(b.ctx, "rb"); !ok || bt.State(time.Now()) != ledger.StateLost {
		t.Fatalf("batch after the rollback: %+v; want lost", bt)
	}
	// The snapshot's pending tasks run again (those it holds as active
	// come back only after asynq's lease and recoverer, a minute).
	deadline = time.Now().Add(time.Minute)
	for {
		// Read the ids waiting to be fed first: a feed between the two
		// reads would otherwise hide them.
		unfed, uerr := b.ledger.Unfed(b.ctx)
		info, err := b.inspector.GetQueueInfo(enqueue.DefaultQueue)
		if err == nil && uerr == nil && info.Pending == 0 && info.Retry == 0 && unfed[enqueue.DefaultQueue] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not worked down: %+v %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bt, _, _ := b.ledger.Batch(b.ctx, "rb"); bt.Completions != 0 || bt.Finished() < len(all)/2 {
		t.Errorf("the old copy: %+v; want most ids finished and no completion", bt)
	}
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("rb")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for readyz(w) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not ready after the input was enqueued again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
