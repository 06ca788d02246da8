package redistest

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchURLEnv names a Redis URL that benchmarks use instead of starting a
// redis-server of their own, so that the data they build can be inspected
// (or read by the command line) afterwards. Point it at a Redis you can
// flush: benchmarks write to it.
const BenchURLEnv = "COZE_ERASER_BENCH_REDIS_URL"

// ForBenchmark returns a client for the Redis of $COZE_ERASER_BENCH_REDIS_URL
// when set, else for a new redis-server of the benchmark's own.
func ForBenchmark(b *testing.B) *redis.Client {
	b.Helper()
	if url := os.Getenv(BenchURLEnv); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			b.Fatalf("%s: %v", BenchURLEnv, err)
		}
		c := redis.NewClient(opt)
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	return Start(b).Client()
}
