//go:build slow

package systemtest

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/sweep"
)

// TestScheduledSweepsThreeWorkers is issue 15's acceptance point 5 at full
// size: three worker processes load one sweeps file with a */1 * * * *
// schedule for five minutes, and each tick runs exactly once (one list
// call and one batch per tick; the workers' runs add up to the ticks).
// Then every worker is stopped for two ticks and one is started: it runs
// the latest missed tick once, and goes on.
//
// The sweep's queue is one no worker serves, so that each run finds the
// same conversations and makes a batch: a tick run twice would show as
// two list calls in its minute.
func TestScheduledSweepsThreeWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const bot = "7379996104700000001"
	old := time.Now().Add(-48 * time.Hour)
	b.fake.AddConversations(
		cozetest.Conversation{ID: "7379996104800000001", BotID: bot, CreatedAt: old},
		cozetest.Conversation{ID: "7379996104800000002", BotID: bot, CreatedAt: old.Add(time.Second)},
		cozetest.Conversation{ID: "7379996104800000003", BotID: bot, CreatedAt: time.Now().Add(time.Hour)},
	)
	path := filepath.Join(t.TempDir(), "sweeps.yaml")
	file := "sweeps:\n  minutely:\n    schedule: \"*/1 * * * *\"\n    bot_ids: [\"" + bot + "\"]\n    older_than: 1h\n    queue: retention\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	env := b.env()
	env["COZE_ERASER_WORKER_SWEEPS"] = path
	var workers []*proc
	for range 3 {
		workers = append(workers, startWorker(t, env))
	}
	started := time.Now()
	// Stopped just after a tick's run has counted: the next is a minute away.
	runs := 0.0
	waitFor(t, 7*time.Minute, "five minutes of ticks", func() bool {
		if time.Since(started) < 5*time.Minute || len(b.sweepTicks(t)) < 5 {
			return false
		}
		runs = 0
		for _, w := range workers {
			runs += metricValue(w.body("/metrics"), `coze_eraser_sweep_runs_total{result="success",sweep="minutely"}`)
		}
		return int(runs) == len(b.sweepTicks(t))
	})
	for _, w := range workers {
		w.signal(syscall.SIGTERM)
	}
	for _, w := range workers {
		if code, _ := w.wait(30 * time.Second); code != 0 {
			t.Fatalf("a worker exited %d:\n%s", code, w.out.String())
		}
	}
	ticks := b.sweepTicks(t)
	perTick := b.listCallsPerMinute()
	for _, tick := range ticks {
		if n := perTick[tick.Unix()]; n != 1 {
			t.Errorf("tick %v: %d list calls, want 1", tick.Format(time.TimeOnly), n)
		}
	}
	if len(perTick) != len(ticks) || int(runs) != len(ticks) || !minutely(ticks) {
		t.Fatalf("three workers: %d ticks %v, runs summed over the workers %v, list calls by minute %v", len(ticks), ticks, runs, perTick)
	}
	t.Logf("three workers, %v: %d ticks, %v runs in all (1 per tick), %d list calls (1 per tick)",
		time.Since(started).Round(time.Second), len(ticks), runs, b.fake.ListCalls())

	// Down for two ticks, then one worker.
	last := ticks[len(ticks)-1]
	waitFor(t, 4*time.Minute, "two ticks to pass", func() bool { return time.Now().After(last.Add(2*time.Minute + 10*time.Second)) })
	restart := time.Now()
	one := startWorker(t, env)
	waitFor(t, 30*time.Second, "the missed tick's run", func() bool { return len(b.sweepTicks(t)) == len(ticks)+1 })
	caughtUp := b.sweepTicks(t)[len(ticks)]
	waitFor(t, 2*time.Minute, "the next tick's run", func() bool { return len(b.sweepTicks(t)) == len(ticks)+2 })
	after := b.sweepTicks(t)[len(ticks):]
	if !caughtUp.Equal(last.Add(2*time.Minute)) || !after[1].Equal(caughtUp.Add(time.Minute)) || b.fake.ListCalls() != len(ticks)+2 {
		t.Errorf("restart at %v after the tick of %v: ran %v, %d list calls in all; want the latest missed tick once, then the next",
			restart.Format(time.TimeOnly), last.Format(time.TimeOnly), after, b.fake.ListCalls())
	}
	// The batch appears as the run holds its first page; the run counts
	// once it is released.
	waitFor(t, 30*time.Second, "the restarted worker to count two runs", func() bool {
		return metricValue(one.body("/metrics"), `coze_eraser_sweep_runs_total{result="success",sweep="minutely"}`) == 2
	})
	t.Logf("stopped for two ticks (%v, %v missed), one worker started at %v: ran the tick of %v once, then %v; %d list calls in all",
		last.Add(time.Minute).Format(time.TimeOnly), last.Add(2*time.Minute).Format(time.TimeOnly), restart.Format(time.TimeOnly),
		caughtUp.Format(time.TimeOnly), after[1].Format(time.TimeOnly), b.fake.ListCalls())
}

// sweepTicks returns the ticks of the "minutely" sweep's batches, in order.
func (b *bundle) sweepTicks(t *testing.T) []time.Time {
	t.Helper()
	names, err := b.ledger.RecentBatchNames(b.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, n := range names {
		if at, ok := strings.CutPrefix(n, "minutely-"); ok {
			tick, err := time.Parse("20060102T150405Z", at)
			if err != nil || sweep.BatchName("minutely", tick) != n {
				t.Fatalf("batch %s: %v", n, err)
			}
			out = append(out, tick)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// listCallsPerMinute counts the fake's list calls by the minute they came
// in (a run lists within seconds of its tick).
func (b *bundle) listCallsPerMinute() map[int64]int {
	out := map[int64]int{}
	for _, c := range b.fake.Calls() {
		if c.Method == http.MethodGet && c.Path == cozetest.ListPath {
			out[c.At.Truncate(time.Minute).Unix()]++
		}
	}
	return out
}

// minutely reports whether ticks are a minute apart each.
func minutely(ticks []time.Time) bool {
	for i := 1; i < len(ticks); i++ {
		if ticks[i].Sub(ticks[i-1]) != time.Minute {
			return false
		}
	}
	return true
}
