package sweep

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
)

// DefaultLease is how long a claimed run is its worker's without a
// renewal; the worker renews it every third of that while the run lasts.
// A worker that dies mid-run loses it after this long, and another
// worker runs the tick again (into the same batch) at its next look at
// the record, within a lease (or a minute, when the lease is longer).
const DefaultLease = time.Minute

// MaxClockSkew is how far ahead of Redis's clock a tick may be and still
// be claimed. A worker whose clock runs further ahead would run ticks
// early and, since the cutoff counts from the tick, sweep conversations
// younger than the policy: its claims are refused and logged.
const MaxClockSkew = 5 * time.Second

// Scheduler runs the sweeps of a sweeps file on their schedules, with any
// number of other schedulers on the same Redis: each tick is claimed in
// the sweep's Redis record, so one of them runs it.
type Scheduler struct {
	// Redis holds the sweeps' records; required.
	Redis redis.UniversalClient
	// Prefix is the key prefix (default keyspace.DefaultPrefix).
	Prefix string
	// Sweeps are the sweeps to run.
	Sweeps []Scheduled
	// Sweepers run each profile's sweeps, by profile name (a spec without
	// a profile is "default's").
	Sweepers map[string]*Sweeper
	// Metrics, when set, count the runs.
	Metrics *Metrics
	// Logger gets a line per run (default slog.Default()).
	Logger *slog.Logger
	// Lease is how long a claimed run is held without renewal (default
	// [DefaultLease]).
	Lease time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// The states of a sweep's record.
const (
	stateRunning = "running"
	stateSuccess = "success"
	stateFailure = "failure"
	// stateAbandoned is a run its worker stopped mid-way (shutdown): any
	// worker may claim its tick again at once.
	stateAbandoned = "abandoned"
)

// Run runs every sweep's schedule until ctx ends, then waits for the runs
// under way to stop.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.Redis == nil {
		return errors.New("sweep: Scheduler.Redis is required")
	}
	for _, sw := range s.Sweeps {
		if s.Sweepers[cmp.Or(sw.Profile, "default")] == nil {
			return errors.New("sweep: no Sweeper for profile " + cmp.Or(sw.Profile, "default") + " of sweep " + sw.Name)
		}
	}
	holder := make([]byte, 8)
	_, _ = rand.Read(holder) // never fails (crypto/rand)
	var wg sync.WaitGroup
	for _, sw := range s.Sweeps {
		l := &loop{s: s, sw: sw, key: keyspace.New(cmp.Or(s.Prefix, keyspace.DefaultPrefix)).Sweep(sw.Name), holder: hex.EncodeToString(holder)}
		if s.Metrics != nil {
			s.Metrics.initSweep(sw)
		}
		wg.Go(func() { l.run(ctx) })
	}
	wg.Wait()
	return nil
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Scheduler) log() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

func (s *Scheduler) lease() time.Duration { return cmp.Or(s.Lease, DefaultLease) }

// loop is one sweep's schedule on one scheduler.
type loop struct {
	s      *Scheduler
	sw     Scheduled
	key    string
	holder string
}

// run catches up with a tick missed while no worker was up, then runs
// each tick as it comes.
func (l *loop) run(ctx context.Context) {
	last := l.recover(ctx)
	for {
		next := l.sw.Next(last)
		if next.IsZero() {
			return
		}
		ok, ran := l.wait(ctx, next)
		if !ok {
			return
		}
		if !ran.IsZero() {
			// Took over a stopped run: the ticks after it are due from
			// there (a tick refused while that run lasted runs next).
			last = ran
			continue
		}
		// A run that took longer than an interval, or a clock that
		// jumped, leaves several ticks behind: the latest one runs.
		tick := cmp.Or(latestTick(l.sw, next, l.s.now()), next)
		l.tick(ctx, tick)
		last = tick
	}
}

// recordRefresh is how often a waiting scheduler reads the sweep's record
// (or once a lease, when the lease is shorter), so that its last-success
// gauge follows the runs of other workers and a stopped run is taken over.
const recordRefresh = time.Minute

// wait sleeps until next; ok is false when ctx ended first. It wakes every
// refresh to read the record, and to follow the wall clock should it
// jump; when the record's run was stopped (abandoned, or running with its
// lease over) it claims and runs that tick, and returns it as ran.
func (l *loop) wait(ctx context.Context, next time.Time) (ok bool, ran time.Time) {
	for {
		d := next.Sub(l.s.now())
		if d <= 0 {
			return true, time.Time{}
		}
		if !sleepUntil(ctx, min(d, recordRefresh, l.s.lease())) {
			return false, time.Time{}
		}
		if !next.After(l.s.now()) {
			return true, time.Time{} // the tick itself claims
		}
		rec, err := l.read(ctx)
		if err != nil {
			continue
		}
		l.gauge(rec)
		if stopped(rec) {
			// The claim decides on Redis's clock whether the lease is over.
			if tick := time.Unix(rec.tick, 0); l.tick(ctx, tick) {
				return true, tick
			}
		}
	}
}

