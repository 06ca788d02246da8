package worker

import (
	"context"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// DefaultRedisGaugesInterval is how often a worker reads the Redis-backed
// gauges (queue sizes, batch counts) when nobody scrapes it.
const DefaultRedisGaugesInterval = 5 * time.Second

// gaugesScrapeWait is how long a scrape waits for a fresh read of the
// Redis-backed gauges before it serves the last one: long enough for a
// healthy Redis, short enough that a hanging one leaves /metrics well under
// a second, inside any scrape timeout.
const gaugesScrapeWait = 500 * time.Millisecond

// redisSnapshot is one read of the Redis-backed gauges.
type redisSnapshot struct {
	at     time.Time // when the read started: the values are at least this fresh
	queues []*asynq.QueueInfo
	// unfed counts each queue's pending ids that wait for their task.
	unfed map[string]int
	stats ledger.OpenStats
	lost  int
}

// redisGauges exports asynq's queue sizes and the ledger's batch counts.
// They are read from Redis by a goroutine of their own, never by a scrape:
// a Redis that hangs would hold the scrape past its timeout, and every
// series of the worker, Go's and the counters included, would vanish with
// it. A scrape asks for a fresh read, waits for it at most
// gaugesScrapeWait, and serves the last read it has, with
// coze_eraser_redis_gauges_age_seconds saying how old it is.
//
// No batch name is a label: there is no bound on how many batches there are.
type redisGauges struct {
	inspector *asynq.Inspector
	ledger    *ledger.Ledger
	now       func() time.Time
	interval  time.Duration
	// kick asks the goroutine for a read now; one pending ask is enough.
	kick chan struct{}

	mu      sync.Mutex
	snap    *redisSnapshot
	started time.Time // when run started; zero while it does not run
	reads   uint64    // reads started
	done    uint64    // reads finished, failed ones included
	changed chan struct{}

	size, unfed, latency, paused, count, due, age *prometheus.Desc
}

func newRedisGauges(inspector *asynq.Inspector, l *ledger.Ledger, now func() time.Time, interval time.Duration) *redisGauges {
	return &redisGauges{
		inspector: inspector,
		ledger:    l,
		now:       now,
		interval:  interval,
		kick:      make(chan struct{}, 1),
		changed:   make(chan struct{}),
		size: prometheus.NewDesc("coze_eraser_queue_tasks",
			"Tasks in each asynq queue by state.", []string{"queue", "state"}, nil),
		unfed: prometheus.NewDesc("coze_eraser_unfed_ids",
			"Pending ids of each queue's batches that wait in the ledger for their task: workers make tasks from them "+
				"as the queue has room (batches scheduled for later included; held ids once released).", []string{"queue"}, nil),
		latency: prometheus.NewDesc("coze_eraser_queue_latency_seconds",
			"Age of the oldest pending task of each asynq queue.", []string{"queue"}, nil),
		paused: prometheus.NewDesc("coze_eraser_queue_paused",
			"1 when the asynq queue is paused.", []string{"queue"}, nil),
		count: prometheus.NewDesc("coze_eraser_batches",
			"Batches by state: open (ids pending, due ahead), overdue (ids pending, due passed), complete, "+
				"lost (Redis lost it; its input must be enqueued again).", []string{"state"}, nil),
		due: prometheus.NewDesc("coze_eraser_oldest_open_batch_due_seconds",
			"Seconds until the earliest due time of an open batch; negative when it is overdue. Absent when no batch is open.", nil, nil),
		age: prometheus.NewDesc("coze_eraser_redis_gauges_age_seconds",
			"Age of the last successful read of the Redis-backed gauges (queue tasks, batches); "+
				"it grows while Redis does not answer.", nil, nil),
	}
}

// begin marks the reader as running. Call it before `go run`, so that a
// scrape right after [Server.Start] waits for the first read.
func (g *redisGauges) begin() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.started = g.now()
}

// run reads now, then every interval and whenever a scrape asks, until ctx
// ends. Each read has the interval as its timeout.
func (g *redisGauges) run(ctx context.Context) {
	defer func() {
		g.mu.Lock()
		g.started = time.Time{}
		g.mu.Unlock()
	}()
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		g.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.kick:
		}
	}
}

