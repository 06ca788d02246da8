package report_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// BenchmarkProofMillionRows streams the CSV proof of a batch of 1,000,000
// finished ids and reports its time and the peak Go heap while it runs.
// Building the batch takes about a minute and is not timed. Run it with
//
//	go test -run '^$' -bench ProofMillionRows -benchtime 1x -timeout 30m ./report/
//
// With COZE_ERASER_BENCH_REDIS_URL set, the batch ("bench-1m") stays in that
// Redis, for timing the command itself:
//
//	/usr/bin/time -v coze-eraser report bench-1m --redis-url "$COZE_ERASER_BENCH_REDIS_URL" > /dev/null
func BenchmarkProofMillionRows(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("COZE_ERASER_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	rdb := redistest.ForBenchmark(b)
	led := ledger.New(rdb)
	ctx := context.Background()
	const batch = "bench-1m"
	if bt, ok, _ := led.Batch(ctx, batch); !ok || bt.Total != n || bt.Pending() != 0 {
		buildBatch(b, led, batch, n)
	}
	b.ResetTimer()
	for range b.N {
		var peak atomic.Uint64
		stop := sampleHeap(&peak)
		start := time.Now()
		if err := report.WriteProof(ctx, led, batch, "csv", io.Discard, time.Now()); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		stop()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	}
}

// sampleHeap records the largest heap in use every 5 ms until stopped.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func buildBatch(b *testing.B, led *ledger.Ledger, batch string, n int) {
	b.Helper()
	ctx := context.Background()
	adder, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: batch})
	if err != nil {
		b.Fatal(err)
	}
	ids := make(chan []string, 64)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range ids {
				if _, err := adder.Add(ctx, chunk); err != nil {
					b.Error(err)
					return
				}
				for _, id := range chunk {
					if _, err := led.Record(ctx, ledger.Attempt{ConversationID: id, Batch: batch, Outcome: ledger.Deleted,
						HasCode: true, LogID: fmt.Sprintf("20261127120000123%015X", len(id)), At: time.Now()}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	chunk := make([]string, 0, 256)
	for i := range n {
		chunk = append(chunk, strconv.FormatInt(7379996104798150001+int64(i)*7919, 10))
		if len(chunk) == 256 || i == n-1 {
			ids <- chunk
			chunk = make([]string, 0, 256)
		}
	}
	close(ids)
	wg.Wait()
	if _, err := adder.Seal(ctx); err != nil {
		b.Fatal(err)
	}
}
