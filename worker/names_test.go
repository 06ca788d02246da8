package worker_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestQueuedTaskWithColonBatchFailsSafe: a task queued before batch names
// lost ':' (or by another producer) names batch "evil:ids:1", whose ledger
// hash would be the id bucket 1 of batch "evil". The worker refuses it
// without a call and records it under ledger.InvalidBatch; "evil" keeps
// exactly its own entries.
func TestQueuedTaskWithColonBatchFailsSafe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// 4097 lands in bucket 1 of a batch of ledger.Buckets buckets: the key
	// batch:evil:ids:1 exists. "unused" is a queue no worker here serves,
	// so evil's ids stay pending.
	evilIDs := []string{"4097", "8193"}
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(evilIDs), enqueue.Batch("evil"), enqueue.Queue("unused")); err != nil {
		t.Fatal(err)
	}
	entries := func() map[string]string {
		out := map[string]string{}
		err := b.ledger.Entries(b.ctx, "evil", func(e ledger.Entry) error {
			out[e.ConversationID] = string(e.Outcome)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := entries()
	if len(before) != len(evilIDs) {
		t.Fatalf("evil holds %v", before)
	}
	old := asynq.NewTask(tasks.TypeDelete, []byte(`{"id":"3001","batch":"evil:ids:1"}`), asynq.TaskID(tasks.TaskID("3001")))
	if _, err := asynq.NewClientFromRedisClient(b.rdb).Enqueue(old); err != nil {
		t.Fatal(err)
	}

	b.startWorker(t, b.fastConfig(t, nil))
	waitFor(t, 10*time.Second, "the old task to be worked", func() bool {
		info, err := b.inspector.GetQueueInfo(enqueue.DefaultQueue)
		return err == nil && info.Processed > 0 && info.Pending+info.Active+info.Scheduled+info.Retry == 0
	})
	if n := b.archived(t); n != 1 {
		t.Errorf("%d tasks archived, want the old one", n)
	}
	if total := b.fake.Counts()["total"]; total != 0 {
		t.Errorf("the API was called %d times", total)
	}
	if after := entries(); !maps.Equal(after, before) {
		t.Errorf("evil's entries are now %v, were %v", after, before)
	}
	var records []ledger.Failure
	_ = b.ledger.Failures(b.ctx, ledger.Filter{}, func(f ledger.Failure) error { records = append(records, f); return nil })
	if len(records) != 1 || records[0].Batch != ledger.InvalidBatch || !strings.Contains(records[0].Msg, `invalid batch name "evil:ids:1"`) {
		t.Errorf("failure records %+v, want one under %s naming the batch", records, ledger.InvalidBatch)
	}
}
