package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// API is the one call the worker makes as an identity; *coze.Client
// implements it.
type API interface {
	DeleteConversation(ctx context.Context, conversationID string) (coze.Result, error)
}

// waitMargin is how long before a task's deadline the handler stops waiting
// for its turn and hands the task back: past the deadline asynq would count
// the task as failed. It leaves room for the call (whose own timeout is
// shorter) and for the ledger write. asynq's default deadline is 30 minutes
// after the task starts.
const waitMargin = time.Minute

// ledgerWriteTimeout bounds the retries of one ledger write, so that a
// Redis outage shorter than this loses no outcome: the task's lease may
// expire meanwhile and its rerun find the conversation gone, but this write
// lands first or the rerun's not_found is recorded as what it is.
const ledgerWriteTimeout = 10 * time.Minute

// Handler turns a conversation:delete task into an API call and a recorded
// outcome. It implements asynq.Handler.
type Handler struct {
	ledger *ledger.Ledger
	// controls reads the batches' control states through a cache that
	// control actions invalidate (set by Server.Start); nil: each task
	// reads its batch's state from Redis.
	controls *ledger.ControlWatch
	writer   *ledger.Writer
	metrics  *Metrics
	// identities finds each task's lane (its profile's pacer and auth
	// gate) and API, and holds back tasks whose identity the worker does
	// not have.
	identities *identityGate
	log        *slog.Logger
	now        func() time.Time
	// stopped ends when the worker stops, so that waiting tasks let go.
	stopped context.Context
	// onComplete is called with the batches an attempt completed.
	onComplete func(ctx context.Context, batches []string)
	// pausedRetry is how long a paused batch's task waits before it asks
	// again.
	pausedRetry time.Duration
}

// ProcessTask handles one task. What it returns tells asynq what to do next:
//
//   - nil: done (deleted, or not found);
//   - a SkipRetry error: archive (permanent error, retries used up, bad payload);
//   - a failure retry: retry after the backoff, using up a retry (transient,
//     unknown code);
//   - a non-failure retry: retry after a given delay without using up a retry
//     (rate limited, auth pause, shutdown while waiting).
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	h.metrics.TasksInFlight.Inc()
	defer h.metrics.TasksInFlight.Dec()

	queue, _ := asynq.GetQueueName(ctx)
	p, err := tasks.ParsePayload(t.Payload())
	if err != nil {
		return h.refuse(ctx, queue, p, err)
	}
	if id, ok := asynq.GetTaskID(ctx); ok && id != tasks.TaskID(p.ConversationID) {
		// Without the contract's task id, asynq would let a second task
		// for the id wait beside this one, and the ledger could not find
		// the task a record belongs to.
		return h.refuse(ctx, queue, p, fmt.Errorf("task id %q is not %q: producers must set the task id to del:<conversation id>",
			id, tasks.TaskID(p.ConversationID)))
	}
	l, api, err := h.identities.resolve(p)
	if err != nil {
		h.metrics.Retries.WithLabelValues(reasonAuth).Inc()
		return retryLater(reasonAuth, unknownIdentityRetry, err)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)

	release, handBack := l.admit(h.now())
	if release == nil {
		// Its profile has tasks enough waiting here: free the slot for
		// another profile's task.
		h.metrics.Retries.WithLabelValues(reasonProfileBusy).Inc()
		return retryLater(reasonProfileBusy, handBack, fmt.Errorf("profile %s has tasks enough waiting for its turn", l.profile))
	}
	probe, done, err := h.waitTurn(ctx, l)
	release()
	if errors.Is(err, errProfilePaused) {
		h.metrics.Retries.WithLabelValues(reasonAuth).Inc()
		return retryLater(reasonAuth, l.afterProbe(), fmt.Errorf("profile %s: %w", l.profile, err))
	}
	if err != nil {
		h.metrics.Retries.WithLabelValues(reasonWaiting).Inc()
		return retryLater(reasonWaiting, 0, err)
	}
	if skip, err := h.controlled(ctx, p, l, probe, done); skip {
		return err
	}
	res, callErr := h.call(ctx, l, api, p.ConversationID, probe)
	pause := done(res)
	h.metrics.observeCall(l.profile, res)
	if pause > 0 {
		h.metrics.RateLimitPauses.WithLabelValues(l.profile).Inc()
	}
	if res.Class == coze.ClassRateLimited {
		l.lastPushback.Store(h.now().UnixNano())
	}

	outcome, next := h.decide(l, res, callErr, pause, retried, tasks.RetryBudget(maxRetry))
	recorded, err := h.record(ctx, p, queue, res, outcome)
	h.logAttempt(p, queue, res, outcome, recorded, retried, next, err)
	if err != nil {
		h.metrics.LedgerErrors.Inc()
		h.metrics.Retries.WithLabelValues(reasonLedger).Inc()
		return retryLater(reasonLedger, time.Second, err)
	}
	if recorded.Lost {
		// Redis lost the batch and this task with it: there is nothing to
		// retry into, and the batch's input must be enqueued again.
		h.metrics.LostOutcomes.Inc()
		return nil
	}
	if recorded.Transitions > 0 {
		h.metrics.Deletions.WithLabelValues(string(outcome)).Add(float64(recorded.Transitions))
	}
	if len(recorded.Completed) > 0 && h.onComplete != nil {
		h.onComplete(ctx, recorded.Completed)
	}
	var r *retryError
	if errors.As(next, &r) {
		h.metrics.Retries.WithLabelValues(r.reason).Inc()
	}
	return next
}