// refresh reads the gauges and keeps the read when it succeeded. A failed
// read keeps the last one: the age gauge and /readyz tell that Redis does
// not answer, and the watch logs it.
func (g *redisGauges) refresh(ctx context.Context) {
	g.mu.Lock()
	g.reads++
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.interval)
	snap, err := g.read(ctx)
	cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		g.snap = snap
	}
	g.done++
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *redisGauges) read(ctx context.Context) (*redisSnapshot, error) {
	snap := &redisSnapshot{at: g.now()}
	// asynq's Inspector takes no context: go-redis's read timeout bounds it.
	queues, err := g.inspector.Queues()
	if err != nil {
		return nil, err
	}
	for _, q := range queues {
		info, err := g.inspector.GetQueueInfo(q)
		if err != nil {
			return nil, err
		}
		snap.queues = append(snap.queues, info)
	}
	if snap.unfed, err = g.ledger.Unfed(ctx); err != nil {
		return nil, err
	}
	if snap.stats, err = g.ledger.OpenStats(ctx, snap.at); err != nil {
		return nil, err
	}
	lost, err := g.ledger.LostBatches(ctx)
	if err != nil {
		return nil, err
	}
	snap.lost = len(lost)
	return snap, nil
}

// latest asks for a fresh read, waits for it at most wait, and returns the
// last successful read (nil when there is none) and when run started (zero
// when it does not run).
func (g *redisGauges) latest(wait time.Duration) (*redisSnapshot, time.Time) {
	g.mu.Lock()
	running, want := !g.started.IsZero(), g.reads+1 // a read started before the ask may predate it
	g.mu.Unlock()
	if running {
		select {
		case g.kick <- struct{}{}:
		default:
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
	wait:
		for {
			g.mu.Lock()
			done, changed := g.done, g.changed
			g.mu.Unlock()
			if done >= want {
				break
			}
			select {
			case <-changed:
			case <-timer.C:
				break wait
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.snap, g.started
}

// Describe implements prometheus.Collector.
func (g *redisGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.size, g.unfed, g.latency, g.paused, g.count, g.due, g.age} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Before the first successful
// read only the age is there, counted from the start of the goroutine.
func (g *redisGauges) Collect(ch chan<- prometheus.Metric) {
	snap, started := g.latest(gaugesScrapeWait)
	now := g.now()
	switch {
	case snap != nil:
		ch <- prometheus.MustNewConstMetric(g.age, prometheus.GaugeValue, max(now.Sub(snap.at).Seconds(), 0))
	case !started.IsZero():
		ch <- prometheus.MustNewConstMetric(g.age, prometheus.GaugeValue, max(now.Sub(started).Seconds(), 0))
	}
	if snap == nil {
		return
	}
	for _, info := range snap.queues {
		g.collectQueue(ch, info)
	}
	for q, n := range snap.unfed {
		ch <- prometheus.MustNewConstMetric(g.unfed, prometheus.GaugeValue, float64(n), q)
	}
	for state, n := range map[ledger.State]int{ledger.StateOpen: snap.stats.Open, ledger.StateOverdue: snap.stats.Overdue,
		ledger.StateComplete: snap.stats.Complete, ledger.StateLost: snap.lost} {
		ch <- prometheus.MustNewConstMetric(g.count, prometheus.GaugeValue, float64(n), string(state))
	}
	if !snap.stats.OldestDue.IsZero() {
		// The due time is fixed: count down to it from now, not from the read.
		ch <- prometheus.MustNewConstMetric(g.due, prometheus.GaugeValue, snap.stats.OldestDue.Sub(now).Seconds())
	}
}

func (g *redisGauges) collectQueue(ch chan<- prometheus.Metric, info *asynq.QueueInfo) {
	q := info.Queue
	for state, n := range map[string]int{
		"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
		"retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
	} {
		ch <- prometheus.MustNewConstMetric(g.size, prometheus.GaugeValue, float64(n), q, state)
	}
	ch <- prometheus.MustNewConstMetric(g.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
	paused := 0.0
	if info.Paused {
		paused = 1
	}
	ch <- prometheus.MustNewConstMetric(g.paused, prometheus.GaugeValue, paused, q)
}
