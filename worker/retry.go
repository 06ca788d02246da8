package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/callback"
)

// Backoff is an exponential backoff: Base doubling per step up to Cap.
type Backoff struct {
	Base time.Duration
	Cap  time.Duration
}

// ceiling returns min(Cap, Base·2^n).
func (b Backoff) ceiling(n int) time.Duration {
	if n < 0 {
		n = 0
	}
	d := b.Base
	for range n {
		if d >= b.Cap/2 {
			return b.Cap
		}
		d *= 2
	}
	return min(d, b.Cap)
}

// FullJitter returns a random delay in [0, min(Cap, Base·2^n)): "full
// jitter", which spreads the retries of many failed tasks over the whole
// window instead of bunching them at its end.
func (b Backoff) FullJitter(n int) time.Duration {
	c := b.ceiling(n)
	if c <= 0 {
		return 0
	}
	return rand.N(c)
}

// Retry reasons, as the retries_total metric labels them.
const (
	reasonRateLimited = "rate_limited"
	reasonAuth        = "auth"
	reasonTransient   = "transient"
	reasonUnknown     = "unknown"
	reasonWaiting     = "waiting" // gave up waiting for the throttle or the auth gate
	// reasonProfileBusy: handed back at once, its profile's turn far off,
	// to free the slot for another profile's task.
	reasonProfileBusy = "profile_busy"
	reasonLedger      = "ledger" // the outcome could not be recorded
	// reasonBatchPaused: its batch is paused (ledger.Ledger.Pause); the
	// task is held, not failed.
	reasonBatchPaused = "batch_paused"
)

// retryError is what the handler returns for an attempt that must be tried
// again. Failure errors use up one of the task's retries; others (rate
// limits, auth pauses, shutdown) do not, so a task can wait out any number of
// them.
type retryError struct {
	reason  string
	failure bool
	delay   time.Duration // used when not a failure; failures use the policy
	cause   error
}

func (e *retryError) Error() string {
	if e.cause == nil {
		return "retry: " + e.reason
	}
	return fmt.Sprintf("retry (%s): %v", e.reason, e.cause)
}

func (e *retryError) Unwrap() error { return e.cause }

// retryLater returns a non-failure retry after delay.
func retryLater(reason string, delay time.Duration, cause error) error {
	return &retryError{reason: reason, delay: delay, cause: cause}
}

// retryFailed returns a failure retry, delayed by the retry policy.
func retryFailed(reason string, cause error) error {
	return &retryError{reason: reason, failure: true, cause: cause}
}

// giveUp returns the error that archives a task without retrying it.
func giveUp(cause error) error {
	return fmt.Errorf("%w: %w", asynq.SkipRetry, cause)
}

// isFailure tells asynq whether err uses up a retry: everything does except
// a non-failure retryError.
func isFailure(err error) bool {
	var r *retryError
	if errors.As(err, &r) {
		return r.failure
	}
	return true
}

// retryDelay returns asynq's RetryDelayFunc: a non-failure retry waits its
// own delay; a failed deletion waits full-jitter backoff on the number of
// failures so far; a failed callback delivery waits the callback backoff's
// step, without jitter, so a receiver that is down is retried for days.
func retryDelay(deletions, callbacks Backoff) asynq.RetryDelayFunc {
	return func(n int, err error, t *asynq.Task) time.Duration {
		var r *retryError
		switch {
		case errors.As(err, &r) && !r.failure:
			return r.delay
		case t != nil && t.Type() == callback.TaskType:
			return callbacks.ceiling(n)
		}
		return deletions.FullJitter(n)
	}
}
