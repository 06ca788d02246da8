package worker_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/worker"
)

// endpointBound is what a test allows an endpoint while Redis hangs: twice
// the design target of 1 s, for loaded CI machines.
const endpointBound = 2 * time.Second

// TestEndpointsAnswerWhileRedisHangs: with redis-server suspended (SIGSTOP),
// /healthz, /readyz and /metrics answer within the bound; /metrics keeps the
// Redis-backed gauges' last values and says how old they are, and /readyz
// is 503 naming Redis.
func TestEndpointsAnswerWhileRedisHangs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := ids(5, 7400000000000200001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("hang")); err != nil {
		t.Fatal(err)
	}
	w := b.startWorker(t, b.fastConfig(t, nil))
	b.waitDrained(t, 30*time.Second)
	waitForBatch(t, b, "hang", func(bt ledger.Batch) bool { return bt.Pending() == 0 && bt.Completions == 1 })
	before := get(t, w, "/metrics")
	for _, want := range []string{`coze_eraser_batches{state="complete"} 1`,
		`coze_eraser_queue_tasks{queue="default",state="pending"} 0`} {
		if !strings.Contains(before.body, want) {
			t.Fatalf("/metrics with Redis up lacks %s", want)
		}
	}

	b.redis.Stop()
	defer b.redis.Continue() // before the worker's shutdown, which needs Redis
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		r := get(t, w, path)
		t.Logf("%s answered in %v with Redis stopped", path, r.took)
		if r.took > endpointBound {
			t.Errorf("%s took %v with Redis stopped; want under %v (target 1s)", path, r.took, endpointBound)
		}
	}
	if r := get(t, w, "/readyz"); r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "Redis") {
		t.Errorf("/readyz = %d %q with Redis stopped; want 503 naming Redis", r.code, r.body)
	}
	first := get(t, w, "/metrics")
	for _, want := range []string{`coze_eraser_batches{state="complete"} 1`,
		`coze_eraser_queue_tasks{queue="default",state="pending"} 0`, `coze_eraser_deletions_total{outcome="deleted"} 5`} {
		if !strings.Contains(first.body, want) {
			t.Errorf("/metrics with Redis stopped lacks the last value %s", want)
		}
	}
	age0 := metricValue(t, first.body, "coze_eraser_redis_gauges_age_seconds")
	waitFor(t, 10*time.Second, "the snapshot's age to grow", func() bool {
		return metricValue(t, get(t, w, "/metrics").body, "coze_eraser_redis_gauges_age_seconds") >= age0+1
	})

	b.redis.Continue()
	waitFor(t, 10*time.Second, "readyz after Redis resumed", func() bool { return readyz(w) == http.StatusOK })
	waitFor(t, 10*time.Second, "a fresh snapshot after Redis resumed", func() bool {
		return metricValue(t, get(t, w, "/metrics").body, "coze_eraser_redis_gauges_age_seconds") < 1
	})
}

type answer struct {
	code int
	body string
	took time.Duration
}

func get(t *testing.T, w *worker.Server, path string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	start := time.Now()
	w.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return answer{code: rec.Code, body: rec.Body.String(), took: time.Since(start)}
}

// metricValue returns the value of an unlabelled series in a scrape.
func metricValue(t *testing.T, scrape, name string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(scrape))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
}

// TestWorkerLogsRedisOutage: the worker logs a Redis that stops answering
// at once, not again while it lasts (the next reminder is 30 s later), and
// logs when it answers again; for a hung Redis and for a dead one.
func TestWorkerLogsRedisOutage(t *testing.T) {
	t.Parallel()
	for name, outage := range map[string]func(*bundle) (end func()){
		"hung": func(b *bundle) func() { b.redis.Stop(); return b.redis.Continue },
		"dead": func(b *bundle) func() { b.redis.Kill(); return b.redis.Restart },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.startWorker(t, b.fastConfig(t, nil))
			down := func() int { return strings.Count(b.logs.String(), "Redis is not answering") }
			start := time.Now()
			end := outage(b)
			defer end()
			waitFor(t, 10*time.Second, "the outage to be logged", func() bool { return down() > 0 })
			t.Logf("%s Redis logged after %v", name, time.Since(start))
			if took := time.Since(start); took > endpointBound+time.Second {
				t.Errorf("the outage was logged after %v; want within about 1s", took)
			}
			// Several checks go by: none logs the outage again.
			seen := time.Now()
			waitFor(t, 10*time.Second, "three more checks", func() bool { return time.Since(seen) > 3*time.Second })
			if n := down(); n != 1 {
				t.Errorf("the outage was logged %d times in its first seconds; want once:\n%s", n, b.logs.String())
			}
			end()
			waitFor(t, 15*time.Second, "the recovery to be logged", func() bool {
				return strings.Contains(b.logs.String(), "Redis answers again")
			})
		})
	}
}

// TestShutdownStopsRedisGoroutines: the gauges' reader and the outage log
// end with the worker, a hung Redis's included. Not parallel: it reads every
// goroutine's stack.
func TestShutdownStopsRedisGoroutines(t *testing.T) {
	b := setup(t)
	w := b.startWorker(t, b.fastConfig(t, nil))
	waitFor(t, 10*time.Second, "the worker's two Redis goroutines", func() bool { return redisGoroutines() == 2 })
	get(t, w, "/metrics")
	b.redis.Stop()
	get(t, w, "/metrics") // a read is in flight when the worker stops
	b.redis.Continue()
	w.Shutdown()
	if n := redisGoroutines(); n != 0 {
		t.Errorf("%d of the worker's Redis goroutines outlive its shutdown", n)
	}
}

func redisGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := string(buf)
	return strings.Count(stacks, "worker.(*redisGauges).run(") + strings.Count(stacks, "worker.(*redisWatch).run(")
}
