package worker

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/fleet"
)

// The feeder keeps each queue the worker serves stocked with a window of
// tasks, made from the pending ids the ledger holds compactly
// (enqueue.Client.Feed): enough for the fleet's concurrency and for its
// rate over feedHorizon, and more while the queue keeps running dry.
// Every worker feeds its queues; the feed is atomic in Redis, so that two
// feeders never give an id two tasks, and the window's bound is checked
// there too.

// feedTick is how often an idle feeder looks for ids to feed (a new or
// scheduled batch): the wait before a batch's first task, at most.
const feedTick = 200 * time.Millisecond

// feedHorizon is how long the window lasts at the fleet's rate: a batch
// enqueued behind a big one in its queue waits about this long for its
// first task to run.
const feedHorizon = time.Second

// fleetReadEvery is how often the feeder reads the fleet's reports for the
// concurrency and rate that size the windows.
const fleetReadEvery = fleet.DefaultInterval

// maxBoost bounds how far a window grows past its base while the queue
// keeps running dry (a rate the fleet reports do not show: no rate limit).
const maxBoost = 64

// minWindow is the least window of a queue.
const minWindow = 16

type feeder struct {
	enqueue     *enqueue.Client
	rdb         redis.UniversalClient
	prefix      string
	queues      []string
	concurrency int
	log         *slog.Logger
	now         func() time.Time
	fed         func(queue string, n int)
	// done counts tasks finished since the last feed; wake asks for a
	// feed once they use up a quarter of the smallest window (smallest).
	done     atomic.Int64
	smallest atomic.Int64
	wake     chan struct{}

	// The windows and bases are the feeder goroutine's alone.
	windows map[string]*window
	// base is each queue's window from the fleet's reports.
	base     map[string]int
	baseRead time.Time
}

// window is the feeding state of one queue.
type window struct {
	boost   int // multiplies the base while the queue runs dry
	dryAt   time.Time
	errorAt time.Time
	// stocked is true when the last feed left tasks waiting: finding
	// none at the next means the fleet's fetchers ran out.
	stocked bool
}

func newFeeder(s *Server) *feeder {
	queues := slices.Sorted(func(yield func(string) bool) {
		for q := range s.cfg.Queues {
			if !yield(q) {
				return
			}
		}
	})
	f := &feeder{enqueue: s.verifier.enqueue, rdb: s.cfg.Redis, prefix: s.cfg.Ledger.Prefix(), queues: queues,
		concurrency: s.cfg.Concurrency, log: s.cfg.Logger, now: s.cfg.Now, fed: s.metrics.observeFed,
		wake: make(chan struct{}, 1), windows: map[string]*window{}, base: map[string]int{}}
	for _, q := range queues {
		f.windows[q] = &window{boost: 1}
	}
	f.smallest.Store(int64(max(f.concurrency, minWindow)))
	return f
}

// taskDone counts a finished task and wakes the feeder once a quarter of
// the smallest window is used up: feeding once per task would cost Redis
// more than the task.
func (f *feeder) taskDone() {
	if f.done.Add(1) < f.smallest.Load()/4 {
		return
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// feedAll feeds every queue once.
func (f *feeder) feedAll(ctx context.Context) {
	f.done.Store(0)
	smallest := 0
	for _, q := range f.queues {
		if target := f.feed(ctx, q); smallest == 0 || target < smallest {
			smallest = target
		}
	}
	f.smallest.Store(int64(smallest))
}

// run feeds until ctx ends.
func (f *feeder) run(ctx context.Context) {
	tick := time.NewTicker(feedTick)
	defer tick.Stop()
	for ctx.Err() == nil {
		f.feedAll(ctx)
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-f.wake:
		}
	}
}

// feed tops queue up to its window, and returns the window.
func (f *feeder) feed(ctx context.Context, queue string) int {
	now := f.now()
	w := f.windows[queue]
	target := f.target(ctx, queue, w, now)
	res, err := f.enqueue.Feed(ctx, queue, target)
	if err != nil {
		if ctx.Err() == nil && now.Sub(w.errorAt) > time.Minute {
			w.errorAt = now // Redis outages are logged by the worker's own watch
			f.log.Warn("feeding the queue from the ledger", "queue", queue, "error", err)
		}
		return target
	}
	if res.Tasks > 0 {
		f.fed(queue, res.Tasks)
	}
	switch {
	case w.stocked && res.WaitingBefore == 0 && res.Tasks > 0 && w.boost < maxBoost:
		// The fleet's fetchers ran out of tasks between two feeds (and
		// wait for the next poll): a larger window lasts longer.
		w.boost, w.dryAt = w.boost*2, now
	case w.boost > 1 && now.Sub(w.dryAt) > 30*time.Second:
		w.boost, w.dryAt = w.boost/2, now
	}
	w.stocked = res.Waiting > 0
	return target
}

// target is queue's window now: its base from the fleet's reports, times
// its boost.
func (f *feeder) target(ctx context.Context, queue string, w *window, now time.Time) int {
	if now.Sub(f.baseRead) >= fleetReadEvery {
		f.baseRead = now
		if reports, err := fleet.Read(ctx, f.rdb, f.prefix, now); err == nil {
			f.base = windowBases(reports, feedHorizon)
		}
	}
	base := max(f.base[queue], f.concurrency, minWindow)
	return base * w.boost
}

// windowBases sizes each queue's window from the fleet's reports: the
// concurrency of the workers serving it, or its rate over horizon, the
// larger. The rate is the fleet's effective rate of every profile (its
// budget is shared, so each worker reports the same rate): any of them
// may serve the queue's batches.
func windowBases(reports []fleet.Report, horizon time.Duration) map[string]int {
	concurrency := map[string]int{}
	rates := map[string]float64{}
	for _, r := range reports {
		for q := range r.Queues {
			concurrency[q] += r.Concurrency
		}
		for _, p := range r.Profiles {
			rates[p.Name] = max(rates[p.Name], p.EffectiveRate)
		}
	}
	var rate float64
	for _, v := range rates {
		rate += v
	}
	byRate := int(math.Ceil(rate * horizon.Seconds()))
	out := map[string]int{}
	for q, c := range concurrency {
		out[q] = max(c, byRate)
	}
	return out
}
