package systemtest

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestRedisKilledMidRun is scenario 1: Redis with AOF (fsync every second)
// is killed with SIGKILL while a worker process works 20,000 ids, and
// restarted. The batch finishes; every id has exactly one terminal outcome;
// the fake deleted every id the ledger calls deleted.
func TestRedisKilledMidRun(t *testing.T) {
	t.Parallel()
	b := setup(t, []redistest.Option{redistest.WithArgs("--appendonly", "yes", "--appendfsync", "everysec")},
		cozetest.WithLatency(2*time.Millisecond)) // with its call log, for the duplicate count
	all := ids(20_000, 7600000000000000001)
	b.enqueue(t, "s1", all)
	b.persistAOF(t) // the enqueue survives the kill below

	w := startWorker(t, b.env(), "--concurrency", "50", "--redis-wait", "60s")
	startedAt := time.Now()
	waitFor(t, 2*time.Minute, "a third of the batch", func() bool { return b.batch("s1").Finished() >= len(all)/3 })
	b.redis.Kill()
	killedAfter := time.Since(startedAt)
	time.Sleep(time.Second) // the outage itself: Redis is down for a second
	b.redis.Restart()
	restartedAt := time.Now()
	before := b.batch("s1").Finished()
	waitFor(t, time.Minute, "progress after the restart", func() bool { return b.batch("s1").Finished() > before })
	resumed := time.Since(restartedAt)
	waitFor(t, 5*time.Minute, "the batch to finish", func() bool { return b.batch("s1").Pending() == 0 })
	finished := time.Since(restartedAt)

	dups := b.checkOutcomes(t, "s1", all)
	bt := b.batch("s1")
	t.Logf("scenario 1: %d ids; Redis SIGKILLed %.1fs into the run, down 1s; %d deleted, %d not_found, %d failed; "+
		"%d duplicate DELETE calls; progress resumed %.1fs after the restart, batch done %.1fs after it",
		len(all), killedAfter.Seconds(), bt.Deleted, bt.NotFound, bt.Failed, dups, resumed.Seconds(), finished.Seconds())
	if w.get("/readyz") != 200 {
		t.Error("the worker is not ready after Redis came back")
	}
}

// TestSIGTERMWithCallsInFlight is scenario 3: SIGTERM while calls are in
// flight. They finish (the short ones) or go back to the queue (those that
// outlast --shutdown-timeout); no retry is used up; the process exits 0.
func TestSIGTERMWithCallsInFlight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		latency  time.Duration
		finished bool // whether the calls in flight at SIGTERM finish
	}{
		{"calls finish within the timeout", 500 * time.Millisecond, true},
		{"calls outlast the timeout", 10 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil, cozetest.WithLatency(tt.latency))
			all := ids(60, 7700000000000000001)
			b.enqueue(t, "s3", all)
			w := startWorker(t, b.env(), "--concurrency", "10", "--shutdown-timeout", "3s", "--request-timeout", "30s")
			waitFor(t, 10*time.Second, "calls in flight", func() bool { return b.fake.MaxInFlight() >= 10 })
			w.signal(syscall.SIGTERM)
			code, took := w.wait(15 * time.Second)
			if code != 0 {
				t.Errorf("exit %d after SIGTERM; output:\n%s", code, w.out.String())
			}
			if took > 3*time.Second+2*time.Second {
				t.Errorf("took %v to stop with --shutdown-timeout 3s", took)
			}
			bt := b.batch("s3")
			if tt.finished && bt.Deleted < 10 {
				t.Errorf("%d deleted: the calls in flight at SIGTERM did not finish", bt.Deleted)
			}
			if !tt.finished && bt.Deleted != 0 {
				t.Errorf("%d deleted: a 10 s call finished within a 3 s shutdown?", bt.Deleted)
			}
			if len(b.fake.Deletions()) != bt.Deleted {
				t.Errorf("the fake deleted %d, the ledger says %d", len(b.fake.Deletions()), bt.Deleted)
			}
			inspector := asynq.NewInspectorFromRedisClient(b.rdb)
			info, err := inspector.GetQueueInfo(enqueue.DefaultQueue)
			if err != nil {
				t.Fatal(err)
			}
			// The unfinished ids are back in the queue as tasks, or still
			// wait in the ledger to be fed.
			unfed, err := b.ledger.Unfed(b.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Active != 0 || info.Archived != 0 || info.Pending+info.Retry+unfed[enqueue.DefaultQueue] != len(all)-bt.Deleted {
				t.Errorf("queue after SIGTERM %+v, %d ids unfed; want the %d unfinished ids back in the queue or unfed",
					info, unfed[enqueue.DefaultQueue], len(all)-bt.Deleted)
			}
			pending, _ := inspector.ListPendingTasks(enqueue.DefaultQueue, asynq.PageSize(100))
			for _, task := range pending {
				if task.Retried != 0 {
					t.Errorf("task %s used a retry", task.ID)
				}
			}
		})
	}
}

// TestRedisUnreachableAtStart is scenario 4's first half: a one-line error
// and exit 2, after --redis-wait.
func TestRedisUnreachableAtStart(t *testing.T) {
	t.Parallel()
	dead := "redis://" + freeAddr(t) + "/0"
	p := start(t, map[string]string{"COZE_API_TOKEN": "pat_x"}, "worker", "--redis-url", dead, "--redis-wait", "2s", "--metrics-addr", "")
	code, took := p.wait(30 * time.Second)
	lines := readLines(p.out.String())
	if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "coze-eraser: cannot reach Redis at "+dead) {
		t.Errorf("exit %d, output %q", code, lines)
	}
	if took < 2*time.Second {
		t.Errorf("gave up after %v, before --redis-wait 2s", took)
	}
}
