package worker

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// TestLaneAdmission: a lane of a worker serving one profile admits every
// task; a shared lane admits as many waiters as its cap and hands the
// others back spread one step apart at its supply rate; a paused lane
// admits one (the probe) and hands the rest back after the next probe.
func TestLaneAdmission(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	newLane := func(shared bool) *lane {
		return &lane{profile: "a", shared: shared, maxWaiting: 3, allWaiting: new(atomic.Int64), maxAllWaiting: 4,
			auth: newAuthGate(Backoff{Base: 10 * time.Second, Cap: time.Minute}, clock, nil)}
	}

	solo := newLane(false)
	for range 10 {
		if release, _ := solo.admit(now); release == nil {
			t.Fatal("a lane of a one-profile worker handed a task back")
		}
	}

	shared := newLane(true)
	var releases []func()
	for range 3 {
		release, _ := shared.admit(now)
		if release == nil {
			t.Fatal("a shared lane handed back a task under its cap")
		}
		releases = append(releases, release)
	}
	var delays []time.Duration
	for range 3 {
		release, d := shared.admit(now)
		if release != nil {
			t.Fatal("a shared lane admitted a task over its cap")
		}
		delays = append(delays, d)
	}
	// Without a budget: spread 50 ms apart (plus up to 100 ms of jitter).
	for i, d := range delays {
		low := time.Duration(i+1) * 50 * time.Millisecond
		if d < low || d >= low+100*time.Millisecond {
			t.Errorf("hand-back %d: %v, want %v to %v", i, d, low, low+100*time.Millisecond)
		}
	}
	releases[0]()
	if release, _ := shared.admit(now); release == nil {
		t.Error("a freed waiter's place was not given to the next task")
	}

	// Lanes of one worker together keep a slot free (maxAllWaiting 4, a
	// worker of 5): with a's three waiting, b may take one, not two.
	other := newLane(true)
	other.allWaiting = shared.allWaiting
	if release, _ := other.admit(now); release == nil {
		t.Error("a second lane found no slot while the worker had two")
	}
	if release, _ := other.admit(now); release != nil {
		t.Error("a second lane took the worker's last slot")
	}
	releases[1]()
	if release, _ := other.admit(now); release == nil {
		t.Error("a second lane found no slot after one freed")
	}

	paused := newLane(true)
	paused.auth.report(false, coze.Result{Class: coze.ClassAuth, HasCode: true, Code: 4100})
	if release, _ := paused.admit(now); release == nil {
		t.Fatal("a paused lane did not admit its probe")
	}
	release, d := paused.admit(now)
	if release != nil || d < 10*time.Second {
		t.Errorf("a paused lane's second task: admitted %v, back in %v; want it back after the probe (10 s)", release != nil, d)
	}
}

func TestSupplyRate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ effective, ceiling, want float64 }{
		{20, 60, 60},            // a profile's rate: its ceiling
		{20, 100_000, 100},      // auto: at least minSupplyRate
		{80, 100_000, 320},      // auto: four times the effective rate
		{0.5, 100_000, 100},     // a budget cut low is still supplied
		{20, 0, minSupplyRate},  // no ceiling known
		{300, 100_000, 4 * 300}, // fast
	} {
		if got := supplyRate(tt.effective, tt.ceiling); got != tt.want {
			t.Errorf("supplyRate(%v, %v) = %v, want %v", tt.effective, tt.ceiling, got, tt.want)
		}
	}
}
