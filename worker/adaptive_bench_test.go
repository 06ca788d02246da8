package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ratelimit"
)

// BenchmarkAdaptiveRate is issue 12's first acceptance point: one worker
// of concurrency 20 (what `run` starts) with the budget `run` and `worker`
// get when no --rate is given, against a fake that answers 429 above
// 20, 100, 300 and 500 calls a second. Each limit is worked for 60 s; then
// a second worker on the same Redis shows the rate it starts at. Run it
// with
//
//	go test -run '^$' -bench AdaptiveRate -benchtime 1x -timeout 20m -v ./worker/
func BenchmarkAdaptiveRate(b *testing.B) {
	for _, limit := range []float64{20, 100, 300, 500} {
		b.Run(fmt.Sprintf("limit%.0f", limit), func(b *testing.B) {
			for range b.N {
				runAdaptiveScenario(b, limit, 60*time.Second)
			}
		})
	}
}

func runAdaptiveScenario(b *testing.B, limit float64, length time.Duration) {
	b.Helper()
	bb := setup(b, cozetest.WithoutCallLog(), cozetest.WithLatency(5*time.Millisecond))
	n := int(limit*length.Seconds()*1.5) + 2000
	if _, err := bb.enqueue.EnqueueAll(context.Background(), slices.Values(ids(n, 8300000000000000001)), enqueue.Batch("load")); err != nil {
		b.Fatal(err)
	}
	bb.fake.SetRateLimit(limit, max(int(limit/10), 1))
	cfg := ratelimit.Config{Adaptive: true}
	f := bb.startFleet(b, 1, 20, cfg)
	start := time.Now()
	var samples []sample
	prev := bb.fake.Counts()
	reached := time.Duration(-1)
	for second := 1; second <= int(length/time.Second); second++ {
		time.Sleep(time.Until(start.Add(time.Duration(second) * time.Second)))
		now := bb.fake.Counts()
		s := sample{second: second, limit: limit, accepted: now["deleted"] - prev["deleted"],
			limited: now["limit"] - prev["limit"], effective: f.limiters[0].Effective()}
		samples = append(samples, s)
		prev = now
		if reached < 0 && float64(s.accepted) >= 0.9*limit {
			reached = time.Duration(second) * time.Second
		}
	}
	for _, s := range f.servers {
		s.Shutdown()
	}
	// The next run on the same Redis, API and token.
	again := bb.startFleet(b, 1, 20, cfg)
	time.Sleep(time.Second)
	startsAt := again.limiters[0].Effective()

	var accepted, limited int64
	for _, s := range samples {
		accepted += s.accepted
		limited += s.limited
	}
	share429 := 100 * float64(limited) / float64(accepted+limited)
	b.ReportMetric(float64(accepted)/float64(len(samples))/limit*100, "%of-limit")
	b.ReportMetric(reached.Seconds(), "s-to-90%")
	b.ReportMetric(share429, "%429")
	b.ReportMetric(startsAt, "next-run-starts-at/s")
	var table strings.Builder
	fmt.Fprintf(&table, "limit %.0f/s, no --rate: reached 90%% after %v; %.2f%% 429s over %d s; a second run starts at %.1f/s\n",
		limit, reached, share429, len(samples), startsAt)
	for _, s := range samples {
		if s.second <= 20 || s.second%10 == 0 {
			fmt.Fprintf(&table, "%3ds accepted=%3d 429=%3d effective=%6.1f\n", s.second, s.accepted, s.limited, s.effective)
		}
	}
	b.Log("\n" + table.String())
}
