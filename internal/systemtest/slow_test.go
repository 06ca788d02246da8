//go:build slow

package systemtest

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestWorkerKilledMidRun is scenario 2: one of two worker processes is
// killed with SIGKILL mid-run. The other finishes every id, including those
// the dead one held: asynq gives them back once their 30 s lease has
// expired and its recoverer (every minute) finds them.
func TestWorkerKilledMidRun(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cozetest.WithLatency(20*time.Millisecond))
	all := ids(5000, 7800000000000000001)
	b.enqueue(t, "s2", all)
	victim := startWorker(t, b.env(), "--concurrency", "20")
	startWorker(t, b.env(), "--concurrency", "20") // the survivor
	waitFor(t, time.Minute, "a fifth of the batch", func() bool { return b.batch("s2").Finished() >= len(all)/5 })
	victim.signal(syscall.SIGKILL)
	killedAt := time.Now()
	victim.wait(10 * time.Second)
	waitFor(t, 5*time.Minute, "the batch to finish", func() bool { return b.batch("s2").Pending() == 0 })
	recovered := time.Since(killedAt)
	dups := b.checkOutcomes(t, "s2", all)
	bt := b.batch("s2")
	t.Logf("scenario 2: %d ids; one of two workers SIGKILLed; %d deleted, %d not_found, %d failed; "+
		"%d duplicate DELETE calls; batch done %.0fs after the kill", len(all), bt.Deleted, bt.NotFound, bt.Failed, dups, recovered.Seconds())
}

// TestRedisLostMidRun is scenario 4's second half: Redis is gone for 20 s
// while a worker runs. The worker keeps running with bounded CPU, /readyz
// fails during the outage, and work resumes by itself.
func TestRedisLostMidRun(t *testing.T) {
	t.Parallel()
	b := setup(t, []redistest.Option{redistest.WithArgs("--appendonly", "yes", "--appendfsync", "everysec")},
		cozetest.WithLatency(5*time.Millisecond))
	all := ids(5000, 7900000000000000001)
	b.enqueue(t, "s4", all)
	b.persistAOF(t) // the enqueue survives the kill below
	w := startWorker(t, b.env(), "--concurrency", "20", "--rate", "200")
	waitFor(t, time.Minute, "a fifth of the batch", func() bool { return b.batch("s4").Finished() >= len(all)/5 })
	b.redis.Kill()
	cpuBefore, wallBefore := w.cpu(), time.Now()
	// A probe takes as long as the worker's Redis client spends failing to
	// dial, so the count of probes varies with the machine's load: what is
	// checked is their share, not their number.
	probes, notReady := 0, 0
	for time.Since(wallBefore) < 20*time.Second {
		probes++
		if w.get("/readyz") != 200 {
			notReady++
		}
		time.Sleep(time.Second) // one probe a second for the 20 s outage: the outage's length is the point
	}
	cpuShare := float64(w.cpu()-cpuBefore) / float64(time.Since(wallBefore))
	b.redis.Restart()
	restartedAt := time.Now()
	waitFor(t, 5*time.Minute, "the batch to finish", func() bool { return b.batch("s4").Pending() == 0 })
	dups := b.checkOutcomes(t, "s4", all)
	if notReady < probes-1 { // the first probe may come before the kill is noticed
		t.Errorf("/readyz failed in %d of %d probes during the outage", notReady, probes)
	}
	if cpuShare > 0.25 {
		t.Errorf("the worker used %.0f%% of a core while Redis was gone", 100*cpuShare)
	}
	if w.get("/readyz") != 200 {
		t.Error("not ready after Redis came back")
	}
	if strings.Contains(w.out.String(), b.token) {
		t.Error("the token is in the worker's output")
	}
	t.Logf("scenario 4: %d ids; Redis gone 20 s; /readyz not ready in %d of %d probes; worker CPU %.1f%% of a core during the outage; "+
		"%d duplicate DELETE calls; batch done %.1fs after Redis returned", len(all), notReady, probes, 100*cpuShare, dups,
		time.Since(restartedAt).Seconds())
}
