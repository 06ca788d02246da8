package enqueue

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// RetrySummary is the tally of [Client.RetryFailures].
type RetrySummary struct {
	// Retried ids got a new task.
	Retried int
	// AlreadyQueued ids had a task waiting and were left alone.
	AlreadyQueued int
	// DryRun is true when nothing was changed: Retried counts the ids
	// that would have been.
	DryRun bool
}

// String formats the summary as the CLI prints it,
// "retried=N already_queued=N", or for a dry run
// "would retry=N already_queued=N".
func (s RetrySummary) String() string {
	if s.DryRun {
		return fmt.Sprintf("would retry=%d already_queued=%d", s.Retried, s.AlreadyQueued)
	}
	return fmt.Sprintf("retried=%d already_queued=%d", s.Retried, s.AlreadyQueued)
}

// RetryFailures queues again every failure record that matches filter, in
// the record's batch and queue, with the retry budget of opts (MaxRetry).
// An archived task of the id is deleted first, since its task id would
// refuse the new one; an id whose task is still pending, scheduled,
// retrying or running is left alone. With dryRun nothing is changed and the
// summary says what would be.
//
// Each id is reopened in the ledger before its new task is enqueued, so the
// new task's outcome is recorded. Should Redis fail between the two, the
// record stays retrying without a task; filtering on ledger.Retrying
// queues those.
//
// The new tasks act as their batch's identity (its profile and session),
// whatever opts say. A batch whose session name the ledger erased (it
// completed: ledger.Ledger.ScrubSessions) cannot be retried: RetryFailures
// refuses, before it changes anything, with an error wrapping
// ledger.ErrSessionErased; retry its ids in a new batch.
func (c *Client) RetryFailures(ctx context.Context, filter ledger.Filter, dryRun bool, opts ...Option) (RetrySummary, error) {
	led, inspector := c.ledger, c.inspector
	sum := RetrySummary{DryRun: dryRun}
	// Checked before any failure is touched: a bad option found at the
	// first enqueue would leave an archived task deleted and a record
	// reopened with no task.
	if _, err := c.options(opts); err != nil {
		return sum, err
	}
	var selected []ledger.Failure
	err := led.Failures(ctx, filter, func(f ledger.Failure) error {
		selected = append(selected, f)
		return nil
	})
	if err != nil {
		return sum, err
	}
	identities, err := c.identities(ctx, selected)
	if err != nil {
		return sum, err
	}
	for _, f := range selected {
		queued, err := c.retryOne(ctx, led, inspector, f, filter.Outcome, dryRun, append(opts, identities[f.Batch]...))
		if err != nil {
			return sum, err
		}
		if queued {
			sum.Retried++
		} else {
			sum.AlreadyQueued++
		}
	}
	return sum, nil
}

// identities returns, for each batch of the failures, the options that
// make a new task act as the batch's identity. A batch that no longer
// exists gets none (a new one is created, as before batches had
// identities); one whose session name was erased is an error.
func (c *Client) identities(ctx context.Context, failures []ledger.Failure) (map[string][]Option, error) {
	out := map[string][]Option{}
	for _, f := range failures {
		if _, seen := out[f.Batch]; seen {
			continue
		}
		b, ok, err := c.ledger.Batch(ctx, f.Batch)
		if err != nil {
			return nil, err
		}
		out[f.Batch] = []Option{}
		if !ok {
			continue
		}
		if _, _, err := b.TaskIdentity(); err != nil {
			return nil, fmt.Errorf("retry: %w", err)
		}
		out[f.Batch] = []Option{Profile(b.Profile), Session(b.SessionName())}
	}
	return out, nil
}

func (c *Client) retryOne(ctx context.Context, led *ledger.Ledger, inspector *asynq.Inspector, f ledger.Failure,
	from ledger.Outcome, dryRun bool, opts []Option) (bool, error) {
	queue := f.Queue
	if queue == "" {
		queue = DefaultQueue
	}
	taskID := tasks.TaskID(f.ConversationID)
	info, err := inspector.GetTaskInfo(queue, taskID)
	switch {
	case err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound):
		return false, fmt.Errorf("retry %s: %w", f.ConversationID, err)
	case dryRun:
		return err != nil || info.State == asynq.TaskStateArchived, nil
	case err == nil && info.State == asynq.TaskStateArchived:
		if err := inspector.DeleteTask(queue, taskID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return false, fmt.Errorf("retry %s: delete archived task: %w", f.ConversationID, err)
		}
	}
	live := err == nil && info.State != asynq.TaskStateArchived
	if from == "" || from == ledger.Retrying {
		from = f.Outcome
	}
	reopened := false
	if from == ledger.Failed || from == ledger.NotFound {
		if reopened, err = led.Reopen(ctx, f.Batch, f.ConversationID, from); err != nil {
			return false, err
		}
	}
	if live {
		// A task for the id is on its way (queued for another batch, or
		// by a retry of that batch): it records its outcome here too.
		if _, err := led.Link(ctx, f.Batch, f.ConversationID, queue, taskID); err != nil {
			return false, err
		}
		return reopened, nil
	}
	all := append([]Option{Queue(queue), Batch(f.Batch)}, opts...)
	status, err := c.Enqueue(ctx, f.ConversationID, all...)
	if err != nil || status != Duplicate {
		return status == Enqueued, err
	}
	// Reopened: the id is in the batch, pending, and no feed will make its
	// task (it is in no unfed list). It gets one now.
	status, err = c.writeTask(ctx, f.ConversationID, all)
	return status == Enqueued || status == Duplicate, err
}

// writeTask writes the task of an id pending in its batch now, rather than
// leaving it to a feed: guarded on its entry (only while it is pending), or
// linked to a task with its id that is there already (settleConflict).
func (c *Client) writeTask(ctx context.Context, id string, opts []Option) (Status, error) {
	o, err := c.options(opts)
	if err != nil {
		return "", err
	}
	b, ok, err := c.ledger.Batch(ctx, o.batch)
	if err != nil || !ok {
		return "", err
	}
	t, err := o.wireTask(id, c.now())
	if err != nil {
		return "", err
	}
	return c.settleConflict(ctx, c.ledger.EntryKey(b, id), id, o, t)
}