// stopped reports whether rec's run may have stopped without a result:
// abandoned, or still running (its lease may be over).
func stopped(rec record) bool {
	return rec.tick > 0 && (rec.state == stateAbandoned || rec.state == stateRunning)
}

// record is a sweep's record in Redis.
type record struct {
	tick, since, lastSuccess int64 // unix seconds; 0 when absent
	state                    string
	leaseUntil               int64 // unix ms
}

func (l *loop) read(ctx context.Context) (record, error) {
	m, err := l.s.Redis.HGetAll(ctx, l.key).Result()
	if err != nil {
		return record{}, err
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	return record{tick: num("tick"), since: num("since"), lastSuccess: num("last_success"), state: m["state"], leaseUntil: num("lease_until")}, nil
}

// recover runs, once, the latest tick missed since the fleet last ran the
// sweep (however many were missed), or else the last tick again when its
// run stopped (abandoned at a shutdown, or its worker died and its lease
// is over); it returns the time the schedule goes on from.
func (l *loop) recover(ctx context.Context) time.Time {
	now := l.s.now()
	if err := l.s.Redis.HSetNX(ctx, l.key, "since", now.Unix()).Err(); err != nil {
		l.s.log().Warn("sweep: cannot read its record: no catch-up of a missed tick", "sweep", l.sw.Name, "error", err)
		return now
	}
	rec, err := l.read(ctx)
	if err != nil {
		l.s.log().Warn("sweep: cannot read its record: no catch-up of a missed tick", "sweep", l.sw.Name, "error", err)
		return now
	}
	l.gauge(rec)
	base := max(rec.tick, rec.since)
	if base == 0 || base >= now.Unix() {
		return now // a new sweep: nothing was missed
	}
	if due := latestTick(l.sw, l.sw.Next(time.Unix(base, 0)), now); !due.IsZero() {
		l.s.log().Info("sweep: a tick was missed while no worker was up: claiming the latest", "sweep", l.sw.Name, "tick", due.UTC().Format(time.RFC3339))
		l.tick(ctx, due)
		return due
	}
	if stopped(rec) {
		l.tick(ctx, time.Unix(rec.tick, 0)) // its worker stopped mid-run; claim decides on Redis's clock
	}
	return now
}

// The answers of claimScript.
const (
	claimRefused = 0  // another worker's tick, or a later one is claimed
	claimWon     = 1  // this worker's to run
	claimAhead   = -1 // the tick is ahead of Redis's clock by more than MaxClockSkew
)

// tick claims tick and, when this scheduler won it, runs it; it reports
// whether it ran it.
func (l *loop) tick(ctx context.Context, tick time.Time) bool {
	log := l.s.log().With("sweep", l.sw.Name, "tick", tick.UTC().Format(time.RFC3339))
	won, err := claimScript.Run(ctx, l.s.Redis, []string{l.key}, tick.Unix(), l.holder, l.s.lease().Milliseconds(),
		MaxClockSkew.Milliseconds()).Int()
	switch {
	case err != nil:
		if ctx.Err() == nil {
			log.Error("sweep: cannot claim the tick: not run here", "error", err)
		}
		return false
	case won == claimAhead:
		log.Error("sweep: this worker's clock runs ahead of Redis's by more than "+MaxClockSkew.String()+": tick skipped here",
			"worker_time", l.s.now().UTC().Format(time.RFC3339))
	case won == claimWon:
		l.runTick(ctx, tick, log)
	}
	if rec, err := l.read(ctx); err == nil {
		l.gauge(rec)
	}
	return won == claimWon
}

// runTick runs the claimed tick, renewing the lease while it runs, and
// records the result.
func (l *loop) runTick(ctx context.Context, tick time.Time, log *slog.Logger) {
	runCtx, cancel := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() { defer close(renewed); l.renew(runCtx, tick, log) }()
	batch := BatchName(l.sw.Name, tick)
	start := time.Now()
	res, err := l.s.Sweepers[cmp.Or(l.sw.Profile, "default")].Run(runCtx, l.sw.Spec, Options{Batch: batch, At: tick})
	cancel()
	<-renewed
	if ctx.Err() != nil {
		// Shut down mid-run: recorded as abandoned, so that another
		// worker runs the tick again into the same batch without waiting
		// for the lease.
		log.Warn("sweep: stopped mid-run by shutdown", "batch", batch, "listed", res.Listed, "matched", res.Matched)
		l.finish(context.WithoutCancel(ctx), tick, stateAbandoned, batch, log)
		return
	}
	state, result := stateSuccess, ResultSuccess
	if err != nil {
		state, result = stateFailure, ResultFailure
		log.Error("sweep run failed: retried at the next tick", "batch", batch, "listed", res.Listed, "matched", res.Matched,
			"enqueued", res.Enqueued, "error", err)
	} else {
		log.Info("sweep run", "batch", batch, "cutoff", res.Cutoff.Format(time.RFC3339), "listed", res.Listed, "matched", res.Matched,
			"enqueued", res.Enqueued, "duplicate", res.Duplicate, "undated", res.Undated, "duration", time.Since(start).Round(time.Millisecond))
	}
	if l.s.Metrics != nil {
		l.s.Metrics.Runs.WithLabelValues(l.sw.Name, result).Inc()
	}
	l.finish(ctx, tick, state, batch, log)
}

// finishTimeout bounds the write of an abandoned run's record at
// shutdown, when the run's context is over.
const finishTimeout = 5 * time.Second

// finish records state as the result of this worker's run of tick.
func (l *loop) finish(ctx context.Context, tick time.Time, state, batch string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	if err := finishScript.Run(ctx, l.s.Redis, []string{l.key}, tick.Unix(), l.holder, state, batch, l.s.now().Unix()).Err(); err != nil {
		log.Error("sweep: cannot record the run's result", "state", state, "error", err)
	}
}

// renew extends the lease of the run of tick every third of the lease
// until ctx ends.
func (l *loop) renew(ctx context.Context, tick time.Time, log *slog.Logger) {
	t := time.NewTicker(l.s.lease() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := renewScript.Run(ctx, l.s.Redis, []string{l.key}, tick.Unix(), l.holder, l.s.lease().Milliseconds()).Int()
		if err == nil && held == 0 {
			log.Warn("sweep: the run's lease was taken over by another worker; both write the same batch")
			return
		}
	}
}

// gauge sets the last-success gauge from the record.
func (l *loop) gauge(rec record) {
	if l.s.Metrics == nil {
		return
	}
	if at := cmp.Or(rec.lastSuccess, rec.since); at > 0 {
		l.s.Metrics.LastSuccess.WithLabelValues(l.sw.Name).Set(float64(at))
	}
}

// latestTick is the latest tick of sw from first (a tick) to now, or the
// zero time when first is after now.
func latestTick(sw Scheduled, first, now time.Time) time.Time {
	if first.IsZero() || first.After(now) {
		return time.Time{}
	}
	// Start close to now, so that a fleet down for a year on a
	// per-minute schedule does not step through every minute.
	for _, back := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 31 * 24 * time.Hour, 366 * 24 * time.Hour} {
		from := now.Add(-back)
		if from.Before(first) {
			break
		}
		if t := sw.Next(from); !t.IsZero() && !t.After(now) {
			first = t
			break
		}
	}
	t := first
	for range 1_000_000 {
		next := sw.Next(t)
		if next.IsZero() || next.After(now) {
			break
		}
		t = next
	}
	return t
}

