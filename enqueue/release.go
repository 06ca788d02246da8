package enqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// errStopScan ends a scan of the batch's entries early.
var errStopScan = errors.New("enqueue: scan stopped")

// Release queues a task for every pending id of batch, as the batch's
// identity and in its first queue: what [Hold] added, and any pending id
// whose task is gone. An id whose task is already queued counts as a
// duplicate and keeps it. The batch's ids are read a bucket at a time, so
// memory does not grow with the batch. opts may set the retry budget and
// the schedule; the batch, queue and identity are the batch's own.
func (c *Client) Release(ctx context.Context, batch string, opts ...Option) (Summary, error) {
	b, ok, err := c.ledger.Batch(ctx, batch)
	switch {
	case err != nil:
		return Summary{Batch: batch}, err
	case !ok:
		return Summary{Batch: batch}, fmt.Errorf("enqueue: release %s: no such batch", batch)
	}
	profile, session, err := b.TaskIdentity()
	if err != nil {
		return Summary{Batch: batch}, err
	}
	queue := DefaultQueue
	if len(b.Queues) > 0 {
		queue = b.Queues[0]
	}
	all := append(slices.Clone(opts), Batch(batch), Queue(queue), Profile(profile))
	if session != "" {
		all = append(all, Session(session))
	}
	var scanErr error
	pending := func(yield func(string) bool) {
		scanErr = c.ledger.Entries(ctx, batch, func(e ledger.Entry) error {
			if e.Outcome.Terminal() {
				return nil
			}
			if !yield(e.ConversationID) {
				return errStopScan
			}
			return nil
		})
	}
	sum, err := c.EnqueueAll(ctx, pending, all...)
	if err == nil && scanErr != nil && !errors.Is(scanErr, errStopScan) {
		err = fmt.Errorf("enqueue: release %s: %w", batch, scanErr)
	}
	return sum, err
}

// OpenEmpty makes the batch of opts with no id in it (or opens it as it
// is, when it exists) and returns the seal that ends the opening: until
// then the batch cannot complete, so the caller may record what it must
// first. A verified batch ([Verify]) of a data subject who has nothing to
// erase is such a batch: it holds the listings that found nothing, and
// completes once its verification finds nothing either. Any other empty
// batch stays empty: it never completes.
func (c *Client) OpenEmpty(ctx context.Context, opts ...Option) (seal func(context.Context) error, err error) {
	o, err := c.options(opts)
	if err != nil {
		return nil, err
	}
	adder, err := c.openBatch(ctx, o)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := adder.Seal(ctx)
		return err
	}, nil
}
