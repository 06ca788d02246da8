package enqueue_test

import (
	"slices"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestFeedersNeverDoubleFeed: eight feeders feed one queue at once, from
// three batches, while ids are still being enqueued. Every id gets exactly
// one task, and none is left behind.
func TestFeedersNeverDoubleFeed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batches := map[string][]string{"a": ids(3000, 7379996104700000001), "b": ids(2000, 7379996104710000001), "c": ids(500, 7379996104720000001)}
	var g errgroup.Group
	for name, list := range batches {
		g.Go(func() error {
			_, err := b.client.EnqueueAll(b.ctx, slices.Values(list), enqueue.Batch(name), enqueue.Queue("bulk"))
			return err
		})
	}
	var mu sync.Mutex
	made := 0
	var feeders errgroup.Group
	done := make(chan struct{})
	for range 8 {
		feeders.Go(func() error {
			for {
				fed, err := b.client.Feed(b.ctx, "bulk", 1<<30)
				if err != nil {
					return err
				}
				mu.Lock()
				made += fed.Tasks
				mu.Unlock()
				select {
				case <-done:
					if fed.Tasks == 0 {
						return nil
					}
				default:
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	close(done)
	if err := feeders.Wait(); err != nil {
		t.Fatal(err)
	}
	if made != 5500 {
		t.Errorf("the feeders made %d tasks for 5500 ids", made)
	}
	info, err := b.inspector.GetQueueInfo("bulk")
	if err != nil || info.Pending != 5500 {
		t.Fatalf("queue: %+v, %v; want 5500 tasks", info, err)
	}
	for name, list := range batches {
		for _, id := range list[:5] {
			if p, err := tasks.ParsePayload(b.task(t, "bulk", id).Payload); err != nil || p.Batch != name {
				t.Errorf("task of %s: %+v, %v; want batch %s", id, p, err, name)
			}
		}
	}
}

// TestFeedSharesTheWindow: a small batch enqueued behind a big one in the
// same queue gets its share of the next feed, not a place behind the big
// one's ids: its first task waits behind at most one window.
func TestFeedSharesTheWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(20_000, 7379996104700000001)), enqueue.Batch("bulk-1")); err != nil {
		t.Fatal(err)
	}
	if fed, err := b.client.Feed(b.ctx, enqueue.DefaultQueue, 100); err != nil || fed.Tasks != 100 {
		t.Fatalf("first window: %+v, %v", fed, err)
	}
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(10, 7379996104790000001)), enqueue.Batch("gdpr-1")); err != nil {
		t.Fatal(err)
	}
	// Workers took the first window.
	if err := b.redis.Client().Del(b.ctx, asynqwire.StateKey(enqueue.DefaultQueue, "pending")).Err(); err != nil {
		t.Fatal(err)
	}
	if fed, err := b.client.Feed(b.ctx, enqueue.DefaultQueue, 100); err != nil || fed.Tasks != 100 {
		t.Fatalf("second window: %+v, %v", fed, err)
	}
	for _, id := range ids(10, 7379996104790000001) {
		b.task(t, enqueue.DefaultQueue, id) // fails the test when missing
	}
}

// TestFeedPassesOverPausedAndDropsCancelled: a paused batch keeps its ids
// unfed until it resumes; a cancelled one leaves the feed, its ids never
// becoming tasks.
func TestFeedPassesOverPausedAndDropsCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, name := range []string{"paused", "cancelled"} {
		if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(50, 7379996104700000001)), enqueue.Batch(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.client.Pause(b.ctx, "paused", "hold"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Cancel(b.ctx, "cancelled", "withdrawn"); err != nil {
		t.Fatal(err)
	}
	if fed := b.feed(t, enqueue.DefaultQueue); fed.Tasks != 0 {
		t.Fatalf("fed %d tasks of a paused and a cancelled batch", fed.Tasks)
	}
	led := ledger.New(b.redis.Client())
	unfed, err := led.Unfed(b.ctx)
	if err != nil || unfed[enqueue.DefaultQueue] != 50 {
		t.Errorf("unfed %v, %v; want the paused batch's 50", unfed, err)
	}
	if err := b.client.Resume(b.ctx, "paused", "lifted"); err != nil {
		t.Fatal(err)
	}
	if fed := b.feed(t, enqueue.DefaultQueue); fed.Tasks != 50 {
		t.Errorf("fed %d tasks after the resume, want 50", fed.Tasks)
	}
}

// TestFeedWithRedisDown: the error says so, and nothing is claimed fed.
func TestFeedWithRedisDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(10, 7379996104700000001))); err != nil {
		t.Fatal(err)
	}
	b.redis.Kill()
	if fed, err := b.client.Feed(b.ctx, enqueue.DefaultQueue, 100); err == nil || fed.Tasks != 0 {
		t.Errorf("feed with Redis gone: %+v, %v", fed, err)
	}
}

