// Package ratelimit is the fleet's shared budget for calls to the Coze API:
// a request rate and a cap on calls in flight, kept in Redis so that every
// worker process on the same Redis, API and token draws on one budget.
//
// The rate is a GCRA (generic cell rate algorithm) with reservations: a
// caller reserves the next free send slot in one script call and sleeps
// until it, instead of polling. The rate adapts to the API: an answer that
// says "slow down" (429, 4009, 4020) cuts it to a fraction of what the API
// was accepting, at most once per cooldown; a run of successes raises it
// additively back toward the configured rate (fast up to the rate that last
// drew a 429, then a probe that speeds up the longer it succeeds). A
// Retry-After pauses the whole budget until that time. Every worker sees the
// same effective rate, which is in Redis.
//
// The in-flight cap is a sorted set of holders with leases; a released slot
// is announced on a Redis channel, so waiters wake when one frees rather
// than polling.
package ratelimit

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
)

// Config describes a budget.
type Config struct {
	// Rate is the configured requests per second for the whole fleet,
	// [LowestRate] to [HighestRate]; 0 means no rate budget.
	Rate float64
	// Burst is how many requests may go at once after a quiet spell, up
	// to [MaxBurst] (default 1).
	Burst int
	// MaxInflight caps the fleet's calls in flight, up to [MaxInflightCap];
	// 0 means no cap.
	MaxInflight int
	// Lease bounds how long an in-flight slot is held by a worker that died
	// holding it (default 1 minute; make it longer than a call can take).
	Lease time.Duration
	// Key identifies the budget; see [BudgetKey].
	Key string
	// Now is the clock; nil uses the Redis server's, which every worker
	// shares.
	Now func() time.Time
	// Adaptive makes the budget discover the API's limit rather than start
	// at Rate: it starts just under what the API accepted before the last
	// pushback on Key (kept 30 days), or at StartRate, grows by
	// GrowthFactor a second while the API accepts what it sends, is cut on
	// pushback, and then probes above the limit by 1% a second. Rate is
	// then a ceiling (0: HighestRate).
	Adaptive bool
	// StartRate is where an adaptive budget with nothing learnt starts
	// (default 20 requests a second, the slowest Coze plan).
	StartRate float64
	// GrowthFactor multiplies an adaptive budget's rate once a second,
	// while the API accepts what it sends, until the first pushback
	// (default 2).
	GrowthFactor float64
	// Tuning; zero values take the defaults below.
	CutFactor    float64       // rate kept after a pushback (0.9)
	MinRate      float64       // floor of the effective rate (Rate/100, at least 0.1, at most Rate)
	Cooldown     time.Duration // least time between two cuts (500 ms)
	IncreaseStep time.Duration // time between two increases (250 ms)
}

// Bounds of a [Config].
const (
	// LowestRate is the slowest configured rate: one call per 100 s. A
	// budget's state expires an hour after its last reservation, so a rate
	// below one call an hour would forget its schedule between calls, and
	// rates near zero overflow the wait into "no wait at all".
	LowestRate = 0.01
	// HighestRate is the fastest configured rate: the slots are spaced in
	// microseconds, and at 100,000 calls a second they are 10 µs apart.
	HighestRate = 100_000
	// MaxBurst is the largest burst: more calls at once than any fleet's
	// concurrency would take is not a limit.
	MaxBurst = 10_000
	// MaxInflightCap is the largest in-flight cap, for the same reason.
	MaxInflightCap = 100_000
)

// BudgetKey derives a budget's Redis key from the API base URL and the
// token: workers calling the same API with the same token share a budget.
// The token is hashed; it never reaches Redis.
func BudgetKey(prefix, baseURL, token string) string {
	sum := sha256.Sum256([]byte(baseURL + "\x00" + token))
	return keyspace.New(prefix).Budget(hex.EncodeToString(sum[:12]))
}

// AppBudgetKey derives the budget key of an OAuth app's profile from the
// API base URL and the app id: its access tokens change at every renewal
// and differ per session, but they all draw on the account's one limit.
func AppBudgetKey(prefix, baseURL, appID string) string {
	sum := sha256.Sum256([]byte(baseURL + "\x00app\x00" + appID))
	return keyspace.New(prefix).Budget(hex.EncodeToString(sum[:12]))
}

// Limiter draws on a budget. It is safe for concurrent use; one per process
// is enough.
type Limiter struct {
	rdb redis.UniversalClient
	cfg Config
	// successes reported since the last reservation, sent with the next.
	successes atomic.Int64
	effective atomic.Uint64 // float64 bits

	holderSeq atomic.Int64
	holderTag string
	head      chan struct{} // one local waiter talks to Redis at a time
	wakeMu    sync.Mutex
	wake      chan struct{} // closed and replaced when a slot frees
	stopSub   context.CancelFunc
}

