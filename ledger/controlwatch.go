package ledger

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A worker reads a batch's control state before every call, and that read
// was a Redis round trip per deletion: a seventh of a worker's CPU in the
// bench. A [ControlWatch] keeps the states it read, and drops one the
// moment a control action announces a change on a channel: the pause or
// cancel takes effect as fast as before, and a running batch's tasks read
// no state at all.

// ControlWatchTTL bounds how long a state read is used without a sign
// that the watch still hears the channel: an announcement lost while the
// subscription reconnects costs at most this much.
const ControlWatchTTL = time.Second

// maxWatched bounds the states a watch keeps; past it, it forgets them all.
const maxWatched = 10_000

// ControlWatch reads batches' control states ([Ledger.Control]) through a
// cache that control actions invalidate. Make it with [Ledger.WatchControl].
type ControlWatch struct {
	l   *Ledger
	now func() time.Time

	mu     sync.Mutex
	live   bool // subscribed: announcements arrive
	gen    uint64
	states map[string]watchedState
}

type watchedState struct {
	state ControlState
	at    time.Time
}

// WatchControl starts a watch that listens for control announcements
// until ctx ends.
func (l *Ledger) WatchControl(ctx context.Context) *ControlWatch {
	w := &ControlWatch{l: l, now: time.Now, states: map[string]watchedState{}}
	go w.listen(ctx)
	return w
}

// Control returns batch's control state, from the cache when the watch
// holds a fresh one.
func (w *ControlWatch) Control(ctx context.Context, batch string) (ControlState, error) {
	w.mu.Lock()
	s, ok := w.states[batch]
	live, gen := w.live, w.gen
	w.mu.Unlock()
	if ok && live && w.now().Sub(s.at) < ControlWatchTTL {
		return s.state, nil
	}
	at := w.now()
	state, err := w.l.Control(ctx, batch)
	if err != nil {
		return state, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// An announcement that arrived while this read was under way may be
	// newer than what it read: keep nothing then.
	if w.gen == gen && w.live {
		if len(w.states) >= maxWatched {
			clear(w.states)
		}
		w.states[batch] = watchedState{state: state, at: at}
	}
	return state, nil
}

// forget drops batch's state (all states when batch is ""), and marks
// reads under way as stale.
func (w *ControlWatch) forget(batch string, live bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	w.live = live
	if batch == "" {
		clear(w.states)
		return
	}
	delete(w.states, batch)
}

// listen follows the channel, reconnecting as go-redis does; while it is
// not subscribed, every read goes to Redis.
func (w *ControlWatch) listen(ctx context.Context) {
	sub := w.l.rdb.Subscribe(ctx, w.l.ks.ControlChannel())
	defer func() { _ = sub.Close() }()
	defer w.forget("", false) // no longer hearing: every read goes to Redis
	for {
		msg, err := sub.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			w.forget("", m.Kind == "subscribe") // (re)subscribed: what was missed is gone with the cache
		case *redis.Message:
			w.forget(m.Payload, true)
		default:
			if err != nil {
				w.forget("", false)
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}
}

// announceControl tells the watches that batch's control state changed.
// A failure is left to ControlWatchTTL.
func (l *Ledger) announceControl(ctx context.Context, batch string) {
	_ = l.rdb.Publish(ctx, l.ks.ControlChannel(), batch).Err()
}
