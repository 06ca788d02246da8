package ratelimit_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ratelimit"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// setup returns a limiter on a fresh Redis with an injected clock.
func setup(t *testing.T, cfg ratelimit.Config) (*ratelimit.Limiter, *clock) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	cfg.Key = "test:budget"
	cfg.Now = clk.Now
	l, err := ratelimit.New(redistest.Start(t).Client(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, clk
}

func reserve(t *testing.T, l *ratelimit.Limiter) time.Duration {
	t.Helper()
	d, err := l.Reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGCRASpacesReservations(t *testing.T) {
	t.Parallel()
	l, clk := setup(t, ratelimit.Config{Rate: 10})
	for i, want := range []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond} {
		if got := reserve(t, l); got != want {
			t.Errorf("reservation %d waits %v, want %v", i, got, want)
		}
	}
	clk.Advance(time.Second)
	if got := reserve(t, l); got != 0 {
		t.Errorf("after a quiet second: wait %v, want 0", got)
	}
}

func TestGCRABurst(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, ratelimit.Config{Rate: 10, Burst: 3})
	var waits []time.Duration
	for range 5 {
		waits = append(waits, reserve(t, l))
	}
	want := []time.Duration{0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("waits %v, want %v", waits, want)
			break
		}
	}
}

func TestPushbackCutsToWhatWasAccepted(t *testing.T) {
	t.Parallel()
	l, clk := setup(t, ratelimit.Config{Rate: 100})
	ctx := context.Background()
	reserve(t, l)
	// 50 successes over one second: the API accepted 50/s.
	for range 50 {
		_ = l.Observe(ctx, coze.Result{Class: coze.ClassDeleted})
	}
	clk.Advance(time.Second)
	reserve(t, l)
	limited := coze.Result{Class: coze.ClassRateLimited}
	if err := l.Observe(ctx, limited); err != nil {
		t.Fatal(err)
	}
	if got := l.Effective(); got != 45 {
		t.Errorf("after a 429: %.2f/s, want 0.9 x 50 accepted = 45", got)
	}
	clk.Advance(100 * time.Millisecond)
	_ = l.Observe(ctx, limited)
	if got := l.Effective(); got != 45 {
		t.Errorf("a second 429 within the cooldown cut again: %.2f", got)
	}
	clk.Advance(time.Second)
	_ = l.Observe(ctx, limited)
	if got := l.Effective(); got > 45*0.9+0.01 {
		t.Errorf("after the cooldown: %.2f, want another cut", got)
	}
	for range 1000 {
		_ = l.Observe(ctx, limited)
		clk.Advance(time.Second)
	}
	if got := l.Effective(); got != 1 {
		t.Errorf("many cuts: %.2f, want the floor 1 (rate/100)", got)
	}
}

func TestSuccessesRaiseTheRateBack(t *testing.T) {
	t.Parallel()
	l, clk := setup(t, ratelimit.Config{Rate: 100})
	ctx := context.Background()
	reserve(t, l)
	for range 50 {
		_ = l.Observe(ctx, coze.Result{Class: coze.ClassDeleted})
	}
	clk.Advance(time.Second)
	reserve(t, l)
	_ = l.Observe(ctx, coze.Result{Class: coze.ClassRateLimited}) // 45/s, ceiling 50
	var rates []float64
	for range 40 {
		clk.Advance(250 * time.Millisecond)
		_ = l.Observe(ctx, coze.Result{Class: coze.ClassDeleted})
		reserve(t, l)
		rates = append(rates, l.Effective())
	}
	// Fast (1, 2, 3 ... per step) up to the ceiling of 50, then a probe
	// that grows by 0.2 x steps, up to the configured 100.
	if rates[0] != 46 || rates[1] != 48 || rates[2] != 50 {
		t.Errorf("fast phase %v, want 46 48 50", rates[:3])
	}
	if rates[3] != 50.8 {
		t.Errorf("first probe step %v, want 50.8 (0.2 x 4)", rates[3])
	}
	if last := rates[len(rates)-1]; last != 100 {
		t.Errorf("after 10 s of successes: %.1f/s, want back at 100; %v", last, rates)
	}
	for i := 1; i < len(rates); i++ {
		if rates[i] < rates[i-1] {
			t.Fatalf("the rate fell without a 429: %v", rates)
		}
	}
}

