package worker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	fleetreport "github.com/coze-eraser/coze-eraser/fleet"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestWorkerReportsToTheFleet: a running worker reports its queues and its
// profile's auth pause (package fleet, which the console reads), the pause
// ends in the report when the API accepts the token again, and a worker
// that stops withdraws its report.
func TestWorkerReportsToTheFleet(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithFaults(map[cozetest.Fault]float64{cozetest.AuthInvalid: 1}))
	w := b.startWorker(t, b.fastConfig(t, nil))
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values([]string{"7379996104798150001"}), enqueue.Batch("fleet-1")); err != nil {
		t.Fatal(err)
	}
	profile := func() (fleetreport.Profile, int) {
		reports, err := fleetreport.Read(b.ctx, b.rdb, ledger.DefaultPrefix, time.Now())
		if err != nil || len(reports) != 1 || len(reports[0].Profiles) != 1 {
			return fleetreport.Profile{}, len(reports)
		}
		if reports[0].Queues["default"] != 1 || reports[0].Concurrency != 20 {
			t.Errorf("report: queues %v concurrency %d", reports[0].Queues, reports[0].Concurrency)
		}
		return reports[0].Profiles[0], 1
	}
	waitFor(t, 20*time.Second, "the report of the paused profile", func() bool {
		p, _ := profile()
		return p.AuthPaused && p.AuthPausedSince != nil
	})
	b.fake.SetFaults(nil)
	waitFor(t, 20*time.Second, "the report of the resumed profile", func() bool {
		p, n := profile()
		return n == 1 && !p.AuthPaused && p.Name == "default"
	})
	w.Shutdown()
	if _, n := profile(); n != 0 {
		t.Errorf("a stopped worker still reports (%d reports)", n)
	}
}
