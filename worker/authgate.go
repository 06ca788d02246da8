package worker

import (
	"context"
	"sync"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// authGate stops all calls while the token is rejected. An auth answer (4100,
// 4101, 401, 403) closes the gate: from then on one call at a time, a probe,
// is let through after each probe interval (doubling up to its cap), and
// every other task waits. The first probe that gets any other answer opens
// the gate again, so the worker resumes by itself once the token is fixed,
// for example when the token file was replaced.
type authGate struct {
	backoff Backoff
	now     func() time.Time
	// onChange is called when the gate closes or opens, under the gate's
	// lock so that the calls come in the order of the changes.
	onChange func(closed bool, res coze.Result)

	mu        sync.Mutex
	closed    bool
	probing   bool
	failures  int
	nextProbe time.Time
	changed   chan struct{} // closed and replaced on every state change
}

func newAuthGate(b Backoff, now func() time.Time, onChange func(bool, coze.Result)) *authGate {
	return &authGate{backoff: b, now: now, onChange: onChange, changed: make(chan struct{})}
}

// acquire returns when a call may be made: at once while the gate is open,
// or as the probe when it is closed and the probe is due. It returns ctx's
// error when ctx ends first.
func (g *authGate) acquire(ctx context.Context) (probe bool, err error) {
	for {
		g.mu.Lock()
		if !g.closed {
			g.mu.Unlock()
			return false, nil
		}
		wait := g.nextProbe.Sub(g.now())
		if !g.probing && wait <= 0 {
			g.probing = true
			g.mu.Unlock()
			return true, nil
		}
		if g.probing {
			wait = 0 // the probe's report will wake us
		}
		changed := g.changed
		g.mu.Unlock()
		if err := waitChange(ctx, changed, wait); err != nil {
			return false, err
		}
	}
}

// tryAcquire is acquire without the wait: ok is false while the gate is
// closed and the probe is not due or already taken.
func (g *authGate) tryAcquire() (probe, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !g.closed:
		return false, true
	case !g.probing && !g.now().Before(g.nextProbe):
		g.probing = true
		return true, true
	}
	return false, false
}

// waitChange waits for changed to close, for d to pass (when d > 0), or for
// ctx to end.
func waitChange(ctx context.Context, changed <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-changed:
	case <-timeout:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// report records the answer of a call made after acquire. Only auth answers
// close the gate, and only a probe's answer opens it: a call that was already
// in flight when the gate closed says nothing about the token now. Nor does a
// probe answer without a body code (a network error, a gateway's page): the
// probe is tried again after the same interval.
func (g *authGate) report(probe bool, res coze.Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	wasClosed := g.closed
	switch {
	case res.Class == coze.ClassAuth && (probe || !g.closed):
		g.closed = true
		g.nextProbe = g.now().Add(g.backoff.ceiling(g.failures))
		g.failures++
	case probe && !res.HasCode:
		g.nextProbe = g.now().Add(g.backoff.ceiling(g.failures - 1))
	case probe:
		// The API answered with a code other than auth: the token works.
		g.closed, g.failures = false, 0
	}
	if probe {
		g.probing = false
	}
	changed := g.closed != wasClosed
	if changed || probe {
		close(g.changed)
		g.changed = make(chan struct{})
	}
	if changed && g.onChange != nil {
		g.onChange(g.closed, res)
	}
}

// untilProbe is how long until the next probe, the delay a task that got an
// auth answer waits before it is tried again.
func (g *authGate) untilProbe() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(g.nextProbe.Sub(g.now()), 0)
}

// isClosed reports whether calls are paused for auth.
func (g *authGate) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}
