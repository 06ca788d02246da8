package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/fleet"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestReports: reports are read back by instance, a report older than the
// TTL is not live, Profiles folds one profile over several workers, and an
// instance name that could not be a key is refused.
func TestReports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	now := time.Now()
	since := now.Add(-3 * time.Minute)
	pushback := now.Add(-10 * time.Second)
	reports := []fleet.Report{
		{Instance: "b-2-x", At: now, Profiles: []fleet.Profile{{Name: "app", ConfiguredRate: 60, EffectiveRate: 30, LastPushback: &pushback, Waiting: 2}}},
		{Instance: "a-1-x", At: now, Profiles: []fleet.Profile{{Name: "app", AuthPaused: true, AuthPausedSince: &since, ConfiguredRate: 60, EffectiveRate: 60, Waiting: 1}}},
		{Instance: "old-3-x", At: now.Add(-fleet.TTL - time.Second), Profiles: []fleet.Profile{{Name: "gone"}}},
	}
	for _, r := range reports {
		if err := fleet.Publish(ctx, rdb, ledger.DefaultPrefix, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := fleet.Read(ctx, rdb, ledger.DefaultPrefix, now)
	if err != nil || len(got) != 2 || got[0].Instance != "a-1-x" || got[1].Instance != "b-2-x" {
		t.Fatalf("read %+v, %v; want a-1-x and b-2-x", got, err)
	}
	ps := fleet.Profiles(got)
	if len(ps) != 1 {
		t.Fatalf("profiles %+v", ps)
	}
	p := ps[0]
	if p.Name != "app" || p.Workers != 2 || p.Paused != 1 || !p.PausedSince.Equal(since) || p.EffectiveRate != 30 ||
		p.ConfiguredRate != 60 || !p.LastPushback.Equal(pushback) || p.Waiting != 3 {
		t.Errorf("folded %+v", p)
	}
	for _, bad := range []string{"", "a:b", "a b", strings.Repeat("x", 101)} {
		if err := fleet.Publish(ctx, rdb, ledger.DefaultPrefix, fleet.Report{Instance: bad, At: now}); err == nil {
			t.Errorf("instance %.20q was accepted", bad)
		}
	}
	if name := fleet.Instance("r4nd"); strings.ContainsAny(name, ": /{}") || !strings.HasSuffix(name, "-r4nd") {
		t.Errorf("Instance: %q", name)
	}
}