func sleepUntil(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// claimScript claims tick for holder (ARGV[1], ARGV[2]) with a lease of
// ARGV[3] ms. It answers -1 (claimAhead) when the tick is more than
// ARGV[4] ms ahead of Redis's clock. It claims when no run is under way
// (none running with its lease alive: ticks never overlap) and the
// record's last tick is earlier, or is this tick and its run stopped
// (abandoned, or running with its lease over). Leases are on Redis's
// clock, which every worker shares.
var claimScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tick = tonumber(ARGV[1])
if tick * 1000 > now + tonumber(ARGV[4]) then return -1 end
local cur = tonumber(redis.call('HGET', KEYS[1], 'tick') or '0')
if cur > tick then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
if state == 'running' and lease > now then return 0 end
if cur == tick and state ~= 'running' and state ~= 'abandoned' then return 0 end
redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'state', 'running', 'holder', ARGV[2], 'lease_until', now + tonumber(ARGV[3]))
return 1
`)

// renewScript extends the lease of holder's run of tick by ARGV[3] ms; 0
// when the run is no longer holder's.
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'tick') ~= ARGV[1]
  or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'lease_until', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3]))
return 1
`)

// finishScript records the result (ARGV[3]: success, failure or
// abandoned) and batch (ARGV[4]) of holder's run of tick, and on success
// its time (ARGV[5]), and ends the lease. A run whose lease was taken
// over records only its success time: the other run records its own
// result.
var finishScript = redis.NewScript(`
if ARGV[3] == 'success' then
  local last = tonumber(redis.call('HGET', KEYS[1], 'last_success') or '0')
  if tonumber(ARGV[5]) > last then redis.call('HSET', KEYS[1], 'last_success', ARGV[5]) end
end
if redis.call('HGET', KEYS[1], 'holder') == ARGV[2] and redis.call('HGET', KEYS[1], 'tick') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'batch', ARGV[4], 'lease_until', '0')
end
return 1
`)
