package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coze-eraser/coze-eraser/callback"
)

// callbackDeliveries reads coze_eraser_callback_deliveries_total by result
// from reg; absent series read as zero.
func callbackDeliveries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "coze_eraser_callback_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// queueCallback puts a delivery on the callback queue as the janitor would.
func (b *bundle) queueCallback(t *testing.T, d callback.Delivery) {
	t.Helper()
	task, err := callback.NewTask(d)
	if err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClientFromRedisClient(b.rdb)
	t.Cleanup(func() { c.Close() })
	if _, err := c.EnqueueContext(b.ctx, task); err != nil {
		t.Fatal(err)
	}
}

// TestCallbackFailuresAreLoggedAndCounted: a receiver that answers after
// the client's timeout is retried, each failed attempt leaves a log line
// (batch, attempt, reason, URL without its query) and counts in
// coze_eraser_callback_deliveries_total, and the delivery that succeeds is
// counted once.
func TestCallbackFailuresAreLoggedAndCounted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	attempts := 0
	done := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body: only then does the server notice the client
		// hanging up, and cancel r's context.
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		attempts++
		n := attempts
		mu.Unlock()
		if n <= 2 {
			select { // too slow: the client gives up first
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	t.Cleanup(func() { close(done) }) // runs first: frees a stuck handler
	cfg := b.fastConfig(t, nil)
	cfg.Registry = prometheus.NewRegistry()
	cfg.CallbackClient = &http.Client{Timeout: 100 * time.Millisecond}
	b.startWorker(t, cfg)
	b.queueCallback(t, callback.Delivery{URL: receiver.URL + "/hook?token=qs3cret",
		Summary: callback.Summary{Batch: "cb-slow", Completion: 1, Total: 1, Deleted: 1}})

	waitFor(t, 30*time.Second, "a delivered callback", func() bool {
		return callbackDeliveries(t, cfg.Registry)["delivered"] == 1
	})
	if got := callbackDeliveries(t, cfg.Registry); got["timeout"] != 2 || got["connection"] != 0 || got["redirect"] != 0 {
		t.Errorf("deliveries by result %v, want 2 timeouts and 1 delivered", got)
	}
	logs := b.logs.String()
	var failures []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "callback delivery failed") {
			failures = append(failures, line)
		}
	}
	if len(failures) != 2 {
		t.Fatalf("%d failure log lines, want 2:\n%s", len(failures), logs)
	}
	for i, line := range failures {
		for _, want := range []string{`"batch":"cb-slow"`, `"reason":"timeout"`, `"url":"` + receiver.URL + `/hook?…"`,
			`"attempt":` + string(rune('1'+i))} {
			if !strings.Contains(line, want) {
				t.Errorf("log line %d %s lacks %s", i+1, line, want)
			}
		}
	}
	if strings.Contains(logs, "qs3cret") {
		t.Error("the callback URL's query is in the logs")
	}
}

// TestCallbackCredentialsStayOutOfTaskErrors: a delivery queued before
// userinfo was refused at enqueue fails without its password reaching the
// task's stored error (which asynq's tools show) or the logs.
func TestCallbackCredentialsStayOutOfTaskErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "try later", http.StatusServiceUnavailable)
	}))
	t.Cleanup(receiver.Close)
	cfg := b.fastConfig(t, nil)
	cfg.Registry = prometheus.NewRegistry()
	b.startWorker(t, cfg)
	d := callback.Delivery{URL: strings.Replace(receiver.URL, "http://", "http://alice:hunter2@", 1) + "/hook",
		Summary: callback.Summary{Batch: "cb-cred", Completion: 1}}
	b.queueCallback(t, d)

	var lastErr string
	waitFor(t, 30*time.Second, "a failed attempt", func() bool {
		info, err := b.inspector.GetTaskInfo(callback.Queue, "cb:"+d.Summary.IdempotencyKey())
		if err != nil || info.Retried == 0 {
			return false
		}
		lastErr = info.LastErr
		return true
	})
	if !strings.Contains(lastErr, "HTTP 503") || strings.Contains(lastErr, "hunter2") || strings.Contains(lastErr, "alice") {
		t.Errorf("stored task error %q: want HTTP 503 and no credential", lastErr)
	}
	waitFor(t, 30*time.Second, "a failure log line", func() bool {
		return strings.Contains(b.logs.String(), "callback delivery failed")
	})
	if logs := b.logs.String(); strings.Contains(logs, "hunter2") {
		t.Errorf("the password is in the logs:\n%s", logs)
	}
	if got := callbackDeliveries(t, cfg.Registry)["http_status"]; got < 1 {
		t.Errorf("http_status failures counted %v, want at least 1", got)
	}
}