// defaultPausedRetry is how long a paused batch's task waits before it
// asks again: a resume takes effect within it (Config.PausedRetry).
const defaultPausedRetry = 30 * time.Second

// controlled reads the control state of p's batch right before the call,
// after the wait for a turn (which may be long): one HGET per task, next
// to the HTTP call and the record. skip is true when the task must not
// call: its batch is paused (err hands the task back, not failed) or
// cancelled (err is nil: its id ended cancelled in the ledger, and the
// task is done). The turn it waited for is given back.
func (h *Handler) controlled(ctx context.Context, p tasks.Payload, l *lane, probe bool,
	done func(coze.Result) time.Duration) (skip bool, err error) {
	var state ledger.ControlState
	if h.controls != nil {
		state, err = h.controls.Control(ctx, p.Batch)
	} else {
		state, err = h.ledger.Control(ctx, p.Batch)
	}
	if err == nil && state == ledger.ControlRunning {
		return false, nil
	}
	done(coze.Result{Class: coze.ClassTransient}) // not used: hand the slot back
	if probe {
		l.auth.report(true, coze.Result{Class: coze.ClassTransient}) // and the probe turn
	}
	switch {
	case err != nil:
		h.metrics.LedgerErrors.Inc()
		h.metrics.Retries.WithLabelValues(reasonLedger).Inc()
		return true, retryLater(reasonLedger, time.Second, err)
	case state == ledger.ControlPaused:
		h.metrics.Retries.WithLabelValues(reasonBatchPaused).Inc()
		return true, retryLater(reasonBatchPaused, h.pausedRetry, fmt.Errorf("batch %s is paused", p.Batch))
	}
	h.log.Info("task of a cancelled batch: no call", "conversation_id", p.ConversationID, "batch", p.Batch)
	return true, nil
}

