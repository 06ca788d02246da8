package systemtest

import (
	"slices"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// Workers feed their queues from the ledger as tasks finish (enqueue.Client
// .Feed); these scenarios run several feeding worker processes at once and
// kill Redis mid-refill.

// enqueueInto enqueues ids into batch on queue.
func (b *bundle) enqueueInto(t *testing.T, batch, queue string, list []string) {
	t.Helper()
	c := enqueue.NewClient(b.rdb)
	defer c.Close()
	if sum, err := c.EnqueueAll(b.ctx, slices.Values(list), enqueue.Batch(batch), enqueue.Queue(queue)); err != nil || sum.Enqueued != len(list) {
		t.Fatalf("enqueue %s: %+v, %v", batch, sum, err)
	}
}

// unfed is how many ids wait in the ledger for their task, all queues.
func (b *bundle) unfed(t *testing.T) int {
	t.Helper()
	per, err := b.ledger.Unfed(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range per {
		n += v
	}
	return n
}

// checkBatches holds several batches (of distinct ids) to the fake's
// record as checkOutcomes holds one: every id one terminal outcome, every
// deletion the fake made recorded. It returns the duplicate calls.
func (b *bundle) checkBatches(t *testing.T, batches map[string][]string) (duplicates int) {
	t.Helper()
	outcomes := map[string]ledger.Outcome{}
	for name, list := range batches {
		err := b.ledger.Entries(b.ctx, name, func(e ledger.Entry) error {
			outcomes[e.ConversationID] = e.Outcome
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range list {
			if o := outcomes[id]; !o.Terminal() {
				t.Errorf("id %s of %s ended %q", id, name, o)
			}
		}
	}
	for id := range b.fake.Deletions() {
		if o := outcomes[id]; o != ledger.Deleted && o != ledger.NotFound {
			t.Errorf("the fake deleted %s; the ledger says %q", id, o)
		}
	}
	return b.duplicateCalls()
}

// TestFeedersShareQueues: three worker processes feed two queues at once,
// one serving bulk, one gdpr, one both (gdpr weighted 6). A gdpr batch
// enqueued behind a bulk batch of 6,000 finishes while bulk still has ids
// waiting, and no id is fed twice: every id is deleted with one call.
func TestFeedersShareQueues(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cozetest.WithLatency(2*time.Millisecond))
	bulk, urgent := ids(6000, 7610000000000000001), ids(300, 7619000000000000001)
	b.enqueueInto(t, "bulk-1", "bulk", bulk)
	startWorker(t, b.env(), "--queues", "bulk=1", "--concurrency", "10")
	startWorker(t, b.env(), "--queues", "bulk=1,gdpr=6", "--concurrency", "10")
	startWorker(t, b.env(), "--queues", "gdpr=1", "--concurrency", "10")
	waitFor(t, time.Minute, "bulk's first outcomes", func() bool { return b.batch("bulk-1").Finished() > 0 })
	enqueuedAt := time.Now()
	b.enqueueInto(t, "gdpr-1", "gdpr", urgent)
	waitFor(t, time.Minute, "the gdpr batch", func() bool { return b.batch("gdpr-1").Pending() == 0 })
	urgentDone := time.Since(enqueuedAt)
	bulkLeft := b.batch("bulk-1").Pending()
	if bulkLeft == 0 {
		t.Errorf("bulk finished before the gdpr batch behind it: the test proves nothing about starving")
	}
	waitFor(t, 2*time.Minute, "the bulk batch", func() bool { return b.batch("bulk-1").Pending() == 0 })
	dups := b.checkBatches(t, map[string][]string{"bulk-1": bulk, "gdpr-1": urgent})
	if dups != 0 {
		t.Errorf("%d duplicate DELETE calls: an id was fed twice", dups)
	}
	if n := b.unfed(t); n != 0 {
		t.Errorf("%d ids still wait to be fed", n)
	}
	t.Logf("feeders: 3 workers, 2 queues; gdpr batch of %d done %.1fs after its enqueue, with %d bulk ids still pending; %d duplicate calls",
		len(urgent), urgentDone.Seconds(), bulkLeft, dups)
}

// TestRedisKilledMidRefill: Redis (AOF, fsync every second) is SIGKILLed while
// two worker processes feed one queue from two batches, with most ids
// still waiting to be fed, and restarted a second later. A refill is one
// script: it is in the AOF whole or not at all (a second of writes the
// fsync had not reached may be lost, refills and outcomes alike: their
// ids are fed again). Nothing is lost, and every
// id ends with one outcome.
func TestRedisKilledMidRefill(t *testing.T) {
	t.Parallel()
	b := setup(t, []redistest.Option{redistest.WithArgs("--appendonly", "yes", "--appendfsync", "everysec")},
		cozetest.WithLatency(2*time.Millisecond))
	first, second := ids(6000, 7620000000000000001), ids(4000, 7629000000000000001)
	b.enqueueInto(t, "refill-1", "default", first)
	b.enqueueInto(t, "refill-2", "default", second)
	for range 2 {
		startWorker(t, b.env(), "--concurrency", "20", "--redis-wait", "60s", "--rate", "0")
	}
	finished := func() int { return b.batch("refill-1").Finished() + b.batch("refill-2").Finished() }
	waitFor(t, 2*time.Minute, "a fifth of the work", func() bool { return finished() >= 2000 })
	waiting := b.unfed(t)
	if waiting == 0 {
		t.Fatal("every id was fed before the kill: the test proves nothing about refills")
	}
	b.redis.Kill()
	time.Sleep(time.Second) // the outage itself
	b.redis.Restart()
	restartedAt := time.Now()
	before := finished()
	waitFor(t, time.Minute, "progress after the restart", func() bool { return finished() > before })
	resumed := time.Since(restartedAt)
	waitFor(t, 5*time.Minute, "both batches", func() bool {
		return b.batch("refill-1").Pending() == 0 && b.batch("refill-2").Pending() == 0
	})
	dups := b.checkBatches(t, map[string][]string{"refill-1": first, "refill-2": second})
	t.Logf("Redis SIGKILLed mid-refill with %d ids waiting to be fed; progress resumed %.1fs after the restart, done %.1fs after it; "+
		"%d duplicate DELETE calls", waiting, resumed.Seconds(), time.Since(restartedAt).Seconds(), dups)
}
