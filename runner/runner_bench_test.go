package runner_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/runner"
	"github.com/coze-eraser/coze-eraser/worker"
)

// BenchmarkRun measures ids per second of a whole run (enqueue, work,
// record, to the last outcome) against a zero-latency fake, with the
// embedded Redis and with a real redis-server. Run it with
//
//	go test -run '^$' -bench Run -benchtime 3x ./runner/
func BenchmarkRun(b *testing.B) {
	const n = 20_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.FormatInt(7379996104798150001+int64(i)*13, 10)
	}
	b.Run("embedded", func(b *testing.B) {
		for i := range b.N {
			mini, err := miniredis.Run()
			if err != nil {
				b.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
			benchRun(b, rdb, ids, i)
			rdb.Close()
			mini.Close()
		}
	})
	b.Run("redis-server", func(b *testing.B) {
		srv := redistest.Start(b)
		for i := range b.N {
			opt, _ := redis.ParseURL(srv.URL)
			opt.PoolSize = 100
			rdb := redis.NewClient(opt)
			rdb.FlushAll(context.Background())
			benchRun(b, rdb, ids, i)
			rdb.Close()
		}
	})
}

func benchRun(b *testing.B, rdb *redis.Client, ids []string, i int) {
	b.Helper()
	fake := cozetest.NewServer(cozetest.WithoutCallLog())
	defer fake.Close()
	api, err := coze.NewClient(fake.URL, coze.StaticToken("pat_bench"))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	p, err := runner.Run(context.Background(), runner.Config{
		Redis: rdb,
		Batch: "bench-" + strconv.Itoa(i),
		Worker: worker.Config{
			API:             api,
			Concurrency:     50,
			PollInterval:    200 * time.Millisecond,
			ForwardInterval: time.Second,
			Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
	}, runner.Input{IDs: slices.Values(ids)})
	if err != nil {
		b.Fatal(err)
	}
	if p.Batch.Deleted != len(ids) {
		b.Fatalf("%+v", p.Batch)
	}
	b.ReportMetric(float64(len(ids))/time.Since(start).Seconds(), "ids/s")
}
