package worker

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// throttle slows every call of the process down after a rate-limited answer:
// no call starts before the pause ends. One 429 is the API speaking about the
// account, not about one task, so all tasks wait, not only the one that got
// it. The pause is Retry-After when the server gives one, else an
// exponential backoff on the number of rate-limited answers in a row.
type throttle struct {
	backoff Backoff
	now     func() time.Time

	mu      sync.Mutex
	until   time.Time
	spread  time.Duration // waiters are released over this window
	strikes int
}

func newThrottle(b Backoff, now func() time.Time) *throttle {
	return &throttle{backoff: b, now: now}
}

// wait blocks until calls may start, or ctx ends.
func (t *throttle) wait(ctx context.Context) error {
	t.mu.Lock()
	until, spread := t.until, t.spread
	t.mu.Unlock()
	d := until.Sub(t.now())
	if d <= 0 {
		return nil
	}
	// Release the waiters over a window rather than all at once, so the
	// first second after a pause is not itself a burst that earns a 429.
	if spread > 0 {
		d += rand.N(spread)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe updates the throttle after an answer and, for a rate-limited one,
// returns the pause it imposed.
func (t *throttle) observe(res coze.Result) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch res.Class {
	case coze.ClassRateLimited:
		t.strikes++
		pause := res.RetryAfter
		if pause <= 0 {
			c := t.backoff.ceiling(t.strikes - 1)
			pause = c/2 + rand.N(c/2+1) // "equal jitter": never much shorter than the step
		}
		if until := t.now().Add(pause); until.After(t.until) {
			t.until = until
			t.spread = min(pause/2, time.Second)
		}
		return pause
	case coze.ClassDeleted, coze.ClassNotFound:
		t.strikes = 0
	}
	return 0
}

// paused reports whether calls are held back now.
func (t *throttle) paused() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now().Before(t.until)
}
