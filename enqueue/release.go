package enqueue

import (
	"context"
	"fmt"
	"slices"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// Release lets the workers feed batch's held ids (the [Hold] option): they
// become tasks, as the batch's identity and in the queue they were added
// for, as the queue has room for them. opts may set the retry budget and
// the schedule (At, In); the batch, queue and identity are the batch's
// own. The summary counts the ids waiting for a task as Enqueued (an id
// another batch's task finished since it was held is among them: the feed
// passes it over). A pending id whose task was lost is the janitor's: it
// finds the ids of a stalled batch that no task will finish.
func (c *Client) Release(ctx context.Context, batch string, opts ...Option) (Summary, error) {
	b, ok, err := c.ledger.Batch(ctx, batch)
	switch {
	case err != nil:
		return Summary{Batch: batch}, err
	case !ok:
		return Summary{Batch: batch}, fmt.Errorf("enqueue: release %s: no such batch", batch)
	}
	if _, _, err := b.TaskIdentity(); err != nil {
		return Summary{Batch: batch}, err
	}
	o, err := c.options(append(slices.Clone(opts), Batch(batch)))
	if err != nil {
		return Summary{Batch: batch}, err
	}
	now := c.now()
	feedAt := o.feedAt(now)
	if feedAt.IsZero() {
		feedAt = now
	}
	n, err := c.ledger.Release(ctx, batch, feedAt, tasks.AsynqMaxRetry(o.maxRetry))
	return Summary{Batch: batch, Enqueued: n}, err
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
