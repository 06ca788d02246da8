package maintenance

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// DefaultJanitorInterval is how often a worker repairs what a crash or a
// race can leave behind.
const DefaultJanitorInterval = 30 * time.Second

// DefaultStallAfter is how long an open batch may go without progress
// before the janitor looks for pending ids that have no task.
const DefaultStallAfter = 15 * time.Minute

// JanitorConfig configures a [Janitor].
type JanitorConfig struct {
	// Redis holds the ledger and the queues: the server Ledger uses.
	Redis redis.UniversalClient
	// Ledger is the ledger the janitor repairs.
	Ledger *ledger.Ledger
	// Interval is how often the caller sweeps (default
	// [DefaultJanitorInterval]); a sweep holds the fleet's janitor lock for
	// 90% of it, so that one worker of the fleet sweeps per interval.
	Interval time.Duration
	// StallAfter is how long an open batch may go without progress before
	// its pending ids are checked for a task (default [DefaultStallAfter]).
	StallAfter time.Duration
	// Logger receives what the janitor repaired and what it could not
	// read (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SessionKey, when set, is the key of the hash that replaces the
	// session names of complete batches (ledger.SessionHash): each sweep
	// erases those names (ledger.Ledger.ScrubSessions). Workers scrub the
	// batches they complete; the sweep is the backstop for those a
	// producer's seal completed, which holds no key.
	SessionKey []byte
}

// Janitor queues what a worker was meant to queue but may not have: the
// callbacks of completed batches (a worker can die between completing a
// batch and queueing its callback), new tasks for ids that were linked to
// a task that finished just before the link was made, and tasks for the
// pending ids of stalled batches; and it erases the session names of
// complete batches (JanitorConfig.SessionKey). One worker of the fleet sweeps at a
// time. One goroutine calls Sweep, every Interval; QueueCallbacks is safe
// to call from any.
type Janitor struct {
	cfg       JanitorConfig
	store     *Store
	client    *asynq.Client
	wire      *asynqwire.Writer
	inspector *asynq.Inspector
	// cursors remembers, per stalled batch, the next bucket to read.
	cursors map[string]int
}

// NewJanitor returns a janitor. Its asynq clients share cfg.Redis: there
// is nothing to close.
func NewJanitor(cfg JanitorConfig) *Janitor {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultJanitorInterval
	}
	if cfg.StallAfter <= 0 {
		cfg.StallAfter = DefaultStallAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Janitor{
		cfg:       cfg,
		store:     NewStore(cfg.Redis, cfg.Ledger.Prefix()),
		client:    asynq.NewClientFromRedisClient(cfg.Redis),
		wire:      asynqwire.NewWriter(cfg.Redis),
		inspector: asynq.NewInspectorFromRedisClient(cfg.Redis),
		cursors:   map[string]int{},
	}
}

// stalledBucketsPerSweep bounds the work one sweep does on a stalled
// batch: a batch of 4096 buckets is read over 16 sweeps.
const stalledBucketsPerSweep = 256

// Sweep repairs once, unless another worker of the fleet swept within the
// last interval (it holds the janitor's lock).
func (j *Janitor) Sweep(ctx context.Context) {
	j.scrubSessions(ctx)
	if ok, err := j.store.Lock(ctx, "janitor", j.cfg.Interval*9/10); err != nil || !ok {
		return
	}
	j.QueueCallbacks(ctx)
	j.QueueVerifications(ctx)
	names, err := j.cfg.Ledger.OpenBatches(ctx)
	if err != nil {
		j.cfg.Logger.Warn("janitor: reading open batches", "error", err)
	} else {
		j.completeIdleBatches(ctx, names)
	}
	j.requeueOrphans(ctx)
	if err == nil {
		j.requeueStalled(ctx, names)
		j.requeueLostVerifications(ctx, names)
	}
}

