package enqueue_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// dump returns every key of the Redis with its serialized value: two dumps
// are equal when nothing was written in between.
func dump(t *testing.T, ctx context.Context, rdb *redis.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		v, err := rdb.Dump(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[iter.Val()] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// entries returns the batch's id entries, "id outcome", sorted.
func entries(t *testing.T, ctx context.Context, led *ledger.Ledger, batch string) []string {
	t.Helper()
	var out []string
	err := led.Entries(ctx, batch, func(e ledger.Entry) error {
		out = append(out, e.ConversationID+" "+string(e.Outcome))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestEnqueueCannotWriteIntoAnotherBatch is issue 11's reproduction: a batch
// named "evil:ids:1" would have been the id bucket 1 of batch "evil". The
// enqueue is refused before it writes anything, and "evil" keeps its ids.
func TestEnqueueCannotWriteIntoAnotherBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rdb := b.redis.Client()
	led := ledger.New(rdb)
	ids := []string{"1001", "1002", "2001"}
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids), enqueue.Batch("evil")); err != nil {
		t.Fatal(err)
	}
	before, beforeEntries := dump(t, b.ctx, rdb), entries(t, b.ctx, led, "evil")
	if len(beforeEntries) != len(ids) {
		t.Fatalf("evil holds %q, want the %d ids", beforeEntries, len(ids))
	}

	for _, name := range []string{"evil:ids:1", "evil:ids:0", "evil:adders", "evil/1", "evil@default"} {
		_, err := b.client.Enqueue(b.ctx, "3001", enqueue.Batch(name))
		if !errors.Is(err, tasks.ErrInvalidBatch) {
			t.Errorf("enqueue into %q: %v, want ErrInvalidBatch", name, err)
		}
	}
	if after := dump(t, b.ctx, rdb); !maps.Equal(before, after) {
		t.Errorf("a refused enqueue wrote to Redis: keys before %v, after %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	if got := entries(t, b.ctx, led, "evil"); !slices.Equal(got, beforeEntries) {
		t.Errorf("evil's entries are now %q, were %q", got, beforeEntries)
	}
	if bt, _, err := led.Batch(b.ctx, "evil"); err != nil || bt.Total != len(ids) || bt.Pending() != len(ids) {
		t.Errorf("evil is now %+v, %v", bt, err)
	}
}

// TestEnqueueRefusesReservedBatch: the worker keeps the records of tasks it
// refused under ledger.InvalidBatch; a producer may not name it.
func TestEnqueueRefusesReservedBatch(t *testing.T) {
	t.Parallel()
	c := enqueue.NewClient(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}))
	_, err := c.Enqueue(context.Background(), "1", enqueue.Batch(ledger.InvalidBatch))
	if !errors.Is(err, tasks.ErrInvalidBatch) || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("Batch(%q): %v, want a reserved-name ErrInvalidBatch", ledger.InvalidBatch, err)
	}
	if err := enqueue.ValidateBatch(ledger.InvalidBatch); !errors.Is(err, tasks.ErrInvalidBatch) {
		t.Errorf("ValidateBatch(%q) = %v", ledger.InvalidBatch, err)
	}
	if err := enqueue.ValidateBatch("gdpr-118"); err != nil {
		t.Errorf("ValidateBatch(gdpr-118) = %v", err)
	}
}

// TestEnqueueRefusesBadQueue: a queue name with a separator, or the queue of
// callback deliveries (whose server has no handler for a deletion), is
// refused before anything is written.
func TestEnqueueRefusesBadQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rdb := b.redis.Client()
	for _, q := range []string{"a b", callback.Queue, "", "q}", "q@x", strings.Repeat("q", 65)} {
		_, err := b.client.Enqueue(b.ctx, "1", enqueue.Batch("b1"), enqueue.Queue(q))
		if !errors.Is(err, tasks.ErrInvalidQueue) {
			t.Errorf("Queue(%q): %v, want ErrInvalidQueue", q, err)
		}
		_, err = b.client.EnqueueFrom(b.ctx, strings.NewReader("1\n"), enqueue.Batch("b1"), enqueue.Queue(q))
		if !errors.Is(err, tasks.ErrInvalidQueue) {
			t.Errorf("EnqueueFrom with Queue(%q): %v, want ErrInvalidQueue", q, err)
		}
	}
	if keys := dump(t, b.ctx, rdb); len(keys) != 0 {
		t.Errorf("refused enqueues wrote %v", slices.Sorted(maps.Keys(keys)))
	}
}
