package ledger_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// BenchmarkRecordMemory measures Redis memory per id of a batch, pending and
// finished (deleted, with a 32-character log id), over 100,000 ids, with
// INFO memory before and after. Run it with
//
//	go test -run '^$' -bench RecordMemory -benchtime 1x ./ledger/
func BenchmarkRecordMemory(b *testing.B) {
	const n = 100_000
	for range b.N {
		rdb := redistest.ForBenchmark(b)
		ctx := context.Background()
		led := ledger.New(rdb)
		batch := "mem-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		adder, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: batch})
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = strconv.FormatInt(7379996104798150001+int64(i)*7919, 10)
		}
		base := usedMemory(b, rdb)
		for i := 0; i < n; i += 256 {
			if _, err := adder.Add(ctx, ids[i:min(i+256, n)]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := adder.Seal(ctx); err != nil {
			b.Fatal(err)
		}
		pending := usedMemory(b, rdb)
		recordAll(b, led, batch, ids)
		finished := usedMemory(b, rdb)
		b.ReportMetric(float64(pending-base)/n, "B/pending-id")
		b.ReportMetric(float64(finished-base)/n, "B/finished-id")
	}
}

// recordAll records every id deleted, from 32 goroutines.
func recordAll(b *testing.B, led *ledger.Ledger, batch string, ids []string) {
	b.Helper()
	var wg sync.WaitGroup
	work := make(chan string, 1024)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				logID := "20261127120000123" + fmt.Sprintf("%015X", len(id)*7+int(id[len(id)-1]))
				if _, err := led.Record(context.Background(), ledger.Attempt{
					ConversationID: id, Batch: batch, Outcome: ledger.Deleted, HasCode: true, LogID: logID, At: time.Now(),
				}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

func usedMemory(b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}
