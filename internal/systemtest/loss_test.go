package systemtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// callbackCounter is a receiver that counts the callbacks it gets.
func callbackCounter(t *testing.T) (url string, count *atomic.Int64) {
	t.Helper()
	count = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/done", count
}

// TestRunStopsWhenRedisRestartsEmpty: Redis without persistence restarts
// empty in the middle of `run`. The run must not report the few ids that
// were in flight as the batch's result: it exits 1 naming the batch and
// saying to enqueue its input again, writes no report, the batch shows as
// lost, and no completion callback is sent.
func TestRunStopsWhenRedisRestartsEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cozetest.WithLatency(5*time.Millisecond))
	all := ids(5000, 7910000000000000001)
	dir := t.TempDir()
	input, proof := filepath.Join(dir, "ids.txt"), filepath.Join(dir, "proof.csv")
	if err := os.WriteFile(input, []byte(strings.Join(all, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook, callbacks := callbackCounter(t)
	p := start(t, b.env(), "run", "--file", input, "--batch", "lost-run", "--callback-url", hook,
		"--concurrency", "10", "--metrics-addr", "", "--report", proof)
	waitFor(t, time.Minute, "progress", func() bool { return b.batch("lost-run").Finished() >= 200 })
	b.redis.Restart() // empty: no AOF, no RDB

	code, _ := p.wait(time.Minute)
	out := p.out.String()
	if code != 1 {
		t.Errorf("exit %d after Redis lost the batch; want 1. Output:\n%s", code, out)
	}
	for _, want := range []string{"batch lost-run was lost", "enqueue", "state=lost batch=lost-run"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "total=") {
		t.Errorf("the run printed tallies as if they were its result:\n%s", out)
	}
	if _, err := os.Stat(proof); err == nil {
		t.Error("a proof of erasure was written for a lost batch")
	}
	bt, ok, err := b.ledger.BatchOrLost(b.ctx, "lost-run")
	if err != nil || !ok || bt.State(time.Now()) != ledger.StateLost {
		t.Errorf("after the run the batch is %+v (found %v, %v); want lost", bt, ok, err)
	}
	if n := callbacks.Load(); n != 0 {
		t.Errorf("%d completion callbacks for a lost batch", n)
	}
	rep := start(t, nil, "report", "lost-run", "--redis-url", b.redis.URL)
	if code, _ := rep.wait(20 * time.Second); code != 1 || !strings.Contains(rep.out.String(), "batch lost-run was lost") ||
		strings.Contains(rep.out.String(), "conversation_id") {
		t.Errorf("report of the lost batch: exit %d\n%s", code, rep.out.String())
	}
}

// TestFleetReportsALostBatch: Redis without persistence restarts empty
// while two workers work a batch. The calls in flight finish, but the
// batch is not created anew from them: it shows as lost in status, both
// workers' /readyz fail naming it, the loss is counted, and no completion
// callback is sent. Enqueueing the input again clears it.
func TestFleetReportsALostBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cozetest.WithLatency(5*time.Millisecond))
	all := ids(5000, 7920000000000000001)
	hook, callbacks := callbackCounter(t)
	c := enqueue.NewClient(b.rdb)
	if sum, err := c.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("lost-fleet"), enqueue.CallbackURL(hook)); err != nil || sum.Enqueued != len(all) {
		t.Fatalf("enqueue: %+v %v", sum, err)
	}
	workers := []*proc{
		startWorker(t, b.env(), "--concurrency", "10"),
		startWorker(t, b.env(), "--concurrency", "10"),
	}
	waitFor(t, time.Minute, "progress", func() bool { return b.batch("lost-fleet").Finished() >= 200 })
	b.redis.Restart()

	for i, w := range workers {
		waitFor(t, 30*time.Second, "the loss to be noticed", func() bool {
			return metricValue(w.body("/metrics"), "coze_eraser_redis_data_losses_total") >= 1
		})
		waitFor(t, 10*time.Second, "/readyz to fail", func() bool { return w.get("/readyz") == http.StatusServiceUnavailable })
		if body := w.body("/readyz"); !strings.Contains(body, "lost-fleet") {
			t.Errorf("worker %d: /readyz says %q; want the lost batch named", i, body)
		}
		if body := w.body("/metrics"); metricValue(body, `coze_eraser_batches{state="lost"}`) != 1 {
			t.Errorf("worker %d: coze_eraser_batches{state=\"lost\"} is not 1", i)
		}
	}
	waitFor(t, 30*time.Second, "the calls in flight to end", func() bool {
		return metricValue(workers[0].body("/metrics"), "coze_eraser_tasks_in_flight") == 0 &&
			metricValue(workers[1].body("/metrics"), "coze_eraser_tasks_in_flight") == 0
	})
	if bt, ok, _ := b.ledger.Batch(b.ctx, "lost-fleet"); ok {
		t.Fatalf("the batch was created anew after the loss: %+v", bt)
	}
	for _, w := range workers { // logs are flushed every 100 ms
		waitFor(t, 10*time.Second, "an error line naming the lost batch", func() bool {
			for _, line := range readLines(w.out.String()) {
				if strings.Contains(line, `"level":"ERROR","msg":"Redis lost the ledger's data`) &&
					strings.Contains(line, `"batches":["lost-fleet"]`) {
					return true
				}
			}
			return false
		})
	}
	status := start(t, nil, "status", "--redis-url", b.redis.URL)
	if code, _ := status.wait(20 * time.Second); code != 0 || !regexpLine(status.out.String(), `lost-fleet\s+lost\s`) {
		t.Errorf("status exit %d:\n%s", code, status.out.String())
	}
	if n := callbacks.Load(); n != 0 {
		t.Errorf("%d completion callbacks for a lost batch", n)
	}

	// The operator enqueues the input again: the fleet is ready again.
	if _, err := c.EnqueueAll(b.ctx, slices.Values(all[:10]), enqueue.Batch("lost-fleet")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "/readyz to recover", func() bool { return workers[0].get("/readyz") == http.StatusOK })
}

