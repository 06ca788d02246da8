package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ratelimit"
)

// drive simulates a fleet that always has work: it takes every slot the
// budget gives, as soon as it is due, for d of the clock, and reports each
// call as answered with class. It returns the calls made.
func drive(t *testing.T, l *ratelimit.Limiter, clk *clock, d time.Duration, class func() coze.Class) int {
	t.Helper()
	ctx := context.Background()
	end := clk.Now().Add(d)
	calls := 0
	for clk.Now().Before(end) {
		wait, err := l.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(wait)
		calls++
		if err := l.Observe(ctx, coze.Result{Class: class()}); err != nil {
			t.Fatal(err)
		}
	}
	return calls
}

// TestAdaptiveBudgetFindsTheLimit: with no rate given, the budget starts
// low, grows while every slot is taken and calls succeed, and after the
// API's first pushback settles near what the API accepts.
func TestAdaptiveBudgetFindsTheLimit(t *testing.T) {
	t.Parallel()
	l, clk := setup(t, ratelimit.Config{Adaptive: true})
	if got := l.Effective(); got != 20 {
		t.Fatalf("starts at %v, want the start rate 20", got)
	}
	ok := func() coze.Class { return coze.ClassDeleted }
	drive(t, l, clk, 5*time.Second, ok)
	if got := l.Effective(); got < 160 {
		t.Fatalf("after 5 s of successes the rate is %v; want it doubled each second, past 160", got)
	}
	// The API accepts 300/s from now on: a token bucket over the clock.
	const limit = 300.0
	tokens, last := limit/10, clk.Now()
	api := func() coze.Class {
		now := clk.Now()
		tokens = min(limit/10, tokens+now.Sub(last).Seconds()*limit)
		last = now
		if tokens < 1 {
			return coze.ClassRateLimited
		}
		tokens--
		return coze.ClassDeleted
	}
	drive(t, l, clk, 10*time.Second, api)
	if got := l.Effective(); got < 0.8*limit || got > 1.2*limit {
		t.Errorf("after 10 s against a 300/s limit the rate is %v", got)
	}
}

// TestAdaptiveBudgetRemembersWhatItLearnt: the next run on the same API and
// token starts at the rate the last pushback left, not at the start rate.
func TestAdaptiveBudgetRemembersWhatItLearnt(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clk := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	cfg := ratelimit.Config{Adaptive: true, Key: "test:learn", Now: clk.Now}
	first, err := ratelimit.New(srv.Client(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	drive(t, first, clk, 2*time.Second, func() coze.Class { return coze.ClassDeleted })
	_ = first.Observe(context.Background(), coze.Result{Class: coze.ClassRateLimited})
	learnt := first.Effective()
	// The budget's state expires an hour after the last call; what it
	// learnt stays.
	srv.Client().Del(context.Background(), "test:learn")
	second, err := ratelimit.New(srv.Client(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := second.Reserve(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The pushback cut to 90% of what the API accepted; the next run
	// starts at 95% of it.
	if got := second.Effective(); got < learnt || got > 1.1*learnt || got <= 20 {
		t.Errorf("the next run starts at %v; want just above the cut %v", got, learnt)
	}
}

// TestAdaptiveBudgetRespectsItsCeiling: --rate N caps what it discovers.
func TestAdaptiveBudgetRespectsItsCeiling(t *testing.T) {
	t.Parallel()
	l, clk := setup(t, ratelimit.Config{Adaptive: true, Rate: 40})
	drive(t, l, clk, 5*time.Second, func() coze.Class { return coze.ClassDeleted })
	if got := l.Effective(); got != 40 {
		t.Errorf("rate %v; want the ceiling 40", got)
	}
}