// requeueLostVerifications queues again the verification round a stalled
// data subject's batch waits for when its task is gone: archived (its
// retries spent on a Redis that kept failing, or taken by a worker that
// did not know the task type) or never written. Without it the batch would
// never complete, and would keep the session name.
func (j *Janitor) requeueLostVerifications(ctx context.Context, names []string) {
	now := j.cfg.Now()
	for _, name := range names {
		b, ok, err := j.cfg.Ledger.Batch(ctx, name)
		if err != nil || !ok || now.Sub(b.ProgressAt()) < j.cfg.StallAfter {
			continue
		}
		round, waiting := b.AwaitedRound()
		if !waiting || len(b.Queues) == 0 {
			continue
		}
		queue, id := b.Queues[0], tasks.VerifyTaskID(name, round)
		info, err := j.inspector.GetTaskInfo(queue, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		case err != nil || info.State != asynq.TaskStateArchived:
			continue // live, or done: its handler ends the round or the next one is asked for
		default:
			if err := j.inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				continue
			}
		}
		task, err := tasks.NewVerifyTask(name, round, queue)
		if err != nil {
			continue
		}
		if _, err := j.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			j.cfg.Logger.Warn("janitor: queueing a lost verification", "batch", name, "round", round, "error", err)
			continue
		}
		j.cfg.Logger.Warn("janitor: queued again the verification round of a stalled batch whose task was gone",
			"batch", name, "round", round)
	}
}

// scrubSessions erases the session names of the batches that completed,
// when the janitor has the key. It has a lock of its own, which only
// workers with the key take: in a fleet where some workers have no key
// (no OAuth app profile), the janitor's lock would otherwise often go to
// one that cannot scrub.
func (j *Janitor) scrubSessions(ctx context.Context) {
	if len(j.cfg.SessionKey) == 0 {
		return
	}
	if ok, err := j.store.Lock(ctx, "sessions", j.cfg.Interval*9/10); err != nil || !ok {
		return
	}
	n, err := j.cfg.Ledger.ScrubSessions(ctx, j.cfg.SessionKey)
	if err != nil {
		j.cfg.Logger.Warn("janitor: erasing the session names of complete batches", "error", err)
	}
	if n > 0 {
		j.cfg.Logger.Info("janitor: erased the session names of complete batches", "batches", n)
	}
}

// requeueStalled gives a new task to the pending ids of stalled batches
// (no progress for StallAfter) that no live task will finish: their enqueue
// died between adding them to the batch and queueing their tasks, and
// nobody ran it again.
func (j *Janitor) requeueStalled(ctx context.Context, names []string) {
	for name := range j.cursors { // batches no longer open need no cursor
		if !slices.Contains(names, name) {
			delete(j.cursors, name)
		}
	}
	now := j.cfg.Now()
	for _, name := range names {
		if tasks.ValidateBatch(name) != nil {
			continue // named before the rule: the worker refuses its tasks (docs/commands.md: enqueue it again)
		}
		b, ok, err := j.cfg.Ledger.Batch(ctx, name)
		// A paused batch makes no progress on purpose: its tasks are held.
		if err != nil || !ok || now.Sub(b.ProgressAt()) < j.cfg.StallAfter || b.Control == ledger.ControlPaused {
			delete(j.cursors, name)
			continue
		}
		page, err := j.store.PendingWithoutTask(ctx, b, j.cursors[name], stalledBucketsPerSweep, tasks.TaskID(""), now)
		if err != nil {
			j.cfg.Logger.Warn("janitor: reading a stalled batch", "batch", name, "error", err)
			continue
		}
		j.cursors[name] = page.Next
		if len(page.IDs) > 0 && !j.mayQueueFor(b, len(page.IDs)) {
			continue
		}
		for _, id := range page.IDs {
			if err := j.requeue(ctx, Orphan{ConversationID: id, Batch: name, Queue: page.Queue}, b); err != nil {
				j.cfg.Logger.Warn("janitor: queueing a task for a stalled id", "conversation_id", id, "batch", name, "error", err)
			}
		}
		if len(page.IDs) > 0 {
			j.cfg.Logger.Warn("janitor: queued tasks for pending ids that had none", "batch", name, "ids", len(page.IDs))
		}
	}
}

// completeIdleBatches completes open batches whose ids are all done but
// whose producer stopped without sealing them.
func (j *Janitor) completeIdleBatches(ctx context.Context, names []string) {
	for _, name := range names {
		if done, err := j.cfg.Ledger.CompleteIfDone(ctx, name, j.cfg.Now()); err == nil && done {
			j.cfg.Logger.Info("batch complete", "batch", name)
		}
	}
	j.QueueCallbacks(ctx)
}

