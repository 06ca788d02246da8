package enqueue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// An enqueue leaves its ids in the ledger, compact; workers turn them into
// tasks as their queues have room ([Client.Feed]), so that a queue holds a
// window of real tasks, not millions of them.

// feedBatches is how many of a queue's ready batches one feed shares the
// room between: a new batch behind a big one gets its share at once.
const feedBatches = 16

// FeedMost bounds the tasks one feed makes in one atomic step, so that
// Redis is never held long by it.
const FeedMost = 1000

// templateTTL is how long a batch's task template is reused: a later
// enqueue may change the batch's retry budget.
const templateTTL = 10 * time.Second

// Fed is what [Client.Feed] did.
type Fed struct {
	// Tasks made.
	Tasks int
	// Waiting is how many tasks the queue's pending list held afterwards;
	// WaitingBefore, before the feed.
	Waiting, WaitingBefore int
	// Linked counts ids whose task id was taken by a live task (another
	// batch's): that task records its outcome in their batch too.
	Linked int
}

type template struct {
	batch ledger.FeedBatch
	built time.Time
}

// feedTemplates caches the task templates of the batches a client feeds.
type feedTemplates struct {
	mu sync.Mutex
	m  map[string]template // queue + " " + batch
}

// Feed makes tasks in queue for the pending ids of the batches in its
// feed, until its pending list holds target tasks: a share of the room for
// each ready batch, oldest ids first, each task as its batch's identity
// with its retry budget. A worker calls it as its queues drain. Feeding is
// atomic per step: several workers may feed one queue at once, and a
// feeder killed mid-feed loses no id.
func (c *Client) Feed(ctx context.Context, queue string, target int) (Fed, error) {
	var fed Fed
	now := c.now()
	names, err := c.ledger.FeedReady(ctx, queue, now, feedBatches)
	if err != nil || len(names) == 0 {
		return fed, err
	}
	batches := make([]ledger.FeedBatch, len(names))
	for i, name := range names {
		if batches[i], err = c.template(ctx, queue, name, now); err != nil {
			return fed, err
		}
	}
	for first := true; ; first = false {
		res, err := c.ledger.Feed(ctx, queue, target, FeedMost, batches, tasks.TaskID(""), c.now())
		if err != nil {
			return fed, err
		}
		if first {
			fed.WaitingBefore = res.WaitingBefore
		}
		fed.Tasks += res.Fed
		fed.Waiting = res.Waiting
		for _, conflict := range res.Conflicts {
			status, err := c.settleFed(ctx, queue, conflict)
			if err != nil {
				return fed, err
			}
			switch status {
			case Duplicate:
				fed.Linked++
			case Enqueued:
				fed.Tasks++
			}
		}
		if res.Fed < FeedMost || res.Waiting >= target {
			return fed, nil
		}
	}
}

// template returns the task template of batch in queue, built from its
// ledger record at most templateTTL ago. A batch that can get no task (it
// is gone, or its session name was erased) has an empty one, which takes
// it out of the feed.
func (c *Client) template(ctx context.Context, queue, name string, now time.Time) (ledger.FeedBatch, error) {
	key := queue + " " + name
	c.templates.mu.Lock()
	t, cached := c.templates.m[key]
	c.templates.mu.Unlock()
	if cached && now.Sub(t.built) < templateTTL {
		return t.batch, nil
	}
	none := ledger.FeedBatch{Name: name}
	b, found, err := c.ledger.Batch(ctx, name)
	if err != nil || !found {
		return none, err
	}
	profile, session, err := b.TaskIdentity()
	if errors.Is(err, ledger.ErrSessionErased) {
		return none, nil
	}
	if err != nil {
		return none, err
	}
	prefix, suffix, err := tasks.Payload{Batch: name}.WithIdentity(profile, session).PayloadTemplate()
	if err != nil {
		return none, fmt.Errorf("enqueue: feed %s: %w", name, err)
	}
	head, tail := asynqwire.Template(asynqwire.Task{Type: tasks.TypeDelete, Queue: queue, MaxRetry: b.AsynqMaxRetry})
	fb := ledger.FeedBatch{Name: name, PayloadPrefix: prefix, PayloadSuffix: suffix, MessageHead: head, MessageTail: tail}
	c.templates.mu.Lock()
	if c.templates.m == nil || len(c.templates.m) > 10*feedBatches {
		c.templates.m = map[string]template{} // forget batches no longer fed
	}
	c.templates.m[key] = template{batch: fb, built: now}
	c.templates.mu.Unlock()
	return fb, nil
}

// settleFed settles an id the feed took but could not make a task for: a
// task with its task id exists. It links the batch to that task, or
// replaces it when it is archived (see settleConflict).
func (c *Client) settleFed(ctx context.Context, queue string, conflict ledger.FeedConflict) (Status, error) {
	b, ok, err := c.ledger.Batch(ctx, conflict.Batch)
	if err != nil || !ok {
		return "", err
	}
	profile, session, err := b.TaskIdentity()
	if err != nil {
		return "", nil // complete, so not pending: nothing to settle
	}
	o := defaultOptions(conflict.Batch)
	o.queue, o.profile, o.session, o.maxRetry = queue, profile, session, tasks.RetryBudget(b.AsynqMaxRetry)
	t, err := o.wireTask(conflict.ConversationID, c.now())
	if err != nil {
		return "", err
	}
	return c.settleConflict(ctx, c.ledger.EntryKey(b, conflict.ConversationID), conflict.ConversationID, o, t)
}