func TestRetryAfterPausesTheBudget(t *testing.T) {
	t.Parallel()
	l, clk := setup(t, ratelimit.Config{Rate: 1000})
	reserve(t, l)
	_ = l.Observe(context.Background(), coze.Result{Class: coze.ClassRateLimited, RetryAfter: 3 * time.Second})
	if got := reserve(t, l); got < 3*time.Second || got > 3*time.Second+10*time.Millisecond {
		t.Errorf("wait after Retry-After 3s: %v", got)
	}
	clk.Advance(4 * time.Second)
	if got := reserve(t, l); got > 10*time.Millisecond {
		t.Errorf("after the pause: %v", got)
	}
}

func TestChangingTheConfiguredRateResets(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	mk := func(rate float64) *ratelimit.Limiter {
		l, err := ratelimit.New(srv.Client(), ratelimit.Config{Rate: rate, Key: "k", Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := mk(100)
	reserve(t, a)
	_ = a.Observe(context.Background(), coze.Result{Class: coze.ClassRateLimited})
	b := mk(200)
	reserve(t, b)
	if got := b.Effective(); got != 200 {
		t.Errorf("a fleet restarted with --rate 200 runs at %.1f", got)
	}
}

func TestBudgetKeyHidesTheToken(t *testing.T) {
	t.Parallel()
	k1 := ratelimit.BudgetKey("p:", "https://api.coze.cn", "pat_secret_one")
	k2 := ratelimit.BudgetKey("p:", "https://api.coze.cn", "pat_secret_two")
	k3 := ratelimit.BudgetKey("p:", "https://api.coze.com", "pat_secret_one")
	if strings.Contains(k1, "secret") || k1 == k2 || k1 == k3 || !strings.HasPrefix(k1, "p:budget:") {
		t.Errorf("keys %s %s %s", k1, k2, k3)
	}
}

// TestInflightCap: the third caller waits until a slot is released, and is
// woken by the release, not by its 200 ms fallback.
func TestInflightCap(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	newLimiter := func() *ratelimit.Limiter {
		l, err := ratelimit.New(srv.Client(), ratelimit.Config{MaxInflight: 2, Key: "cap"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		return l
	}
	a, b := newLimiter(), newLimiter() // two processes
	ctx := context.Background()
	_, release1, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, release2, _ := b.Acquire(ctx)
	admin := srv.Client()
	waitUntil(t, "both limiters to listen for freed slots", func() bool { return subscribers(t, admin) == 2 })
	runs := scriptRuns(t, admin) // the refused tries below each run the script

	got := make(chan time.Duration, 1)
	go func() {
		waited, release3, err := b.Acquire(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		release3()
		got <- waited
	}()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := a.Acquire(short); err == nil {
		t.Fatal("a third slot was granted with a cap of 2")
	}
	// The third caller's try and the waiter's have been refused: the waiter
	// now waits for an announcement (or its fallback).
	waitUntil(t, "the waiter to try for a slot", func() bool { return scriptRuns(t, admin) >= runs+2 })
	start := time.Now()
	release1()
	select {
	case <-got:
		if d := time.Since(start); d > 150*time.Millisecond {
			t.Errorf("woken %v after the release; the announcement should wake it", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the waiter was not woken")
	}
	release2()
}

// subscribers is how many subscriptions the server has, over all channels.
func subscribers(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	ctx := context.Background()
	channels, err := rdb.PubSubChannels(ctx, "*").Result()
	if err != nil || len(channels) == 0 {
		return 0
	}
	counts, err := rdb.PubSubNumSub(ctx, channels...).Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range counts {
		n += c
	}
	return n
}

// scriptRuns is how many times the server has run a script by its hash:
// every slot request runs the in-flight script once (EVALSHA first).
func scriptRuns(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// waitUntil fails t when cond is still false after ten seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