var (
	//go:embed lua/acquire.lua
	acquireSource string
	//go:embed lua/pushback.lua
	pushbackSource string
	//go:embed lua/inflight.lua
	inflightSource string

	acquireScript  = redis.NewScript(acquireSource)
	pushbackScript = redis.NewScript(pushbackSource)
	inflightScript = redis.NewScript(inflightSource)
)

// New returns a limiter for the budget of cfg. Call Close when done.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Burst = max(cfg.Burst, 1)
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	// Written so that NaN, which fails every comparison, takes the default.
	if !(cfg.CutFactor > 0 && cfg.CutFactor < 1) {
		cfg.CutFactor = 0.9
	}
	if cfg.Adaptive {
		cfg.setAdaptiveDefaults()
	}
	if !(cfg.MinRate > 0) || math.IsInf(cfg.MinRate, 0) {
		cfg.MinRate = max(cfg.Rate/100, 0.1)
	}
	if cfg.Rate > 0 {
		// A cut must never lift a slow configured rate up to the floor.
		cfg.MinRate = min(cfg.MinRate, cfg.Rate)
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 500 * time.Millisecond
	}
	if cfg.IncreaseStep <= 0 {
		cfg.IncreaseStep = 250 * time.Millisecond
	}
	l := &Limiter{
		rdb:       rdb,
		cfg:       cfg,
		holderTag: strconv.FormatInt(time.Now().UnixNano(), 36),
		head:      make(chan struct{}, 1),
		wake:      make(chan struct{}),
	}
	l.effective.Store(floatBits(cfg.Rate))
	if cfg.Adaptive {
		l.effective.Store(floatBits(min(cfg.StartRate, cfg.Rate)))
	}
	if cfg.MaxInflight > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		l.stopSub = cancel
		sub := rdb.Subscribe(ctx, l.channel())
		go l.listen(ctx, sub)
	}
	return l, nil
}

// setAdaptiveDefaults fills an adaptive budget's settings: its ceiling, its
// start, its growth, and a floor low enough for the slowest plans (Coze's
// range from 20 to 500 calls a second) rather than a share of the ceiling.
func (c *Config) setAdaptiveDefaults() {
	if c.Rate == 0 {
		c.Rate = HighestRate
	}
	if !(c.StartRate >= LowestRate) || math.IsInf(c.StartRate, 0) {
		c.StartRate = 20
	}
	if !(c.GrowthFactor > 1 && c.GrowthFactor <= 4) {
		c.GrowthFactor = 2
	}
	if !(c.MinRate > 0) || math.IsInf(c.MinRate, 0) {
		c.MinRate = min(0.5, c.Rate)
	}
}

// validate refuses what would not limit, or not the way it says: NaN,
// infinite and out-of-range rates (1e-300 overflowed into no wait at all),
// negative or oversized bursts and caps.
func (c Config) validate() error {
	switch {
	case c.Rate != 0 && !(c.Rate >= LowestRate && c.Rate <= HighestRate):
		return fmt.Errorf("ratelimit: rate %v: must be 0 (no rate budget) or %v to %v requests a second", c.Rate, LowestRate, HighestRate)
	case c.Burst < 0 || c.Burst > MaxBurst:
		return fmt.Errorf("ratelimit: burst %d: must be 1 to %d (0 takes 1)", c.Burst, MaxBurst)
	case c.MaxInflight < 0 || c.MaxInflight > MaxInflightCap:
		return fmt.Errorf("ratelimit: in-flight cap %d: must be 0 (no cap) or 1 to %d", c.MaxInflight, MaxInflightCap)
	case c.Key == "":
		return errors.New("ratelimit: no budget key")
	}
	return nil
}

// Close stops listening for freed slots.
func (l *Limiter) Close() {
	if l.stopSub != nil {
		l.stopSub()
	}
}

// Configured is the configured rate.
func (l *Limiter) Configured() float64 { return l.cfg.Rate }

// Effective is the fleet's effective rate as last seen by this limiter.
func (l *Limiter) Effective() float64 { return floatFrom(l.effective.Load()) }

func (l *Limiter) now() float64 {
	if l.cfg.Now == nil {
		return 0 // the script reads the Redis server's clock
	}
	return float64(l.cfg.Now().UnixMicro()) / 1000
}

