package systemtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestSentinelFailover: two workers and a producer on a primary with a
// replica behind three sentinels, all real processes, with
// --redis-replicas 1. The primary is SIGKILLed a third of the way through a
// batch; Sentinel promotes the replica, and the fleet carries on by itself
// (every process reached Redis through redis-sentinel://). Every id ends
// with exactly one outcome; none is lost; the DELETEs made twice are
// counted (the fake answers the second one not_found).
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	fake := cozetest.NewServer(cozetest.WithLatency(5 * time.Millisecond))
	t.Cleanup(fake.Close)
	rdb := s.FailoverClient()
	b := &bundle{ctx: context.Background(), rdb: rdb, fake: fake, ledger: ledger.New(rdb),
		token: "pat_SENTINEL_" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	env := map[string]string{"REDIS_URL": s.URL(), "COZE_BASE_URL": fake.URL, "COZE_API_TOKEN": b.token,
		"COZE_ERASER_REDIS_REPLICAS": "1"}

	all := ids(6000, 7610000000000000001)
	input := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(input, []byte(strings.Join(all, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	producer := start(t, env, "enqueue", "--file", input, "--batch", "failover-1")
	if code, _ := producer.wait(time.Minute); code != 0 {
		t.Fatalf("enqueue exited %d:\n%s", code, producer.out.String())
	}
	workers := []*proc{
		startWorker(t, env, "--concurrency", "20", "--redis-wait", "60s"),
		startWorker(t, env, "--concurrency", "20", "--redis-wait", "60s"),
	}
	waitFor(t, 2*time.Minute, "a third of the batch", func() bool { return b.batch("failover-1").Finished() >= len(all)/3 })
	old := s.Primary()
	atKill := len(fake.Deletions())
	s.KillPrimary()
	killedAt := time.Now()
	promoted, took := s.WaitFailover(t, time.Minute)

	waitFor(t, time.Minute, "deletions after the failover", func() bool { return len(fake.Deletions()) > atKill+200 })
	resumed := time.Since(killedAt)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		bt, ok, err := b.ledger.Batch(b.ctx, "failover-1")
		if err == nil && ok && bt.Pending() == 0 {
			break
		}
		if time.Now().After(deadline) {
			var notes []string
			for _, w := range workers {
				for _, line := range readLines(w.out.String()) {
					if !strings.Contains(line, `"msg":"attempt"`) {
						notes = append(notes, line)
					}
				}
			}
			q, qerr := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo("default")
			t.Fatalf("the batch did not finish in 3m after the failover: pending %d (%v, %v); queue default: %+v (%v)\nthe workers said:\n%s",
				bt.Pending(), ok, err, q, qerr, strings.Join(notes, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	finished := time.Since(killedAt)

	dups := b.checkOutcomes(t, "failover-1", all)
	bt := b.batch("failover-1")
	t.Logf("failover: %d ids; primary %s SIGKILLed after %d deletions; Sentinel promoted %s in %.1fs; "+
		"deletions resumed %.1fs after the kill, the batch finished %.1fs after it: %d deleted, %d not_found, %d failed, %d duplicate DELETE calls",
		len(all), old, atKill, promoted, took.Seconds(), resumed.Seconds(), finished.Seconds(), bt.Deleted, bt.NotFound, bt.Failed, dups)
	if bt.Total != len(all) || bt.Failed != 0 || bt.Deleted+bt.NotFound != len(all) {
		t.Errorf("batch: total %d deleted %d not_found %d failed %d", bt.Total, bt.Deleted, bt.NotFound, bt.Failed)
	}
	if bt.NotFound > dups {
		t.Errorf("%d ids ended not_found but only %d DELETEs were repeated: a not_found must come from a repeated call", bt.NotFound, dups)
	}
	for i, w := range workers {
		select {
		case <-w.exited:
			t.Errorf("worker %d exited:\n%s", i+1, w.out.String())
		default:
		}
		if w.get("/readyz") != 200 {
			t.Errorf("worker %d is not ready after the failover", i+1)
		}
	}
}
