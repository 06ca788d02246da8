package worker

import (
	"context"
	"log/slog"
	"maps"
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
// concurrency and the workers of each queue, which size its window.
const fleetReadEvery = fleet.DefaultInterval

// maxBoost bounds how far a window grows past its base while the queue
// keeps running dry.
const maxBoost = 64

// minWindow is the least window of a queue, maxWindow the most (about
// 10 MB of asynq tasks).
const (
	minWindow = 16
	maxWindow = 20_000
)

// startWindow is the window of a worker that has not measured its drain
// yet (it just started, or was idle), unless its rate limit allows less:
// a fetcher that finds its queues empty sleeps for the poll interval, so
// a start that fed too little would idle the fleet's first second.
const startWindow = 1000

type feeder struct {
	enqueue     *enqueue.Client
	rdb         redis.UniversalClient
	prefix      string
	queues      []string
	concurrency int
	log         *slog.Logger
	now         func() time.Time
	fed         func(queue string, n int)
	// rate is the sum of the worker's profiles' effective fleet rates,
	// and whether every profile is limited.
	rate func() (float64, bool)
	// finished counts every task this worker finished: its drain rate,
	// times the workers serving a queue, sizes the queue's window where
	// no rate limit does (rate 0, or one the API never pushes back on).
	// wake asks for a feed once the tasks finished since the last one
	// (finishedAtFeed) use up a quarter of the smallest window.
	finished       atomic.Int64
	finishedAtFeed atomic.Int64
	smallest       atomic.Int64
	wake           chan struct{}

	// The windows and bases are the feeder goroutine's alone.
	windows map[string]*window
	// base is each queue's window from the fleet's reports, and serving
	// how many live workers serve it.
	base     map[string]int
	serving  map[string]int
	baseRead time.Time
	// drain is this worker's tasks finished per second, measured over
	// the last second or more (drainAt, drainCount).
	drain      float64
	drainAt    time.Time
	drainCount int64
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

func newFeeder(s *Server, enq *enqueue.Client) *feeder {
	queues := slices.Sorted(maps.Keys(s.cfg.Queues))
	f := &feeder{enqueue: enq, rdb: s.cfg.Redis, prefix: s.cfg.Ledger.Prefix(), queues: queues,
		concurrency: s.cfg.Concurrency, log: s.cfg.Logger, now: s.cfg.Now, fed: s.metrics.observeFed, rate: s.lanesRate,
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
	if f.finished.Add(1)-f.finishedAtFeed.Load() < f.smallest.Load()/4 {
		return
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// feedAll feeds every queue once.
func (f *feeder) feedAll(ctx context.Context) {
	f.finishedAtFeed.Store(f.finished.Load())
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

// target is queue's window now: about feedHorizon of the fleet's work (this
// worker's drain times the workers serving the queue; startWindow while the
// worker is idle or just started), never more than the rate limit lets the
// fleet do in that time, and at least the fleet's concurrency; times the
// boost, at most maxWindow.
func (f *feeder) target(ctx context.Context, queue string, w *window, now time.Time) int {
	if now.Sub(f.baseRead) >= fleetReadEvery {
		f.baseRead = now
		if reports, err := fleet.Read(ctx, f.rdb, f.prefix, now); err == nil {
			f.base, f.serving = fleetConcurrency(reports)
		}
	}
	if elapsed := now.Sub(f.drainAt); elapsed >= time.Second {
		count := f.finished.Load()
		f.drain = float64(count-f.drainCount) / elapsed.Seconds()
		f.drainAt, f.drainCount = now, count
	}
	work := startWindow
	if f.drain > 0 {
		work = int(math.Ceil(f.drain * float64(max(f.serving[queue], 1)) * feedHorizon.Seconds()))
	}
	if rate, limited := f.rate(); limited {
		work = min(work, int(math.Ceil(rate*feedHorizon.Seconds())))
	}
	base := max(f.base[queue], work, f.concurrency, minWindow)
	return min(base*w.boost, maxWindow)
}

// fleetConcurrency sums, from the fleet's reports, the concurrency of the
// workers serving each queue, and counts them.
func fleetConcurrency(reports []fleet.Report) (concurrency, serving map[string]int) {
	concurrency, serving = map[string]int{}, map[string]int{}
	for _, r := range reports {
		for q := range r.Queues {
			concurrency[q] += r.Concurrency
			serving[q]++
		}
	}
	return concurrency, serving
}

// lanesRate sums the effective fleet rates of the worker's profiles; limited
// is false when a profile has no rate budget (rate 0) or none known yet.
func (s *Server) lanesRate() (rate float64, limited bool) {
	for _, l := range s.lanes {
		if l.limiter == nil || l.limiter.Effective() <= 0 {
			return 0, false
		}
		rate += l.limiter.Effective()
	}
	return rate, len(s.lanes) > 0
}