// Reserve takes the next send slot of the rate budget and returns how long
// to wait for it. With no rate configured it returns 0.
func (l *Limiter) Reserve(ctx context.Context) (time.Duration, error) {
	if l.cfg.Rate == 0 {
		return 0, nil
	}
	ok := l.successes.Swap(0)
	c := l.cfg
	adaptive := "0"
	if c.Adaptive {
		adaptive = "1"
	}
	res, err := acquireScript.Run(ctx, l.rdb, []string{c.Key, l.learnedKey()}, l.now(), c.Rate, c.Burst, ok,
		c.IncreaseStep.Milliseconds(), c.Rate/100, c.Rate/500, adaptive, c.StartRate, c.GrowthFactor).Slice()
	if err != nil {
		l.successes.Add(ok) // count them next time
		return 0, fmt.Errorf("ratelimit: reserve: %w", err)
	}
	wait, ok2 := int64(0), len(res) == 2
	if ok2 {
		wait, ok2 = res[0].(int64)
	}
	if !ok2 {
		l.successes.Add(ok)
		return 0, fmt.Errorf("ratelimit: reserve: unexpected reply %v from the acquire script", res)
	}
	l.setEffective(res[1])
	return time.Duration(wait) * time.Microsecond, nil
}

// Acquire waits for a send slot and, with a cap, for an in-flight slot. It
// returns the time spent waiting and a release func to call when the call is
// over (always, even after an error of the call). It returns ctx's error if
// ctx ends first; the send slot is then lost, the in-flight one is not taken.
func (l *Limiter) Acquire(ctx context.Context) (waited time.Duration, release func(), err error) {
	start := time.Now()
	wait, err := l.Reserve(ctx)
	if err != nil {
		return time.Since(start), nil, err
	}
	if wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return time.Since(start), nil, ctx.Err()
		}
	}
	release, err = l.acquireInflight(ctx)
	return time.Since(start), release, err
}

// Observe reports an answer: successes are counted toward raising the rate;
// a pushback (rate limited) cuts it and, with Retry-After, pauses the fleet.
func (l *Limiter) Observe(ctx context.Context, res coze.Result) error {
	switch res.Class {
	case coze.ClassRateLimited:
		c := l.cfg
		unreported := l.successes.Swap(0)
		rate, err := pushbackScript.Run(ctx, l.rdb, []string{c.Key, l.learnedKey()}, l.now(), res.RetryAfter.Milliseconds(),
			c.CutFactor, c.MinRate, c.Cooldown.Milliseconds(), c.Rate, unreported).Text()
		if err != nil {
			l.successes.Add(unreported) // count them next time
			return fmt.Errorf("ratelimit: pushback: %w", err)
		}
		l.setEffective(rate)
	case coze.ClassDeleted, coze.ClassNotFound:
		l.successes.Add(1)
	}
	return nil
}

func (l *Limiter) setEffective(v any) {
	if s, ok := v.(string); ok {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			l.effective.Store(floatBits(f))
		}
	}
}

func (l *Limiter) channel() string { return keyspace.BudgetFreed(l.cfg.Key) }

// learnedKey holds the rate the budget learnt from its last pushback.
func (l *Limiter) learnedKey() string { return keyspace.BudgetLearned(l.cfg.Key) }

// Adaptive reports whether the budget discovers the API's limit.
func (l *Limiter) Adaptive() bool { return l.cfg.Adaptive }

// acquireInflight takes an in-flight slot. Only one goroutine of the
// process asks Redis at a time; it sleeps until a slot is announced freed
// (or 200 ms, for slots freed by an expired lease) between tries.
func (l *Limiter) acquireInflight(ctx context.Context) (func(), error) {
	if l.cfg.MaxInflight == 0 {
		return func() {}, nil
	}
	select {
	case l.head <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.head }()
	holder := l.holderTag + ":" + strconv.FormatInt(l.holderSeq.Add(1), 36)
	key := keyspace.BudgetInflight(l.cfg.Key)
	for {
		l.wakeMu.Lock()
		wake := l.wake
		l.wakeMu.Unlock()
		ok, err := inflightScript.Run(ctx, l.rdb, []string{key}, l.now(), l.cfg.MaxInflight, holder, l.cfg.Lease.Milliseconds()).Int()
		if err != nil {
			return nil, fmt.Errorf("ratelimit: in-flight slot: %w", err)
		}
		if ok == 1 {
			return func() { l.releaseInflight(key, holder) }, nil
		}
		timer := time.NewTimer(200 * time.Millisecond)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		timer.Stop()
	}
}

func (l *Limiter) releaseInflight(key, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := l.rdb.Pipeline()
	pipe.ZRem(ctx, key, holder)
	pipe.Publish(ctx, l.channel(), holder)
	_, _ = pipe.Exec(ctx) // if it fails, the lease frees the slot
}

// listen wakes the local waiter whenever a slot is freed anywhere.
func (l *Limiter) listen(ctx context.Context, sub *redis.PubSub) {
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			l.wakeMu.Lock()
			close(l.wake)
			l.wake = make(chan struct{})
			l.wakeMu.Unlock()
		}
	}
}

func floatBits(f float64) uint64 { return math.Float64bits(f) }
func floatFrom(b uint64) float64 { return math.Float64frombits(b) }
