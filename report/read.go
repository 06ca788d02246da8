package report

import (
	"context"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// ReadBatches reads the batches as `status` shows them: the batches Redis
// lost (whose input nobody enqueued again) first, then the newest, at
// most limit of those (0: all), each with the queues no live worker
// serves marked (see [MarkUnserved]).
func ReadBatches(ctx context.Context, rdb redis.UniversalClient, led *ledger.Ledger, limit int) ([]ledger.Batch, error) {
	lost, err := led.LostBatches(ctx)
	if err != nil {
		return nil, err
	}
	batches, err := led.Batches(ctx, limit)
	if err != nil {
		return nil, err
	}
	// A batch Redis holds an older copy of is listed once, as lost.
	batches = slices.DeleteFunc(batches, func(b ledger.Batch) bool {
		return slices.ContainsFunc(lost, func(l ledger.Batch) bool { return l.Name == b.Name })
	})
	batches = append(lost, batches...)
	MarkUnserved(ctx, rdb, batches)
	return batches, nil
}

// ReadBatch reads one batch as `status BATCH` shows it, with its queues no
// live worker serves marked and its history; ok is false when there is no
// such batch.
func ReadBatch(ctx context.Context, rdb redis.UniversalClient, led *ledger.Ledger, name string) (b ledger.Batch, ok bool, err error) {
	b, ok, err = led.BatchOrLost(ctx, name)
	if err != nil || !ok {
		return b, ok, err
	}
	batches := []ledger.Batch{b}
	MarkUnserved(ctx, rdb, batches)
	if err := WithHistory(ctx, led, batches); err != nil {
		return b, false, err
	}
	return batches[0], true, nil
}

// WithHistory reads each batch's control actions (cancel, pause, resume,
// extend), which the JSON status and the console show.
func WithHistory(ctx context.Context, led *ledger.Ledger, batches []ledger.Batch) error {
	for i, b := range batches {
		if !b.LostAt.IsZero() {
			continue
		}
		h, err := led.History(ctx, b.Name)
		if err != nil {
			return err
		}
		batches[i].History = h
	}
	return nil
}

// MarkUnserved notes, on each batch with ids pending, the queues of the
// batch that no live worker serves, so that its ETA says it is stalled
// rather than "?". Without asynq's server records it notes nothing: the
// status then shows what the ledger alone says.
func MarkUnserved(ctx context.Context, rdb redis.UniversalClient, batches []ledger.Batch) {
	if !slices.ContainsFunc(batches, func(b ledger.Batch) bool { return b.LostAt.IsZero() && b.Pending() > 0 }) {
		return
	}
	served, err := enqueue.ServedQueues(ctx, rdb)
	if err != nil {
		return
	}
	for i, b := range batches {
		if b.LostAt.IsZero() && b.Pending() > 0 {
			batches[i].UnservedQueues = enqueue.UnservedQueues(b.Queues, served)
		}
	}
}

// StateText is a batch's state as the status table shows it: the state,
// what its verification adds ("verifying", "verified"), and its control
// when the state does not say it ("cancelled", "paused").
func StateText(b ledger.Batch, now time.Time) string {
	return controlText(b, stateText(b, string(b.State(now))))
}

// ETAText is how long a batch's pending ids will take at its rate, or why
// there is no figure: "-" when none is pending, "paused", "stalled: no
// worker serves queue Q", "?" when nothing finishes.
func ETAText(b ledger.Batch, now time.Time) string { return etaText(b, now) }
