package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/callback"
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
	ledger *ledger.Ledger
	client *asynq.Client
	srv    *Server
}

// run repairs every interval until ctx ends.
func (j *janitor) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			j.sweep(ctx)
		}
	}
}

func (j *janitor) sweep(ctx context.Context) {
	j.queueCallbacks(ctx)
	orphans, err := j.ledger.Orphans(ctx, tasks.TaskID)
	if err != nil {
		j.srv.cfg.Logger.Warn("janitor: reading links", "error", err)
	}
	for _, o := range orphans {
		task, err := tasks.NewTask(tasks.Payload{ConversationID: o.ConversationID, Batch: o.Batch, EnqueuedAt: j.srv.cfg.Now().Unix()},
			asynq.Queue(o.Queue), asynq.MaxRetry(tasks.AsynqMaxRetry(tasks.DefaultMaxRetry)))
		if err != nil {
			continue
		}
		if _, err := j.client.EnqueueContext(ctx, task); errors.Is(err, asynq.ErrTaskIDConflict) {
			_, err = j.ledger.Link(ctx, o.Batch, o.ConversationID, o.Queue, tasks.TaskID(o.ConversationID))
		} else if err != nil {
			j.srv.cfg.Logger.Warn("janitor: queueing a task for a linked id", "conversation_id", o.ConversationID, "batch", o.Batch, "error", err)
		}
	}
}

// queueCallbacks queues the callback of every completion that has none yet.
// The task id is derived from the completion, so queueing twice is harmless.
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
			task, err := callback.NewTask(callback.Delivery{URL: b.CallbackURL, Summary: callback.SummaryOf(b, c.N)})
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
