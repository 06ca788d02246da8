package ledger

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batch control: an operator cancels a batch, pauses and resumes it, or
// extends its due time. Each action is one script that changes the batch's
// control state (the hash's "control" field: "paused", "cancelled" or
// none) and appends the action to the batch's history, so the two never
// disagree. The worker reads the state before each call ([Ledger.Control],
// through a [ControlWatch]), and each action announces its change.

// MaxExtension is how far past its original due time a batch's due time
// may be extended: GDPR (Art. 12(3)) allows two more months.
const MaxExtension = 60 * 24 * time.Hour

// cancelChunk is how many of a batch's buckets one cancel script reads: a
// batch of millions of ids is cancelled in steps, without holding Redis.
const cancelChunk = 64

// Errors of the control actions. Each is wrapped with the batch's name.
var (
	// ErrNoBatch: the ledger holds no batch of that name (never made, or
	// expired).
	ErrNoBatch = errors.New("no such batch")
	// ErrBatchComplete: the batch has no id pending; there is nothing to
	// control.
	ErrBatchComplete = errors.New("batch is complete")
	// ErrBatchCancelled: the batch was cancelled; it takes no other action.
	ErrBatchCancelled = errors.New("batch is cancelled")
	// ErrBatchState: a pause of a paused batch, a resume of one that is
	// not paused.
	ErrBatchState = errors.New("batch is not in that state")
	// ErrBadExtension: the new due time is not later than the current one
	// and now, or lies more than [MaxExtension] past the original one.
	ErrBadExtension = errors.New("bad extension")
)

// ControlState is a batch's control state, as [Ledger.Control] reads it.
type ControlState string

// The control states.
const (
	ControlRunning   ControlState = ""          // neither paused nor cancelled
	ControlPaused    ControlState = "paused"    // its tasks are held, not run
	ControlCancelled ControlState = "cancelled" // its pending ids ended cancelled
)

// Action is one control action in a batch's history ([Ledger.History]).
type Action struct {
	// Action is "cancel", "pause", "resume" or "extend".
	Action string    `json:"action"`
	At     time.Time `json:"at"`
	Note   string    `json:"note,omitempty"`
	// OldDue and Due are an extension's due times, before and after.
	OldDue time.Time `json:"old_due,omitzero"`
	Due    time.Time `json:"due,omitzero"`
}

//go:embed lua/control.lua
var controlSource string

var controlScript = script(controlSource)

//go:embed lua/cancel.lua
var cancelSource string

var cancelScript = script(cancelSource)

// CancelResult is what [Ledger.Cancel] did.
type CancelResult struct {
	// Cancelled counts the ids it ended cancelled.
	Cancelled int
	// Completed is true when the batch is complete after the cancel (its
	// callback, if any, is queued): the cancel completed it, or a task's
	// outcome recorded between two of its steps did.
	Completed bool
}

// Cancel cancels batch: its pending ids end [Cancelled] (ids that have an
// outcome keep it), the worker makes no call for them any more, and the
// batch completes, with its callback. It does not remove the batch's
// asynq tasks: enqueue.Client.Cancel does both. Cancelling a cancelled
// batch again finishes a cancel that was cut short.
func (l *Ledger) Cancel(ctx context.Context, batch, note string, now time.Time) (CancelResult, error) {
	if _, err := l.control(ctx, batch, "cancel", note, now, time.Time{}); err != nil && !errors.Is(err, ErrBatchCancelled) {
		return CancelResult{}, err
	}
	b, ok, err := l.Batch(ctx, batch)
	if err != nil {
		return CancelResult{}, err
	}
	if !ok {
		return CancelResult{}, fmt.Errorf("ledger: cancel %s: %w", batch, ErrNoBatch)
	}
	var r CancelResult
	n := b.buckets()
	for from := 0; from < n; from += cancelChunk {
		to := min(from+cancelChunk, n)
		res, err := l.run(ctx, cancelScript, batch, now.UnixMilli(), from, to, boolArg(to == n)).Int64Slice()
		if err != nil {
			return r, fmt.Errorf("ledger: cancel %s: %w", batch, err)
		}
		r.Cancelled += int(res[0])
		r.Completed = res[1] == 1
	}
	if !r.Completed {
		after, ok, err := l.Batch(ctx, batch)
		if err != nil {
			return r, err
		}
		r.Completed = ok && after.Completions > b.Completions
	}
	return r, nil
}

// Pause holds batch's tasks: the worker hands them back to their queue
// without calling the API until [Ledger.Resume]. The batch stays open and
// its due time still counts.
func (l *Ledger) Pause(ctx context.Context, batch, note string, now time.Time) error {
	_, err := l.control(ctx, batch, "pause", note, now, time.Time{})
	return err
}

