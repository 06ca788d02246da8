package worker_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestAuthOutagePausesAndResumes: the fake answers 4100 for a while. No
// task may be archived or lost, /readyz must fail meanwhile, calls must slow
// to probes, and every id must be deleted after the fake recovers.
func TestAuthOutagePausesAndResumes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.SetAuthDown(true)
	all := ids(300, 7000000000000000001)
	// MaxRetry 0: a single failure would archive a task, so this also
	// proves auth answers use up no retry.
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("auth"), enqueue.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	w := b.startWorker(t, b.fastConfig(t, nil))

	waitFor(t, 5*time.Second, "readyz to fail", func() bool { return readyz(w) == http.StatusServiceUnavailable })
	if got := testutil.ToFloat64(w.Metrics().AuthPaused.WithLabelValues("default")); got != 1 {
		t.Errorf("coze_eraser_auth_paused = %v, want 1", got)
	}
	// Time the next eight calls, the probes: one per interval (20 ms
	// doubling to 100 ms) takes at least 640 ms for eight, about ten a
	// second, against thousands a second if every task kept calling.
	callsAtPause, pausedAt := b.fake.Counts()["total"], time.Now()
	var during int64
	waitFor(t, 10*time.Second, "eight probes", func() bool {
		during = b.fake.Counts()["total"] - callsAtPause
		return during >= 8
	})
	if rate := float64(during) / time.Since(pausedAt).Seconds(); rate > 40 {
		t.Errorf("%d calls in %v of auth outage (%.0f a second); calls should be paused to one probe at a time",
			during, time.Since(pausedAt).Round(time.Millisecond), rate)
	}
	if n := b.archived(t); n != 0 {
		t.Fatalf("%d tasks archived during the auth outage", n)
	}
	if finals := b.finals(t, "auth"); len(finals) != 0 {
		t.Fatalf("%d ids got a terminal outcome during the outage", len(finals))
	}

	b.fake.SetAuthDown(false)
	b.waitDrained(t, time.Minute)
	finals := b.finals(t, "auth")
	for _, id := range all {
		if finals[id].Outcome != ledger.Deleted {
			t.Errorf("id %s: %q after recovery, want deleted", id, finals[id].Outcome)
		}
	}
	if n := b.archived(t); n != 0 {
		t.Errorf("%d tasks archived", n)
	}
	if code := readyz(w); code != http.StatusOK {
		t.Errorf("/readyz = %d after recovery, want 200", code)
	}
	if got := testutil.ToFloat64(w.Metrics().AuthPauses.WithLabelValues("default")); got < 1 {
		t.Errorf("coze_eraser_auth_pauses_total = %v", got)
	}
	if !strings.Contains(b.logs.String(), "the API rejects the profile's token") {
		t.Error("no error log line says why calls were paused")
	}
}

