package worker

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// DefaultJanitorInterval is how often a worker repairs what a crash or a
// race can leave behind.
const DefaultJanitorInterval = 30 * time.Second

// janitor queues what a worker was meant to queue but may not have: the
// callbacks of completed batches (a worker can die between completing a
// batch and queueing its callback), and new tasks for ids that were linked
// to a task that finished just before the link was made.
type janitor struct {
	ledger    *ledger.Ledger
	client    *asynq.Client
	wire      *asynqwire.Writer
	inspector *asynq.Inspector
	srv       *Server
	// cursors remembers, per stalled batch, the next bucket to read.
	cursors map[string]int
}

// stalledBucketsPerSweep bounds the work one sweep does on a stalled
// batch: a batch of 4096 buckets is read over 16 sweeps.
const stalledBucketsPerSweep = 256

// run repairs every interval until ctx ends.
func (j *janitor) run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, j.sweep)
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// sweep runs on one worker of the fleet at a time.
func (j *janitor) sweep(ctx context.Context) {
	if ok, err := j.ledger.Lock(ctx, "janitor", j.srv.cfg.JanitorInterval*9/10); err != nil || !ok {
		return
	}
	j.queueCallbacks(ctx)
	names, err := j.ledger.OpenBatches(ctx)
	if err != nil {
		j.srv.cfg.Logger.Warn("janitor: reading open batches", "error", err)
	} else {
		j.completeIdleBatches(ctx, names)
	}
	j.requeueOrphans(ctx)
	if err == nil {
		j.requeueStalled(ctx, names)
	}
}

// requeueStalled gives a new task to the pending ids of stalled batches
// (no progress for StallAfter) that no live task will finish: their enqueue
// died between adding them to the batch and queueing their tasks, and
// nobody ran it again.
func (j *janitor) requeueStalled(ctx context.Context, names []string) {
	for name := range j.cursors { // batches no longer open need no cursor
		if !slices.Contains(names, name) {
			delete(j.cursors, name)
		}
	}
	now := j.srv.cfg.Now()
	for _, name := range names {
		if tasks.ValidateBatch(name) != nil {
			continue // named before the rule: the worker refuses its tasks (README: enqueue it again)
		}
		b, ok, err := j.ledger.Batch(ctx, name)
		if err != nil || !ok || now.Sub(b.ProgressAt()) < j.srv.cfg.StallAfter {
			delete(j.cursors, name)
			continue
		}
		page, err := j.ledger.PendingWithoutTask(ctx, name, j.cursors[name], stalledBucketsPerSweep, tasks.TaskID(""))
		if err != nil {
			j.srv.cfg.Logger.Warn("janitor: reading a stalled batch", "batch", name, "error", err)
			continue
		}
		j.cursors[name] = page.Next
		for _, id := range page.IDs {
			if err := j.requeue(ctx, ledger.Orphan{ConversationID: id, Batch: name, Queue: page.Queue}); err != nil {
				j.srv.cfg.Logger.Warn("janitor: queueing a task for a stalled id", "conversation_id", id, "batch", name, "error", err)
			}
		}
		if len(page.IDs) > 0 {
			j.srv.cfg.Logger.Warn("janitor: queued tasks for pending ids that had none", "batch", name, "ids", len(page.IDs))
		}
	}
}

// completeIdleBatches completes open batches whose ids are all done but
// whose producer stopped without sealing them.
func (j *janitor) completeIdleBatches(ctx context.Context, names []string) {
	for _, name := range names {
		if done, err := j.ledger.CompleteIfDone(ctx, name, j.srv.cfg.Now()); err == nil && done {
			j.srv.cfg.Logger.Info("batch complete", "batch", name)
		}
	}
	j.queueCallbacks(ctx)
}

// requeueOrphans queues a new task for each linked id whose task is no
// longer live.
func (j *janitor) requeueOrphans(ctx context.Context) {
	orphans, err := j.ledger.Orphans(ctx, tasks.TaskID)
	if err != nil {
		j.srv.cfg.Logger.Warn("janitor: reading links", "error", err)
	}
	for _, o := range orphans {
		if err := j.requeue(ctx, o); err != nil {
			j.srv.cfg.Logger.Warn("janitor: queueing a task for a linked id", "conversation_id", o.ConversationID, "batch", o.Batch, "error", err)
		}
	}
}

// requeue queues a new task for o. It writes through asynqwire, whose
// conflict check spans every queue in the same step as the write: a task
// of the id that appeared in another queue since the ledger looked takes a
// link instead, so the id still gets one call.
func (j *janitor) requeue(ctx context.Context, o ledger.Orphan) error {
	if tasks.ValidateBatch(o.Batch) != nil {
		return nil // a batch named before the rule: its tasks are refused, so queue none
	}
	payload, err := tasks.Payload{ConversationID: o.ConversationID, Batch: o.Batch}.Encode()
	if err != nil {
		return err
	}
	task := asynqwire.Task{ID: tasks.TaskID(o.ConversationID), Type: tasks.TypeDelete, Payload: payload, Queue: o.Queue,
		MaxRetry: tasks.AsynqMaxRetry(tasks.DefaultMaxRetry)}
	for range 2 {
		res, err := j.wire.EnqueueMany(ctx, []asynqwire.Task{task})
		if err != nil || res[0] != asynqwire.Conflict {
			return err
		}
		state, err := j.ledger.Link(ctx, o.Batch, o.ConversationID, o.Queue, task.ID)
		if err != nil || state != "archived" {
			return err // linked to a live task, or an error
		}
		// The task failed in its own batch; this batch needs its own try.
		if err := j.inspector.DeleteTask(o.Queue, task.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return err
		}
	}
	return nil
}

// queueCallbacks queues the callback of every completion that has none yet.
// The task id is derived from the completion and delivered tasks are
// retained for a week, so queueing one twice is refused as a duplicate.
func (j *janitor) queueCallbacks(ctx context.Context) {
	pending, err := j.ledger.PendingCallbacks(ctx)
	if err != nil {
		j.srv.cfg.Logger.Warn("janitor: reading pending callbacks", "error", err)
		return
	}
	for _, c := range pending {
		b, ok, err := j.ledger.Batch(ctx, c.Batch)
		if err != nil {
			continue
		}
		if ok && b.CallbackURL != "" {
			task, err := callback.NewTask(callback.Delivery{URL: b.CallbackURL, Summary: callback.SummaryOf(b, c)})
			if err != nil {
				continue
			}
			if _, err := j.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				j.srv.cfg.Logger.Warn("queueing a callback", "batch", c.Batch, "error", err)
				continue
			}
		}
		_ = j.ledger.CallbackQueued(ctx, c)
	}
}