// requeueOrphans queues a new task for each linked id whose task is no
// longer live.
func (j *Janitor) requeueOrphans(ctx context.Context) {
	orphans, err := j.store.Orphans(ctx, tasks.TaskID)
	if err != nil {
		j.cfg.Logger.Warn("janitor: reading links", "error", err)
	}
	for _, o := range orphans {
		b, ok, err := j.cfg.Ledger.Batch(ctx, o.Batch)
		switch {
		case err != nil:
			j.cfg.Logger.Warn("janitor: reading the batch of a linked id", "conversation_id", o.ConversationID, "batch", o.Batch, "error", err)
			continue
		case !ok:
			continue // gone since: no record to make
		case !j.mayQueueFor(b, 1):
			continue
		}
		if err := j.requeue(ctx, o, b); err != nil {
			j.cfg.Logger.Warn("janitor: queueing a task for a linked id", "conversation_id", o.ConversationID, "batch", o.Batch, "error", err)
		}
	}
}

// mayQueueFor reports whether new tasks may be queued for ids of batch b,
// and warns when not: a batch whose session name was erased has no
// identity to give them (a task acting as another would find nothing and
// record a deletion that did not happen). ids is how many wait.
func (j *Janitor) mayQueueFor(b ledger.Batch, ids int) bool {
	if _, _, err := b.TaskIdentity(); err != nil {
		// The error names the batch, never the session.
		j.cfg.Logger.Warn("janitor: pending ids get no new task: their batch's session name was erased; "+
			"enqueue them in a new batch", "batch", b.Name, "profile", b.Profile, "ids", ids, "error", err)
		return false
	}
	return true
}

// requeue queues a new task for o, acting as its batch b's identity
// (profile and session, held while the batch has ids pending). It writes
// through asynqwire, whose conflict check spans every queue in the same
// step as the write: a task of the id that appeared in another queue since
// the ledger looked takes a link instead, so the id still gets one call.
func (j *Janitor) requeue(ctx context.Context, o Orphan, b ledger.Batch) error {
	if tasks.ValidateBatch(o.Batch) != nil {
		return nil // a batch named before the rule: its tasks are refused, so queue none
	}
	profile, session, err := b.TaskIdentity()
	if err != nil {
		return err
	}
	payload, err := tasks.Payload{ConversationID: o.ConversationID, Batch: o.Batch}.WithIdentity(profile, session).Encode()
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
		state, err := j.cfg.Ledger.Link(ctx, o.Batch, o.ConversationID, o.Queue, task.ID)
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

// QueueVerifications queues a verification task for every data subject's
// batch whose deletions are all done (ledger.Ledger.PendingVerifications),
// in the batch's first queue. The task id is derived from the batch and
// the round, so queueing one twice is refused as a duplicate.
func (j *Janitor) QueueVerifications(ctx context.Context) {
	pending, err := j.cfg.Ledger.PendingVerifications(ctx)
	if err != nil {
		j.cfg.Logger.Warn("janitor: reading pending verifications", "error", err)
		return
	}
	for _, r := range pending {
		b, ok, err := j.cfg.Ledger.Batch(ctx, r.Batch)
		if err != nil {
			continue
		}
		if ok {
			queue := enqueue.DefaultQueue
			if len(b.Queues) > 0 {
				queue = b.Queues[0]
			}
			task, err := tasks.NewVerifyTask(r.Batch, r.Round, queue)
			if err != nil {
				j.cfg.Logger.Warn("janitor: a verification that cannot be queued", "batch", r.Batch, "round", r.Round, "error", err)
				continue
			}
			if _, err := j.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				j.cfg.Logger.Warn("queueing a verification", "batch", r.Batch, "error", err)
				continue
			}
		}
		_ = j.cfg.Ledger.VerificationQueued(ctx, r)
	}
}

// QueueCallbacks queues the callback of every completion that has none yet.
// The task id is derived from the completion and delivered tasks are
// retained for a week, so queueing one twice is refused as a duplicate.
func (j *Janitor) QueueCallbacks(ctx context.Context) {
	pending, err := j.store.PendingCallbacks(ctx)
	if err != nil {
		j.cfg.Logger.Warn("janitor: reading pending callbacks", "error", err)
		return
	}
	for _, c := range pending {
		b, ok, err := j.cfg.Ledger.Batch(ctx, c.Batch)
		if err != nil {
			continue
		}
		if ok && b.CallbackURL != "" {
			task, err := callback.NewTask(callback.Delivery{URL: b.CallbackURL, Summary: callback.SummaryOf(b, c.Completion)})
			if err != nil {
				continue
			}
			if _, err := j.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				j.cfg.Logger.Warn("queueing a callback", "batch", c.Batch, "error", err)
				continue
			}
		}
		_ = j.store.CallbackQueued(ctx, c)
	}
}