// Resume lets a paused batch's tasks run again.
func (l *Ledger) Resume(ctx context.Context, batch, note string, now time.Time) error {
	_, err := l.control(ctx, batch, "resume", note, now, time.Time{})
	return err
}

// Extend moves batch's due time to due, which must be later than both the
// current due time and now, and at most [MaxExtension] past the batch's
// original due time. It returns the due time it replaced. note (the
// reason the requester is told) is kept in the history.
func (l *Ledger) Extend(ctx context.Context, batch string, due time.Time, note string, now time.Time) (old time.Time, err error) {
	return l.control(ctx, batch, "extend", note, now, due)
}

// control runs control.lua and turns its errors into the package's.
func (l *Ledger) control(ctx context.Context, batch, action, note string, now, due time.Time) (time.Time, error) {
	old, err := l.run(ctx, controlScript, batch, action, now.UnixMilli(), note, due.UnixMilli(),
		MaxExtension.Milliseconds(), ttlSeconds(l.ttl)).Int64()
	if err == nil {
		if action != "extend" {
			l.announceControl(ctx, batch)
		}
		return time.UnixMilli(old).UTC(), nil
	}
	msg := strings.TrimPrefix(err.Error(), "ERR ") // Redis 7 prefixes a script's error_reply
	switch {
	case msg == "NOBATCH":
		err = ErrNoBatch
	case msg == "LOST":
		err = &LostError{Batch: batch}
	case msg == "COMPLETE":
		err = fmt.Errorf("%w: no id is pending", ErrBatchComplete)
	case msg == "CANCELLED":
		err = ErrBatchCancelled
	case msg == "PAUSED":
		err = fmt.Errorf("%w: it is paused already", ErrBatchState)
	case msg == "NOTPAUSED":
		err = fmt.Errorf("%w: it is not paused", ErrBatchState)
	case msg == "EARLIER":
		err = fmt.Errorf("%w: the new due time must be later than the current one and than now", ErrBadExtension)
	case strings.HasPrefix(msg, "TOOLATE "):
		limit, _ := strconv.ParseInt(strings.TrimPrefix(msg, "TOOLATE "), 10, 64)
		err = fmt.Errorf("%w: GDPR allows an extension of two more months at most: the latest due time is %s (60 days after the original)",
			ErrBadExtension, time.UnixMilli(limit).UTC().Format(time.RFC3339))
	}
	return time.Time{}, fmt.Errorf("ledger: %s %s: %w", action, batch, err)
}

// refuseCancelled refuses new ids for a cancelled batch (its tasks would
// make no call and its ids stay pending): it ends the adder open.lua
// registered, and returns an [ErrBatchConflict] wrapping
// [ErrBatchCancelled].
func (l *Ledger) refuseCancelled(ctx context.Context, a *Adder) error {
	state, err := l.Control(ctx, a.batch)
	if err == nil && state != ControlCancelled {
		return nil
	}
	_, _ = a.Seal(ctx)
	if err != nil {
		return fmt.Errorf("ledger: open batch %s: %w", a.batch, err)
	}
	return fmt.Errorf("%w: %w: batch %s was cancelled; put the ids in a new batch", ErrBatchConflict, ErrBatchCancelled, a.batch)
}

// Control returns batch's control state, one read: the worker calls it
// before every API call. A batch that does not exist is [ControlRunning] (the
// record of the attempt deals with it).
func (l *Ledger) Control(ctx context.Context, batch string) (ControlState, error) {
	s, err := l.rdb.HGet(ctx, l.ks.Batch(batch), "control").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return ControlRunning, fmt.Errorf("ledger: control of %s: %w", batch, err)
	}
	return ControlState(s), nil
}

// History returns the control actions taken on batch, oldest first.
func (l *Ledger) History(ctx context.Context, batch string) ([]Action, error) {
	raw, err := l.rdb.LRange(ctx, l.ks.BatchHistory(batch), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: history of %s: %w", batch, err)
	}
	out := make([]Action, 0, len(raw))
	for _, r := range raw {
		// control.lua's JSON: times in ms. (cjson writes numbers with
		// 14 digits: exact for ms times until the year 5138.)
		var wire struct {
			Action string  `json:"action"`
			At     float64 `json:"at"`
			Note   string  `json:"note"`
			OldDue float64 `json:"old_due"`
			Due    float64 `json:"due"`
		}
		if err := json.Unmarshal([]byte(r), &wire); err != nil {
			return nil, fmt.Errorf("ledger: history of %s: %w", batch, err)
		}
		a := Action{Action: wire.Action, At: time.UnixMilli(int64(wire.At)).UTC(), Note: wire.Note}
		if wire.Due != 0 {
			a.OldDue, a.Due = time.UnixMilli(int64(wire.OldDue)).UTC(), time.UnixMilli(int64(wire.Due)).UTC()
		}
		out = append(out, a)
	}
	return out, nil
}
