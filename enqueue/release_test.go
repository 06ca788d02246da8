package enqueue_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestHoldThenRelease: held ids join the batch with no task (nothing can
// delete them while a discovery still lists); Release queues each once,
// as the batch's identity and in its queue; a second Release queues
// nothing new, and a finished id is not queued again.
func TestHoldThenRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := make([]string, 130)
	for i := range ids {
		ids[i] = fmt.Sprintf("73799961047981%05d", i)
	}
	opts := []enqueue.Option{enqueue.Batch("subject"), enqueue.Queue("gdpr"), enqueue.Profile("app-eu"), enqueue.Session(session), enqueue.Hold()}
	for chunk := range slices.Chunk(ids, 50) {
		sum, err := b.client.EnqueueAll(b.ctx, slices.Values(chunk), opts...)
		if err != nil || sum.Enqueued != len(chunk) {
			t.Fatalf("hold: %+v, %v", sum, err)
		}
	}
	if again, err := b.client.EnqueueAll(b.ctx, slices.Values(ids[:10]), opts...); err != nil || again.Duplicate != 10 {
		t.Errorf("holding ids again: %+v, %v", again, err)
	}
	if info, err := b.inspector.GetQueueInfo("gdpr"); err == nil && info.Size > 0 {
		t.Fatalf("%d tasks queued for held ids", info.Size)
	}
	bt, _, _ := b.ledger().Batch(b.ctx, "subject")
	if bt.Total != 130 || bt.Pending() != 130 || bt.Profile != "app-eu" || !bt.HasSession {
		t.Fatalf("batch %+v", bt)
	}

	// One id finishes before the release (a task of another producer).
	if _, err := b.ledger().Record(b.ctx, ledger.Attempt{ConversationID: ids[0], Batch: "subject", Queue: "gdpr",
		Outcome: ledger.Deleted, HasCode: true, LogID: "L0", At: bt.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	// Release counts the ids waiting for a task; the feed passes over
	// the one that finished.
	sum, err := b.client.Release(b.ctx, "subject")
	if err != nil || sum.Enqueued != 130 || sum.Batch != "subject" {
		t.Fatalf("release: %+v, %v", sum, err)
	}
	for _, id := range ids[1:] {
		if p := b.payload(t, "gdpr", id); p.Profile != "app-eu" || p.Session != session || p.Batch != "subject" {
			t.Fatalf("payload of %s: %+v", id, p)
		}
	}
	if info, err := b.inspector.GetQueueInfo("gdpr"); err != nil || info.Pending != 129 {
		t.Errorf("after the feed: %+v, %v; want 129 tasks", info, err)
	}
	if again, err := b.client.Release(b.ctx, "subject"); err != nil || again.Enqueued != 0 {
		t.Errorf("a second release: %+v, %v", again, err)
	}
	if _, err := b.client.Release(b.ctx, "no-such-batch"); err == nil {
		t.Error("releasing a batch that does not exist succeeded")
	}
}
