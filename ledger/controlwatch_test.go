package ledger_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestControlWatch: a watch answers a running batch's state from its
// cache (one read of Redis for many tasks), and a pause, a resume and a
// cancel reach it through their announcement, without waiting for its TTL.
func TestControlWatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "w"}, "1", "2", "3")
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	w := b.ledger.WatchControl(ctx)
	hgets := func() int {
		info, _ := b.rdb.Info(b.ctx, "commandstats").Result()
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_hget:calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				return n
			}
		}
		return 0
	}
	// Until the watch has subscribed, reads go to Redis; wait for that.
	waitFor(t, "the watch to subscribe", func() bool {
		before := hgets()
		_, _ = w.Control(b.ctx, "w")
		_, _ = w.Control(b.ctx, "w")
		return hgets()-before == 1
	})
	before := hgets()
	for range 100 {
		if s, err := w.Control(b.ctx, "w"); err != nil || s != ledger.ControlRunning {
			t.Fatalf("running batch: %q %v", s, err)
		}
	}
	if n := hgets() - before; n > 1 {
		t.Errorf("100 reads of a running batch made %d HGETs, want at most 1", n)
	}
	for _, step := range []struct {
		act  func() error
		want ledger.ControlState
	}{
		{func() error { return b.ledger.Pause(b.ctx, "w", "", b.now) }, ledger.ControlPaused},
		{func() error { return b.ledger.Resume(b.ctx, "w", "", b.now) }, ledger.ControlRunning},
		{func() error { _, err := b.ledger.Cancel(b.ctx, "w", "", b.now); return err }, ledger.ControlCancelled},
	} {
		if err := step.act(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(t, "the watch to see "+string(step.want), func() bool {
			s, err := w.Control(b.ctx, "w")
			return err == nil && s == step.want
		})
		t.Logf("%q seen after %v", step.want, time.Since(start))
	}
}

// waitFor polls cond until it holds, for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
