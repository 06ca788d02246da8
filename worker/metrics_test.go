package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestMetricsEndpoint scrapes /metrics after a small run: every documented
// metric is there, and no label carries a conversation id or a log id.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := ids(30, 7400000000000000001)
	b.fake.Script(all[0], cozetest.InternalError)
	b.fake.Script(all[1], cozetest.NotFound)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("m")); err != nil {
		t.Fatal(err)
	}
	w := b.startWorker(t, b.fastConfig(t, nil))
	b.waitDrained(t, 30*time.Second)
	waitForBatch(t, b, "m", func(bt ledger.Batch) bool { return bt.Pending() == 0 && bt.Completions == 1 })

	rec := httptest.NewRecorder()
	w.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	for _, want := range []string{
		`coze_eraser_deletions_total{outcome="deleted"} 29`,
		`coze_eraser_deletions_total{outcome="not_found"} 1`,
		`coze_eraser_deletions_total{outcome="failed"} 0`,
		`coze_eraser_api_requests_total{class="transient",code="5000",profile="default"} 1`,
		`coze_eraser_api_requests_total{class="not_found",code="4002",profile="default"} 1`,
		`coze_eraser_api_request_duration_seconds_bucket{class="deleted"`,
		`coze_eraser_retries_total{reason="transient"} 1`,
		`coze_eraser_tasks_in_flight 0`,
		`coze_eraser_auth_paused{profile="default"} 0`,
		`coze_eraser_auth_pauses_total{profile="default"} 0`,
		`coze_eraser_rate_limit_pauses_total{profile="default"} 0`,
		`coze_eraser_queue_tasks{queue="default",state="pending"} 0`,
		`coze_eraser_queue_latency_seconds{queue="default"}`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	idLike := regexp.MustCompile(`\{[^}]*"(\d{6,}|[0-9A-F]{20,})"`)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "coze_eraser_") && idLike.MatchString(line) {
			t.Errorf("a label looks like an id: %s", line)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		rec := httptest.NewRecorder()
		w.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s = %d", path, rec.Code)
		}
	}
}

// TestReadyzFailsWithoutRedis: /readyz reports a lost Redis.
func TestReadyzFailsWithoutRedis(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.startWorker(t, b.fastConfig(t, nil))
	if code := readyz(w); code != http.StatusOK {
		t.Fatalf("/readyz = %d with Redis up", code)
	}
	b.redis.Kill()
	rec := httptest.NewRecorder()
	w.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "Redis") {
		t.Errorf("/readyz = %d %q with Redis down", rec.Code, rec.Body.String())
	}
	b.redis.Restart()
	waitFor(t, 10*time.Second, "readyz after Redis came back", func() bool { return readyz(w) == http.StatusOK })
}
