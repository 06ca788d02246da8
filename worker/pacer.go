package worker

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ratelimit"
)

// pacer decides when a call may start and learns from its answer.
type pacer interface {
	// ready reports whether a call may start now without waiting: the
	// handler's fast path.
	ready() bool
	// wait blocks until a call may start. done must then be called with
	// the call's answer; it returns how long a rate-limited task should
	// wait before its retry.
	wait(ctx context.Context) (done func(coze.Result) time.Duration, err error)
}

// localPacer is the pacer of a worker without a fleet budget: its own
// throttle, which pauses this process after a rate-limited answer.
type localPacer struct{ throttle *throttle }

func (p localPacer) ready() bool { return !p.throttle.paused() }

func (p localPacer) wait(ctx context.Context) (func(coze.Result) time.Duration, error) {
	if err := p.throttle.wait(ctx); err != nil {
		return nil, err
	}
	return p.throttle.observe, nil
}

// fleetPacer draws on the fleet's budget in Redis: every call takes a send
// slot (and, with a cap, an in-flight slot), and rate-limited answers cut
// the whole fleet's rate.
type fleetPacer struct {
	limiter *ratelimit.Limiter
	// waited observes how long each call waited for its slots.
	waited prometheus.Observer
}

func (p fleetPacer) ready() bool { return false }

func (p fleetPacer) wait(ctx context.Context) (func(coze.Result) time.Duration, error) {
	waited, release, err := p.limiter.Acquire(ctx)
	p.waited.Observe(waited.Seconds())
	if err != nil {
		return nil, err
	}
	return func(res coze.Result) time.Duration {
		release()
		// Detached: the answer must reach the budget even when the task's
		// context is done.
		_ = p.limiter.Observe(context.WithoutCancel(ctx), res)
		if res.Class != coze.ClassRateLimited {
			return 0
		}
		// The fleet's rate was cut; this task goes back to the queue and
		// takes a new slot when it returns.
		return max(res.RetryAfter, time.Second)
	}, nil
}
