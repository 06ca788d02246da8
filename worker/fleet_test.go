package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ratelimit"
	"github.com/coze-eraser/coze-eraser/worker"
)

// fleet is three worker processes' worth of servers, each with its own
// Redis client and limiter, sharing one Redis and one budget.
type fleet struct {
	servers  []*worker.Server
	limiters []*ratelimit.Limiter
}

func (b *bundle) startFleet(t testing.TB, n, concurrency int, limit ratelimit.Config) *fleet {
	t.Helper()
	f := &fleet{}
	key := ratelimit.BudgetKey("coze-eraser:", b.fake.URL, b.token)
	for range n {
		opt, err := redis.ParseURL(b.redis.URL)
		if err != nil {
			t.Fatal(err)
		}
		opt.PoolSize = concurrency + 10
		rdb := redis.NewClient(opt)
		t.Cleanup(func() { rdb.Close() })
		cfg := limit
		cfg.Key = key
		l, err := ratelimit.New(rdb, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		api, err := coze.NewClient(b.fake.URL, coze.StaticToken(b.token), coze.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(worker.Config{
			Redis:           rdb,
			API:             api,
			Concurrency:     concurrency,
			Limiter:         l,
			RetryBackoff:    worker.Backoff{Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond},
			ShutdownTimeout: 2 * time.Second,
			PollInterval:    20 * time.Millisecond,
			ForwardInterval: 50 * time.Millisecond,
			Logger:          discardLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Shutdown)
		f.servers = append(f.servers, w)
		f.limiters = append(f.limiters, l)
	}
	return f
}

// TestMaxInflightAcrossTheFleet is issue 4's fourth acceptance point: with
// --max-inflight 5, three workers of concurrency 20 against a slow fake
// never have more than 5 calls in flight at the fake.
func TestMaxInflightAcrossTheFleet(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithLatency(100*time.Millisecond))
	all := ids(150, 8000000000000000001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("cap")); err != nil {
		t.Fatal(err)
	}
	b.startFleet(t, 3, 20, ratelimit.Config{MaxInflight: 5})
	waitFor(t, time.Minute, "the batch", func() bool {
		bt, _, _ := b.ledger.Batch(b.ctx, "cap")
		return bt.Pending() == 0
	})
	if got := b.fake.MaxInFlight(); got > 5 || got < 4 {
		t.Errorf("at most %d calls in flight at the fake, want 5 (at most 5, and the cap used)", got)
	}
	if bt, _, _ := b.ledger.Batch(b.ctx, "cap"); bt.Deleted != len(all) {
		t.Errorf("%+v", bt)
	}
}

// TestFleetSharesOneRate: three workers with --rate 50 against an
// unlimited fake send about 50 calls a second between them, not 150.
func TestFleetSharesOneRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := ids(400, 8100000000000000001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("shared")); err != nil {
		t.Fatal(err)
	}
	f := b.startFleet(t, 3, 10, ratelimit.Config{Rate: 50})
	waitFor(t, 5*time.Second, "the first calls", func() bool { return b.fake.Counts()["total"] > 0 })
	// Time the next 100 calls: two seconds at 50 calls/s between the
	// workers, two-thirds of one if each used the whole rate.
	start, before := time.Now(), b.fake.Counts()["total"]
	var calls int64
	waitFor(t, 10*time.Second, "100 more calls", func() bool {
		calls = b.fake.Counts()["total"] - before
		return calls >= 100
	})
	rate := float64(calls) / time.Since(start).Seconds()
	if rate < 40 || rate > 60 {
		t.Errorf("the fleet sent %.1f calls/s with --rate 50", rate)
	}
	rec := httptest.NewRecorder()
	f.servers[0].HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`coze_eraser_rate_limit_configured_requests_per_second{profile="default"} 50`,
		`coze_eraser_rate_limit_effective_requests_per_second{profile="default"} 50`,
		`coze_eraser_rate_limit_wait_seconds_bucket{profile="default",le="0.1"}`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// BenchmarkFleetRateLimit runs issue 4's scenarios: three workers sharing
// one Redis, against a fake that answers 429 above its limit. Each takes
// 60 seconds; run them with
//
//	go test -run '^$' -bench FleetRateLimit -benchtime 1x -timeout 20m -v ./worker/
func BenchmarkFleetRateLimit(b *testing.B) {
	b.Run("limit300/rate300", func(b *testing.B) {
		for range b.N {
			runFleetScenario(b, 300, []phase{{limit: 300, length: 60 * time.Second}})
		}
	})
	b.Run("limit300/rate1000", func(b *testing.B) {
		for range b.N {
			runFleetScenario(b, 1000, []phase{{limit: 300, length: 60 * time.Second}})
		}
	})
	b.Run("limit300-150-300/rate300", func(b *testing.B) {
		for range b.N {
			runFleetScenario(b, 300, []phase{
				{limit: 300, length: 20 * time.Second},
				{limit: 150, length: 20 * time.Second},
				{limit: 300, length: 20 * time.Second},
			})
		}
	})
}

type phase struct {
	limit  float64
	length time.Duration
}

// sample is one second of a scenario.
type sample struct {
	second            int
	limit             float64
	accepted, limited int64
	effective         float64
}

func runFleetScenario(b *testing.B, rate float64, phases []phase) {
	b.Helper()
	bb := setup(b, cozetest.WithoutCallLog(), cozetest.WithLatency(5*time.Millisecond))
	var total time.Duration
	for _, p := range phases {
		total += p.length
	}
	n := int(rate*total.Seconds()*1.2) + 5000
	if _, err := bb.enqueue.EnqueueAll(context.Background(), slices.Values(ids(n, 8200000000000000001)), enqueue.Batch("load")); err != nil {
		b.Fatal(err)
	}
	bb.fake.SetRateLimit(phases[0].limit, int(phases[0].limit/10))
	f := bb.startFleet(b, 3, 20, ratelimit.Config{Rate: rate})

	// Warm up for two seconds, then sample every second: these waits are
	// the benchmark's clock, not waits for an event.
	time.Sleep(2 * time.Second)
	var samples []sample
	prev := bb.fake.Counts()
	second := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for _, p := range phases {
		bb.fake.SetRateLimit(p.limit, int(p.limit/10))
		for range int(p.length / time.Second) {
			<-tick.C
			now := bb.fake.Counts()
			second++
			samples = append(samples, sample{
				second:    second,
				limit:     p.limit,
				accepted:  now["deleted"] - prev["deleted"],
				limited:   now["limit"] - prev["limit"],
				effective: f.limiters[0].Effective(),
			})
			prev = now
		}
	}
	reportFleet(b, rate, phases, samples)
}

func reportFleet(b *testing.B, rate float64, phases []phase, samples []sample) {
	var accepted, limited int64
	for _, s := range samples {
		accepted += s.accepted
		limited += s.limited
	}
	achieved := float64(accepted) / float64(len(samples))
	share429 := 100 * float64(limited) / float64(accepted+limited)
	b.ReportMetric(achieved, "accepted/s")
	b.ReportMetric(100*achieved/phases[0].limit, "%of-limit")
	b.ReportMetric(share429, "%429")
	var table strings.Builder
	fmt.Fprintf(&table, "--rate %.0f; per second: limit, accepted, 429s, effective rate\n", rate)
	for _, s := range samples {
		fmt.Fprintf(&table, "%3ds limit=%3.0f accepted=%3d 429=%3d effective=%6.1f %s\n", s.second, s.limit, s.accepted, s.limited,
			s.effective, strings.Repeat("#", int(s.accepted/10)))
	}
	if len(phases) > 1 {
		for i := 1; i < len(phases); i++ {
			fmt.Fprintf(&table, "phase %d (limit %.0f): effective rate within 10%% of the limit after %s\n",
				i+1, phases[i].limit, followTime(samples, phases, i))
		}
	}
	b.Log("\n" + table.String())
}

// followTime is how long after phase i began the effective rate came within
// 10% of the new limit (from above when it fell, from below when it rose).
func followTime(samples []sample, phases []phase, i int) string {
	start := 0
	for _, p := range phases[:i] {
		start += int(p.length / time.Second)
	}
	limit := phases[i].limit
	for _, s := range samples[start:] {
		if s.effective <= limit*1.1 && s.effective >= limit*0.9 {
			return fmt.Sprintf("%ds", s.second-start)
		}
	}
	return "never"
}
