package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisCheckInterval is how often a worker pings Redis to tell an
// operator, in its log, that Redis stopped or resumed answering.
const DefaultRedisCheckInterval = time.Second

// redisDownRemindEvery bounds how often an outage is logged again while it
// lasts: once when it starts, then a reminder with its duration.
const redisDownRemindEvery = 30 * time.Second

// redisWatch logs the moment Redis stops answering, reminds every
// redisDownRemindEvery while it does not answer, and logs when it answers
// again. asynq says little and late (its errors come from whichever loop
// runs into Redis next), and go-redis's pool messages are debug lines, so
// without it a worker would be silent for the first half minute of an
// outage.
//
// A ping that takes longer than the interval counts as a failure, whatever
// the client's read timeout: a hanging Redis is an outage too. At most one
// ping is in flight.
type redisWatch struct {
	rdb      redis.UniversalClient
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	down     time.Time // when the outage began; zero while Redis answers
	reminded time.Time // when the outage was last logged
	// isDown mirrors down for other goroutines (a progress line).
	isDown atomic.Bool
}

func newRedisWatch(rdb redis.UniversalClient, log *slog.Logger, now func() time.Time, interval time.Duration) *redisWatch {
	return &redisWatch{rdb: rdb, log: log, now: now, interval: interval}
}

// run pings now and every interval until ctx ends, then waits for the ping
// in flight so that no goroutine outlives it.
func (w *redisWatch) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	answers := make(chan error, 1)
	var pending <-chan error // nil while no ping is in flight
	var sent time.Time
	ping := func() {
		pending, sent = answers, w.now()
		go func() {
			pingCtx, cancel := context.WithTimeout(ctx, w.interval)
			defer cancel()
			answers <- w.rdb.Ping(pingCtx).Err()
		}()
	}
	ping()
	for {
		select {
		case <-ctx.Done():
			if pending != nil {
				<-pending //nolint:errcheck // let the ping end; its answer no longer matters
			}
			return
		case err := <-pending:
			pending = nil
			if ctx.Err() == nil {
				w.observe(err)
			}
		case <-t.C:
			if pending == nil {
				ping()
			} else if waited := w.now().Sub(sent); waited >= w.interval {
				w.observe(fmt.Errorf("no answer to a ping within %v", waited.Round(time.Millisecond)))
			}
		}
	}
}

// observe logs the changes: the first failure at once, then a reminder at
// most every redisDownRemindEvery, and the recovery.
func (w *redisWatch) observe(err error) {
	now := w.now()
	switch {
	case err == nil && !w.down.IsZero():
		w.log.Info("Redis answers again", "down_for", now.Sub(w.down).Round(time.Second))
		w.down = time.Time{}
		w.isDown.Store(false)
	case err == nil:
	case w.down.IsZero():
		w.down, w.reminded = now, now
		w.isDown.Store(true)
		w.log.Error("Redis is not answering", "error", err)
	case now.Sub(w.reminded) >= redisDownRemindEvery:
		w.reminded = now
		w.log.Error("Redis is not answering", "error", err, "down_for", now.Sub(w.down).Round(time.Second))
	}
}
