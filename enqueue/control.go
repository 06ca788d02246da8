package enqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// Batch control for callers that hold a [Client]: the ledger changes the
// batch's state (ledger.Ledger.Cancel, Pause, Resume, Extend) and, for a
// cancel, the client also removes the batch's queued tasks from asynq.

// CancelResult is what [Client.Cancel] did.
type CancelResult struct {
	ledger.CancelResult
	// TasksRemoved counts the queued, scheduled or retrying tasks removed
	// from asynq. A task that was running, or that another batch's id
	// shares, is left: the worker makes no call for a cancelled batch.
	TasksRemoved int
}

// Cancel cancels batch: its pending ids end cancelled in the ledger (the
// worker makes no call for them from then on), the batch completes with
// its callback, and its tasks are removed from its queues, best effort.
// note says why, in the batch's history. Cancelling again finishes a
// cancel that was cut short.
func (c *Client) Cancel(ctx context.Context, batch, note string) (CancelResult, error) {
	if err := checkControl(batch, note); err != nil {
		return CancelResult{}, err
	}
	r, err := c.ledger.Cancel(ctx, batch, note, c.now())
	if err != nil {
		return CancelResult{CancelResult: r}, err
	}
	out := CancelResult{CancelResult: r}
	b, ok, err := c.ledger.Batch(ctx, batch)
	if err != nil || !ok {
		return out, err
	}
	err = c.ledger.Entries(ctx, batch, func(e ledger.Entry) error {
		if e.Outcome != ledger.Cancelled {
			return nil
		}
		for _, q := range b.Queues {
			if c.removeTask(q, batch, e.ConversationID) {
				out.TasksRemoved++
				break
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return out, fmt.Errorf("cancel %s: removing its tasks: %w", batch, err)
	}
	return out, nil
}

// removeTask deletes id's task from queue when it is this batch's (a task
// of another batch that holds the same id is that batch's work), and
// reports whether it did. A running task cannot be deleted; its worker
// reads the batch's state before it calls.
func (c *Client) removeTask(queue, batch, id string) bool {
	info, err := c.inspector.GetTaskInfo(queue, tasks.TaskID(id))
	if err != nil {
		return false
	}
	if p, err := tasks.ParsePayload(info.Payload); err != nil || p.Batch != batch {
		return false
	}
	return c.inspector.DeleteTask(queue, tasks.TaskID(id)) == nil
}

// Pause holds batch's tasks: workers hand them back to their queue,
// without calling the API and without using up a retry, until [Client.Resume].
// Its due time still counts.
func (c *Client) Pause(ctx context.Context, batch, note string) error {
	if err := checkControl(batch, note); err != nil {
		return err
	}
	return c.ledger.Pause(ctx, batch, note, c.now())
}

// Resume lets a paused batch's tasks run again (within
// half a minute: a held task asks again at that pace).
func (c *Client) Resume(ctx context.Context, batch, note string) error {
	if err := checkControl(batch, note); err != nil {
		return err
	}
	return c.ledger.Resume(ctx, batch, note, c.now())
}

// Extend moves batch's due time to due: later than the current due time
// and now, at most ledger.MaxExtension (60 days: GDPR's two more months)
// past the original one. note, the reason the requester is given, is kept
// with the old and new due times in the batch's history. It returns the
// due time it replaced.
func (c *Client) Extend(ctx context.Context, batch string, due time.Time, note string) (old time.Time, err error) {
	if err := checkControl(batch, note); err != nil {
		return time.Time{}, err
	}
	return c.ledger.Extend(ctx, batch, due, note, c.now())
}

// checkControl checks a control action's batch name and note.
func checkControl(batch, note string) error {
	if err := ValidateBatch(batch); err != nil {
		return err
	}
	if err := CheckNote(note); err != nil {
		return fmt.Errorf("note: %w", err)
	}
	return nil
}
