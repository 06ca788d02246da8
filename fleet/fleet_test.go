package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/fleet"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestReports: reports are read back by instance, an expired report is
// not live while one from a host whose clock is behind is, Profiles folds one profile over several workers, and an
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
		{Instance: "c-3-x", At: now.Add(-2 * time.Minute), Profiles: []fleet.Profile{{Name: "app"}}}, // a clock behind, no budget
		{Instance: "old-4-x", At: now, Profiles: []fleet.Profile{{Name: "gone"}}},
	}
	for _, r := range reports {
		if err := fleet.Publish(ctx, rdb, ledger.DefaultPrefix, r); err != nil {
			t.Fatal(err)
		}
	}
	// old-4-x stopped reporting: its report expired.
	if err := rdb.Del(ctx, keyspace.New(ledger.DefaultPrefix).Worker("old-4-x")).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := fleet.Read(ctx, rdb, ledger.DefaultPrefix, now)
	if err != nil || len(got) != 3 || got[0].Instance != "a-1-x" || got[1].Instance != "b-2-x" || got[2].Instance != "c-3-x" {
		t.Fatalf("read %+v, %v; want a-1-x, b-2-x and c-3-x", got, err)
	}
	ps := fleet.Profiles(got)
	if len(ps) != 1 {
		t.Fatalf("profiles %+v", ps)
	}
	p := ps[0]
	if p.Name != "app" || p.Workers != 3 || p.Paused != 1 || !p.PausedSince.Equal(since) || p.EffectiveRate != 30 ||
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