// ids returns n consecutive conversation ids from first.
func ids(n int, first int64) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.FormatInt(first+int64(i), 10)
	}
	return out
}

// TestPausedBatchesDoNotHoldTheFeed: more paused batches than one feed
// looks at (16) do not starve the batch behind them.
func TestPausedBatchesDoNotHoldTheFeed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 20 {
		name := "paused-" + strconv.Itoa(i)
		if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(5, 7379996104700000001+int64(i)*100)), enqueue.Batch(name)); err != nil {
			t.Fatal(err)
		}
		if err := b.client.Pause(b.ctx, name, "hold"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(5, 7379996104790000001)), enqueue.Batch("behind")); err != nil {
		t.Fatal(err)
	}
	fed := 0
	for range 3 { // the paused ones go to the back as each feed passes them over
		f, err := b.client.Feed(b.ctx, enqueue.DefaultQueue, 100)
		if err != nil {
			t.Fatal(err)
		}
		fed += f.Tasks
	}
	if fed != 5 {
		t.Errorf("fed %d tasks; want the 5 of the batch behind 20 paused ones", fed)
	}
}

// TestVanishedBatchLeavesTheFeed: a batch whose records are gone (expired)
// is dropped from its queue's feed at the next feed.
func TestVanishedBatchLeavesTheFeed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(5, 7379996104700000001)), enqueue.Batch("gone")); err != nil {
		t.Fatal(err)
	}
	ks := keyspace.New(keyspace.DefaultPrefix)
	if err := b.redis.Client().Del(b.ctx, ks.Batch("gone")).Err(); err != nil {
		t.Fatal(err)
	}
	if fed := b.feed(t, enqueue.DefaultQueue); fed.Tasks != 0 {
		t.Errorf("fed %d tasks of a vanished batch", fed.Tasks)
	}
	if n := b.redis.Client().ZCard(b.ctx, ks.Feed(enqueue.DefaultQueue)).Val(); n != 0 {
		t.Errorf("%d batches left in the feed", n)
	}
}

// TestErasedSessionLeavesTheFeed: a batch whose session name was erased
// (a scrub that raced a reopen) can get no task acting as its end user: the
// feed makes none and takes the batch out.
func TestErasedSessionLeavesTheFeed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids(5, 7379996104700000001)), enqueue.Batch("jwt"),
		enqueue.Profile("app-eu"), enqueue.Session(session)); err != nil {
		t.Fatal(err)
	}
	ks := keyspace.New(keyspace.DefaultPrefix)
	rdb := b.redis.Client()
	rdb.HSet(b.ctx, ks.Batch("jwt"), "session_hash", ledger.SessionHash(sessionKey, session))
	rdb.HDel(b.ctx, ks.Batch("jwt"), "session")
	if fed := b.feed(t, enqueue.DefaultQueue); fed.Tasks != 0 {
		t.Errorf("fed %d tasks of a batch whose session name was erased", fed.Tasks)
	}
	if n := rdb.ZCard(b.ctx, ks.Feed(enqueue.DefaultQueue)).Val(); n != 0 {
		t.Errorf("%d batches left in the feed", n)
	}
}