// refuse archives a task whose payload is not a deletion this worker can
// make, never calling the API, and keeps a failure record that says why.
func (h *Handler) refuse(ctx context.Context, queue string, p tasks.Payload, reason error) error {
	id, _ := asynq.GetTaskID(ctx)
	h.metrics.InvalidTasks.Inc()
	h.log.Error("task refused without a call", "task_id", id, "queue", queue, "error", reason)
	batch := p.Batch
	if tasks.ValidateBatch(batch) != nil {
		batch = ""
	}
	rec := ledger.InvalidTask{TaskID: id, Queue: queue, Batch: batch, Reason: reason.Error(), At: h.now()}
	if err := h.ledger.RecordInvalid(context.WithoutCancel(ctx), rec); err != nil {
		h.metrics.LedgerErrors.Inc()
		return retryLater(reasonLedger, time.Second, err)
	}
	return giveUp(reason)
}

// call makes the API call and reports its answer to the auth gate, even if
// the call panics, so that a probe turn is never left taken.
func (h *Handler) call(ctx context.Context, l *lane, api API, id string, probe bool) (res coze.Result, err error) {
	reported := false
	defer func() {
		if !reported {
			l.auth.report(probe, coze.Result{Class: coze.ClassTransient})
		}
	}()
	res, err = api.DeleteConversation(ctx, id)
	l.auth.report(probe, res)
	reported = true
	return res, err
}

// waitTurn blocks while the lane's auth gate or pacer hold calls back,
// until shortly before the task's deadline or until the worker stops. done
// must be called with the answer of the call it allows.
func (h *Handler) waitTurn(ctx context.Context, l *lane) (probe bool, done func(coze.Result) time.Duration, err error) {
	if l.pacer.ready() && !l.auth.isClosed() {
		// The common case without a fleet budget: no context to build.
		done, err = l.pacer.wait(ctx)
		return false, done, err
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if deadline, ok := ctx.Deadline(); ok {
		var cancelDeadline context.CancelFunc
		waitCtx, cancelDeadline = context.WithDeadline(waitCtx, deadline.Add(-waitMargin))
		defer cancelDeadline()
	}
	if h.stopped != nil {
		stop := context.AfterFunc(h.stopped, cancel)
		defer stop()
	}
	for {
		probe, err := h.acquireAuth(waitCtx, l)
		if err != nil {
			return false, nil, err
		}
		done, err := l.pacer.wait(waitCtx)
		if err != nil {
			if probe {
				l.auth.report(true, coze.Result{Class: coze.ClassTransient}) // give the probe turn back
			}
			return false, nil, err
		}
		// Calls may have been paused for auth while we waited for a slot.
		if probe || !l.auth.isClosed() {
			return probe, done, nil
		}
		done(coze.Result{Class: coze.ClassTransient}) // not used: hand the slot back
	}
}

// errProfilePaused is waitTurn's error for a task of a paused profile
// that is not its probe, on a worker serving several profiles.
var errProfilePaused = errors.New("its profile's calls are paused: the API rejects its token")

// acquireAuth waits for the lane's auth gate. On a worker serving several
// profiles a task does not wait for a paused profile's probe: it goes
// back to the queue (errProfilePaused), so that its slot serves the other
// profiles, which a pause of minutes would otherwise starve.
func (h *Handler) acquireAuth(ctx context.Context, l *lane) (probe bool, err error) {
	if !l.shared {
		return l.auth.acquire(ctx)
	}
	probe, ok := l.auth.tryAcquire()
	if !ok {
		return false, errProfilePaused
	}
	return probe, nil
}

// decide maps an answer to the ledger outcome and to what asynq should do.
func (h *Handler) decide(l *lane, res coze.Result, callErr error, pause time.Duration, retried, budget int) (ledger.Outcome, error) {
	switch res.Class {
	case coze.ClassDeleted:
		return ledger.Deleted, nil
	case coze.ClassNotFound:
		return ledger.NotFound, nil
	case coze.ClassRateLimited:
		return ledger.Retrying, retryLater(reasonRateLimited, pause, callErr)
	case coze.ClassAuth:
		return ledger.Retrying, retryLater(reasonAuth, l.auth.untilProbe(), callErr)
	case coze.ClassPermanent:
		return ledger.Failed, giveUp(callErr)
	}
	// Transient and unknown: retry until the budget is spent.
	if retried >= budget {
		return ledger.Failed, giveUp(fmt.Errorf("%d retries used up: %w", budget, callErr))
	}
	reason := reasonTransient
	if res.Class == coze.ClassUnknown {
		reason = reasonUnknown
	}
	return ledger.Retrying, retryFailed(reason, callErr)
}

// record writes the attempt to the ledger, retrying through a short Redis
// outage. It runs on a context detached from the task's, so that an outcome
// learnt from the API is not dropped because asynq gave up on the task.
func (h *Handler) record(ctx context.Context, p tasks.Payload, queue string, res coze.Result, outcome ledger.Outcome) (ledger.Recorded, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ledgerWriteTimeout)
	defer cancel()
	a := ledger.Attempt{
		ConversationID: p.ConversationID,
		Batch:          p.Batch,
		Queue:          queue,
		Outcome:        outcome,
		Code:           res.Code,
		HasCode:        res.HasCode,
		Msg:            attemptMsg(res),
		HTTPStatus:     res.HTTPStatus,
		LogID:          res.LogID,
		At:             h.now(),
	}
	backoff := Backoff{Base: 50 * time.Millisecond, Cap: 2 * time.Second}
	for n := 0; ; n++ {
		rec, err := h.writer.Record(ctx, a)
		if err == nil {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return rec, err
		case <-time.After(backoff.ceiling(n)):
		}
	}
}

