package maintenance_test

import (
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestOutbox: a batch's completion lands in the outbox with the tallies of
// that moment, stays until it is marked queued, and an entry the store
// cannot read is left alone rather than read as zeros.
func TestOutbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "c", CallbackURL: "https://example.com/hook"}, "1", "2")
	b.record(t, "c", "1", ledger.Deleted, "L1")
	b.record(t, "c", "2", ledger.NotFound, "L2")
	outbox := keyspace.New(ledger.DefaultPrefix).Callbacks()
	b.rdb.SAdd(b.ctx, outbox, "junk/x/1/1/0/0/0", "too/few")

	pending, err := b.store.PendingCallbacks(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 {
		t.Fatalf("pending %+v, want the one completion of c", pending)
	}
	c := pending[0]
	if c.Batch != "c" || c.N != 1 || c.Total != 2 || c.Deleted != 1 || c.NotFound != 1 || c.Failed != 0 ||
		!c.CompletedAt.Equal(b.now) {
		t.Errorf("completion %+v", c.Completion)
	}
	if err := b.store.CallbackQueued(b.ctx, c); err != nil {
		t.Fatal(err)
	}
	if again, _ := b.store.PendingCallbacks(b.ctx); len(again) != 0 {
		t.Errorf("still pending after CallbackQueued: %+v", again)
	}
	if n := b.rdb.SCard(b.ctx, outbox).Val(); n != 2 {
		t.Errorf("outbox holds %d entries, want the 2 unreadable ones kept", n)
	}
}

// TestLock: one holder at a time until the lock expires.
func TestLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if ok, err := b.store.Lock(b.ctx, "janitor", time.Minute); !ok || err != nil {
		t.Fatalf("first Lock = %v, %v", ok, err)
	}
	if ok, _ := b.store.Lock(b.ctx, "janitor", time.Minute); ok {
		t.Error("a second holder got the lock")
	}
	if ok, _ := b.store.Lock(b.ctx, "other", time.Minute); !ok {
		t.Error("another lock name is held by the first")
	}
	b.rdb.Del(b.ctx, keyspace.New(ledger.DefaultPrefix).Lock("janitor")) // it expired
	if ok, _ := b.store.Lock(b.ctx, "janitor", time.Minute); !ok {
		t.Error("not taken again after it expired")
	}
}

// TestPendingWithoutTask: pending ids with no live task anywhere are found,
// a page at a time; ids with a live task, finished ids and linked ids are
// not; an id whose live task is in another queue is linked to it.
func TestPendingWithoutTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.openFedLost(t, ledger.BatchSpec{Name: "s", Queue: "q", ExpectedIDs: 10}, "101", "102", "103", "104")
	b.record(t, "s", "103", ledger.Deleted, "L")
	b.rdb.HSet(b.ctx, asynqTaskKey("q", "del:101"), "state", "pending")
	b.rdb.SAdd(b.ctx, asynqQueues, "q", "other")
	b.rdb.HSet(b.ctx, asynqTaskKey("other", "del:104"), "state", "retry")

	bt, ok, err := b.ledger.Batch(b.ctx, "s")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var ids []string
	from, pages := 0, 0
	for {
		page, err := b.store.PendingWithoutTask(b.ctx, bt, from, 16, "del:", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if page.Queue != "q" {
			t.Errorf("queue %q, want q", page.Queue)
		}
		ids = append(ids, page.IDs...)
		pages++
		if from = page.Next; from == 0 {
			break
		}
	}
	if pages != bt.BucketCount()/16 {
		t.Errorf("%d pages of 16 for %d buckets", pages, bt.BucketCount())
	}
	if len(ids) != 1 || ids[0] != "102" {
		t.Errorf("ids without a task %q, want 102", ids)
	}
	link := b.rdb.HGet(b.ctx, keyspace.New(ledger.DefaultPrefix).Also(), "104").Val()
	if link != "s@other" {
		t.Errorf("104's link %q, want s@other", link)
	}
}

// TestStalledFeed: ids waiting in their batch's unfed list are the feed's,
// not lost; a batch whose held ids were never released (its producer died)
// joins its queue's feed once it stalls, and keeps a later feed time.
func TestStalledFeed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "held", Queue: "q", Hold: true}, "101", "102")
	b.open(t, ledger.BatchSpec{Name: "later", Queue: "q", FeedAt: b.now.Add(48 * time.Hour)}, "201")
	ks := keyspace.New(ledger.DefaultPrefix)
	if n := b.rdb.ZCard(b.ctx, ks.Feed("q")).Val(); n != 1 {
		t.Fatalf("%d batches in the feed before the sweep, want the scheduled one", n)
	}
	for _, name := range []string{"held", "later"} {
		bt, _, err := b.ledger.Batch(b.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		page, err := b.store.PendingWithoutTask(b.ctx, bt, 0, bt.BucketCount(), "del:", b.now)
		if err != nil || len(page.IDs) != 0 {
			t.Errorf("%s: %q without a task, %v; want none: they wait to be fed", name, page.IDs, err)
		}
	}
	if score, err := b.rdb.ZScore(b.ctx, ks.Feed("q"), "held").Result(); err != nil || int64(score) != b.now.UnixMilli() {
		t.Errorf("held batch in the feed at %v, %v; want now", score, err)
	}
	if score := b.rdb.ZScore(b.ctx, ks.Feed("q"), "later").Val(); int64(score) != b.now.Add(48*time.Hour).UnixMilli() {
		t.Errorf("scheduled batch moved to %v", score)
	}
}
