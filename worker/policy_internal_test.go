package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestBackoffCeiling(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 2 * time.Second, Cap: 10 * time.Minute}
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{-1, 2 * time.Second}, {0, 2 * time.Second}, {1, 4 * time.Second}, {8, 512 * time.Second}, {9, 10 * time.Minute}, {1000, 10 * time.Minute}} {
		if got := b.ceiling(tt.n); got != tt.want {
			t.Errorf("ceiling(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	for n := range 12 {
		for range 50 {
			if d := b.FullJitter(n); d < 0 || d >= b.ceiling(n) {
				t.Fatalf("FullJitter(%d) = %v outside [0, %v)", n, d, b.ceiling(n))
			}
		}
	}
}

func TestRetryClassification(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Second, Cap: time.Minute}
	cause := errors.New("x")
	tests := []struct {
		name      string
		err       error
		failure   bool
		exactWait time.Duration // -1: any delay within the backoff
	}{
		{"rate limited", retryLater(reasonRateLimited, 7*time.Second, cause), false, 7 * time.Second},
		{"auth", retryLater(reasonAuth, 0, cause), false, 0},
		{"transient", retryFailed(reasonTransient, cause), true, -1},
		{"skip retry", giveUp(cause), true, -1},
		{"plain error", cause, true, -1},
	}
	for _, tt := range tests {
		if got := isFailure(tt.err); got != tt.failure {
			t.Errorf("%s: isFailure = %v, want %v", tt.name, got, tt.failure)
		}
		d := retryDelay(b, Backoff{Base: time.Hour, Cap: time.Hour})(3, tt.err, nil)
		if tt.exactWait >= 0 && d != tt.exactWait {
			t.Errorf("%s: delay %v, want %v", tt.name, d, tt.exactWait)
		}
		if tt.exactWait < 0 && (d < 0 || d >= b.ceiling(3)) {
			t.Errorf("%s: delay %v outside the backoff", tt.name, d)
		}
	}
	if !errors.Is(giveUp(cause), asynq.SkipRetry) || !errors.Is(giveUp(cause), cause) {
		t.Error("giveUp must wrap both SkipRetry and its cause")
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	th := newThrottle(Backoff{Base: time.Second, Cap: 8 * time.Second}, clock.Now)
	if th.paused() {
		t.Fatal("paused at start")
	}
	if d := th.observe(coze.Result{Class: coze.ClassRateLimited, RetryAfter: 3 * time.Second}); d != 3*time.Second {
		t.Errorf("pause with Retry-After 3s = %v", d)
	}
	if !th.paused() {
		t.Error("not paused after a 429")
	}
	clock.Advance(3 * time.Second)
	if th.paused() {
		t.Error("still paused after Retry-After passed")
	}
	// Without Retry-After: equal jitter on a doubling step.
	for strike, step := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		d := th.observe(coze.Result{Class: coze.ClassRateLimited})
		if d < step/2 || d > step {
			t.Errorf("strike %d: pause %v, want within [%v, %v]", strike+2, d, step/2, step)
		}
	}
	th.observe(coze.Result{Class: coze.ClassDeleted})
	clock.Advance(time.Minute)
	if d := th.observe(coze.Result{Class: coze.ClassRateLimited}); d > time.Second {
		t.Errorf("after a success the backoff starts again; pause %v", d)
	}
	// Other classes neither pause nor reset.
	if d := th.observe(coze.Result{Class: coze.ClassTransient}); d != 0 {
		t.Errorf("transient paused for %v", d)
	}
}

func TestThrottleWaitHonoursContext(t *testing.T) {
	t.Parallel()
	th := newThrottle(Backoff{Base: time.Hour, Cap: time.Hour}, time.Now)
	th.observe(coze.Result{Class: coze.ClassRateLimited, RetryAfter: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := th.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait = %v, want the context's error", err)
	}
}

func TestAuthGate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	var changes []bool
	g := newAuthGate(Backoff{Base: 10 * time.Second, Cap: 40 * time.Second}, clock.Now, func(closed bool, _ coze.Result) {
		changes = append(changes, closed)
	})
	auth := coze.Result{Class: coze.ClassAuth, HTTPStatus: 200, HasCode: true, Code: 4100}
	ok := coze.Result{Class: coze.ClassDeleted, HTTPStatus: 200, HasCode: true}
	blocked := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := g.acquire(ctx)
		return err != nil
	}

	if probe, err := g.acquire(context.Background()); probe || err != nil {
		t.Fatalf("open gate: probe=%v err=%v", probe, err)
	}
	g.report(false, auth)
	if !g.isClosed() || g.untilProbe() != 10*time.Second {
		t.Fatalf("after 4100: closed=%v next probe in %v", g.isClosed(), g.untilProbe())
	}
	if !blocked() {
		t.Error("a call got through a closed gate before the probe was due")
	}
	// A call that was in flight before the gate closed says nothing.
	g.report(false, ok)
	if !g.isClosed() {
		t.Error("a non-probe answer opened the gate")
	}

	clock.Advance(10 * time.Second)
	probe, err := g.acquire(context.Background())
	if !probe || err != nil {
		t.Fatalf("due probe: probe=%v err=%v", probe, err)
	}
	if !blocked() {
		t.Error("a second call got through while the probe was out")
	}
	g.report(true, auth)
	if got := g.untilProbe(); got != 20*time.Second {
		t.Errorf("after a failed probe, next in %v, want 20s (doubled)", got)
	}

	clock.Advance(20 * time.Second)
	probe, _ = g.acquire(context.Background())
	g.report(probe, coze.Result{Class: coze.ClassTransient, Err: errors.New("connection refused")})
	if !g.isClosed() || g.untilProbe() != 20*time.Second {
		t.Errorf("a probe without an answer: closed=%v next in %v, want closed, 20s", g.isClosed(), g.untilProbe())
	}
	clock.Advance(20 * time.Second)
	probe, _ = g.acquire(context.Background())
	g.report(probe, coze.Result{Class: coze.ClassTransient, HTTPStatus: 502})
	if !g.isClosed() {
		t.Error("a gateway's 502 page opened the gate: it says nothing about the token")
	}

	clock.Advance(20 * time.Second)
	probe, _ = g.acquire(context.Background())
	g.report(probe, ok)
	if g.isClosed() {
		t.Error("a successful probe did not open the gate")
	}
	if probe, err := g.acquire(context.Background()); probe || err != nil {
		t.Errorf("reopened gate: probe=%v err=%v", probe, err)
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Errorf("state changes = %v, want [closed opened]", changes)
	}
}