// attemptMsg is the msg worth keeping: the API's own, else what went wrong
// on the way (a network error, an HTML page).
func attemptMsg(res coze.Result) string {
	if res.Msg != "" || res.Err == nil {
		return res.Msg
	}
	return res.Err.Error()
}

func (h *Handler) logAttempt(p tasks.Payload, queue string, res coze.Result, outcome ledger.Outcome,
	rec ledger.Recorded, retried int, next, recordErr error) {
	level := slog.LevelInfo
	switch {
	case recordErr != nil || outcome == ledger.Failed || rec.Lost:
		level = slog.LevelError
	case outcome == ledger.Retrying:
		level = slog.LevelWarn
	case outcome == ledger.Deleted || outcome == ledger.NotFound:
		// The ledger keeps the same facts (outcome, code, log id,
		// attempts, time) for the proof: a line per success would be
		// millions of lines and a share of the worker's CPU.
		level = slog.LevelDebug
	}
	if !h.log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("conversation_id", p.ConversationID),
		slog.String("batch", p.Batch),
		slog.String("queue", queue),
		slog.String("profile", p.ProfileName()),
		slog.Int("attempt", max(rec.Attempts, retried+1)),
		slog.String("class", string(res.Class)),
		slog.String("code", coze.CodeLabel(res.Code, res.HasCode)),
		slog.Int("http_status", res.HTTPStatus),
		slog.String("logid", res.LogID),
		slog.Duration("duration", res.Duration),
		slog.String("outcome", string(outcome)),
	}
	if res.HasCode && !coze.DocumentedCode(res.Code) {
		attrs = append(attrs, slog.Int64("raw_code", res.Code))
	}
	if msg := attemptMsg(res); msg != "" {
		attrs = append(attrs, slog.String("msg", msg))
	}
	var r *retryError
	if errors.As(next, &r) && !r.failure {
		attrs = append(attrs, slog.Duration("retry_in", r.delay))
	}
	if rec.Transitions == 0 && outcome.Terminal() && recordErr == nil && !rec.Lost {
		attrs = append(attrs, slog.Bool("duplicate_run", true))
	}
	if recordErr != nil {
		attrs = append(attrs, slog.String("ledger_error", recordErr.Error()))
	}
	msg := "attempt"
	if rec.Lost {
		msg = "attempt for a batch Redis lost: outcome kept in its lost record; enqueue the batch's input again"
	}
	h.log.LogAttrs(context.Background(), level, msg, attrs...)
}