// body returns the body of a GET on the process's metrics server.
func (p *proc) body(path string) string {
	resp, err := http.Get("http://" + p.metrics + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// metricValue reads one sample of a Prometheus text exposition: the line
// that starts with series (name and labels as written) and a space; -1
// when there is none.
func metricValue(exposition, series string) float64 {
	for line := range strings.Lines(exposition) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// regexpLine reports whether a line of s matches pattern.
func regexpLine(s, pattern string) bool {
	return regexp.MustCompile(`(?m)` + pattern).MatchString(s)
}

// TestDismissLost: an operator who deals with a loss some other way than
// enqueueing the input again dismisses it; status no longer lists it.
func TestDismissLost(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.ledger.MarkLost(b.ctx, "gone", time.Now(), true); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		p := start(t, nil, append(args, "--redis-url", b.redis.URL)...)
		code, _ := p.wait(20 * time.Second)
		return code, p.out.String()
	}
	if code, out := run("status", "--dismiss-lost"); code != 2 || !strings.Contains(out, "needs the batch") {
		t.Errorf("without a batch: exit %d, %q", code, out)
	}
	if code, out := run("status", "gone", "--dismiss-lost"); code != 0 || !strings.Contains(out, "loss dismissed") {
		t.Errorf("dismiss: exit %d, %q", code, out)
	}
	if lost, _ := b.ledger.LostBatches(b.ctx); len(lost) != 0 {
		t.Errorf("still lost: %+v", lost)
	}
	if code, out := run("status", "gone", "--dismiss-lost"); code != 2 || !strings.Contains(out, `batch "gone" is not lost`) {
		t.Errorf("second dismissal: exit %d, %q", code, out)
	}
}