// TestTokenFileRotationResumes: the worker starts with a token the API
// rejects; replacing the token file is enough for it to carry on.
func TestTokenFileRotationResumes(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithToken("pat_the_new_one"))
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("pat_the_old_one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	all := ids(50, 7100000000000000001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("rotate")); err != nil {
		t.Fatal(err)
	}
	w := b.startWorker(t, b.fastConfig(t, coze.FileToken(path)))
	waitFor(t, 5*time.Second, "readyz to fail", func() bool { return readyz(w) == http.StatusServiceUnavailable })

	if err := os.WriteFile(path, []byte("pat_the_new_one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.waitDrained(t, time.Minute)
	finals := b.finals(t, "rotate")
	if len(finals) != len(all) {
		t.Fatalf("%d outcomes for %d ids", len(finals), len(all))
	}
	for id, f := range finals {
		if f.Outcome != ledger.Deleted {
			t.Errorf("id %s: %s", id, f.Outcome)
		}
	}
}

// TestRateLimitSlowsEveryCall: after a 429 with Retry-After, no call of the
// worker starts until the pause is over, and the rate-limited task keeps all
// its retries (MaxRetry 0 would archive it otherwise).
func TestRateLimitSlowsEveryCall(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithRetryAfter(1))
	first := "7200000000000000001"
	b.fake.Script(first, cozetest.RateLimitedRetryAfter, cozetest.RateLimited, cozetest.SystemLimit)
	if _, err := b.enqueue.Enqueue(b.ctx, first, enqueue.Batch("rl"), enqueue.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Concurrency = 5
	w := b.startWorker(t, cfg)
	waitFor(t, 5*time.Second, "the worker to see the first 429", func() bool {
		return testutil.ToFloat64(w.Metrics().RateLimitPauses.WithLabelValues("default")) == 1
	})
	others := ids(30, 7200000000000000101)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(others), enqueue.Batch("rl"), enqueue.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	b.waitDrained(t, 30*time.Second)

	calls := b.fake.Calls()
	limitedAt := calls[0].At
	for _, c := range calls[1:] {
		if gap := c.At.Sub(limitedAt); gap < 900*time.Millisecond {
			t.Errorf("call for %s started %v after the 429 with Retry-After: 1", c.ID, gap)
		}
	}
	finals := b.finals(t, "rl")
	if f := finals[first]; f.Outcome != ledger.Deleted || f.Attempts != 4 {
		t.Errorf("rate-limited id: %+v, want deleted on the 4th attempt", f)
	}
	if len(finals) != len(others)+1 || b.archived(t) != 0 {
		t.Errorf("%d outcomes, %d archived", len(finals), b.archived(t))
	}
	if got := testutil.ToFloat64(w.Metrics().Retries.WithLabelValues("rate_limited")); got != 3 {
		t.Errorf("rate_limited retries = %v, want 3", got)
	}
}

// TestShutdownHandsTasksBack: SIGTERM-style shutdown with calls in flight
// lets them finish; the rest go back to the queue with no retry used up.
func TestShutdownHandsTasksBack(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithLatency(300*time.Millisecond))
	all := ids(200, 7300000000000000001)
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("stop")); err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.Concurrency = 10
	w := b.startWorker(t, cfg)
	waitFor(t, 5*time.Second, "calls in flight", func() bool { return b.fake.MaxInFlight() >= 5 })
	start := time.Now()
	w.Shutdown()
	if took := time.Since(start); took > cfg.ShutdownTimeout+time.Second {
		t.Errorf("shutdown took %v", took)
	}

	finals := b.finals(t, "stop")
	for id, f := range finals {
		if _, deleted := b.fake.Deleted(id); f.Outcome != ledger.Deleted || !deleted {
			t.Errorf("id %s: %s (fake deleted: %v)", id, f.Outcome, deleted)
		}
	}
	if len(b.fake.Deletions()) != len(finals) {
		t.Errorf("the fake deleted %d ids, the ledger has %d outcomes: an in-flight call was dropped",
			len(b.fake.Deletions()), len(finals))
	}
	if len(finals) == len(all) {
		t.Fatal("every id finished: the test did not shut down mid-run")
	}
	// The unfinished ids are back in the queue as tasks, or still wait in
	// the ledger to be fed.
	info, err := b.inspector.GetQueueInfo(enqueue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	unfed, err := b.ledger.Unfed(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Active != 0 || info.Archived != 0 || info.Pending+info.Retry+unfed[enqueue.DefaultQueue] != len(all)-len(finals) {
		t.Errorf("after shutdown: %+v, %d ids unfed; want the %d unfinished ids pending", info, unfed[enqueue.DefaultQueue], len(all)-len(finals))
	}
	pending, _ := b.inspector.ListPendingTasks(enqueue.DefaultQueue, asynq.PageSize(1000))
	for _, task := range pending {
		if task.Retried != 0 {
			t.Errorf("task %s used a retry: %d", task.ID, task.Retried)
		}
		if want := tasks.TaskID(mustPayload(t, task.Payload).ConversationID); task.ID != want {
			t.Errorf("task id %s, want %s", task.ID, want)
		}
	}
}

func mustPayload(t *testing.T, body []byte) tasks.Payload {
	t.Helper()
	p, err := tasks.ParsePayload(body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInvalidPayloadIsArchivedWithoutACall: a task written by another
// producer with a bad id never reaches the API.
func TestInvalidPayloadIsArchivedWithoutACall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := asynq.NewClientFromRedisClient(b.rdb)
	for _, payload := range []string{`{"id":"1/../admin","batch":"x"}`, "\x00garbage"} {
		if _, err := client.Enqueue(asynq.NewTask(tasks.TypeDelete, []byte(payload))); err != nil {
			t.Fatal(err)
		}
	}
	w := b.startWorker(t, b.fastConfig(t, nil))
	b.waitDrained(t, 10*time.Second)
	if n := b.archived(t); n != 2 {
		t.Errorf("%d archived, want 2", n)
	}
	if total := b.fake.Counts()["total"]; total != 0 {
		t.Errorf("the API was called %d times", total)
	}
	if got := testutil.ToFloat64(w.Metrics().InvalidTasks); got != 2 {
		t.Errorf("invalid tasks metric = %v", got)
	}
	archived, _ := b.inspector.ListArchivedTasks(enqueue.DefaultQueue)
	for _, task := range archived {
		if !strings.Contains(task.LastErr, "invalid") && !strings.Contains(task.LastErr, "not a JSON") {
			t.Errorf("archived with reason %q", task.LastErr)
		}
	}
	// Both are recorded, with their reasons: the one with a valid batch
	// under it, the garbage under invalid-tasks.
	var records []ledger.Failure
	_ = b.ledger.Failures(b.ctx, ledger.Filter{}, func(f ledger.Failure) error { records = append(records, f); return nil })
	if len(records) != 2 {
		t.Fatalf("failure records %+v", records)
	}
	byBatch := map[string]ledger.Failure{}
	for _, r := range records {
		byBatch[r.Batch] = r
	}
	if r := byBatch["x"]; r.Outcome != ledger.Failed || !strings.Contains(r.Msg, `invalid conversation id "1/../admin"`) {
		t.Errorf("record of the invalid id: %+v", r)
	}
	if r := byBatch[ledger.InvalidBatch]; !strings.Contains(r.Msg, "not a JSON task payload") {
		t.Errorf("record of the garbage: %+v", r)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
