package sweep_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/sweep"
)

func TestParseSweepsFile(t *testing.T) {
	t.Parallel()
	file := `sweeps:
  support-90d:
    schedule: "0 3 * * *"
    time_zone: Europe/Berlin
    profile: support-bot
    bot_ids: ["7379996104700000001", 7379996104700000002]
    connector_ids: [1024, "999"]
    older_than: 2160h
    by: updated
    meta: {tier: free, plan: 3}
    queue: retention
    note: policy R-7
    due_in: 24h
  weekdays:
    schedule: CRON_TZ=UTC 30 1 * * 1-5
    bot_ids: ["7379996104700000003"]
    older_than: 720h
`
	got, err := sweep.Parse(strings.NewReader(file), "sweeps.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := got[0]
	if len(got) != 2 || s.Name != "support-90d" || s.Profile != "support-bot" || s.BotIDs[1] != "7379996104700000002" ||
		s.ConnectorIDs[0] != "1024" || s.OlderThan != 2160*time.Hour || s.By != sweep.ByUpdated || s.Meta["plan"] != "3" ||
		s.Queue != "retention" || s.Note != "policy R-7" || s.DueIn != 24*time.Hour || s.Interval() != 24*time.Hour {
		t.Fatalf("parsed %+v", got)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if next := s.Next(time.Date(2026, 12, 4, 12, 0, 0, 0, berlin)); !next.Equal(time.Date(2026, 12, 5, 3, 0, 0, 0, berlin)) {
		t.Errorf("next tick %v: not 03:00 in Berlin", next)
	}
	if w := got[1]; w.Interval() != 72*time.Hour || w.By != "" {
		t.Errorf("weekdays: interval %v (want the weekend's 72h), %+v", w.Interval(), w)
	}
	if err := sweep.CheckProfiles(got, []string{"default", "support-bot"}); err != nil {
		t.Error(err)
	}
	err = sweep.CheckProfiles(got, []string{"default"})
	if err == nil || err.Error() != "sweeps.yaml:5:14: sweeps.support-90d.profile support-bot: not a profile of this worker (it has: default)" {
		t.Errorf("unknown profile: %v", err)
	}
}

// TestBadSweepsFiles: each broken rule is one line naming the file, line,
// sweep and key.
func TestBadSweepsFiles(t *testing.T) {
	t.Parallel()
	const base = "sweeps:\n  s1:\n    schedule: \"*/5 * * * *\"\n    bot_ids: [\"7379996104700000001\"]\n    older_than: 2160h\n"
	for _, tt := range []struct{ file, want string }{
		{base + "    colour: blue\n", "f:6:5: sweeps.s1.colour is not a known key: use schedule, time_zone"},
		{strings.Replace(base, `"*/5 * * * *"`, `"61 * * * *"`, 1), `f:3:15: sweeps.s1.schedule "61 * * * *": end of range (61) above maximum (59)`},
		{strings.Replace(base, `"*/5 * * * *"`, `"@every 1h"`, 1), `f:3:15: sweeps.s1.schedule "@every 1h": @every counts from when each worker starts`},
		{strings.Replace(base, `"*/5 * * * *"`, `"0 0 30 2 *"`, 1), `f:3:15: sweeps.s1.schedule "0 0 30 2 *": never fires`},
		{strings.Replace(base, "2160h", "90d", 1), `f:5:17: sweeps.s1.older_than "90d": not a duration such as 2160h`},
		{strings.Replace(base, "2160h", "-1h", 1), `f:5:17: sweeps.s1.older_than -1h0m0s: must be more than 0s`},
		{base + "  s1:\n    schedule: x\n", "f:6:3: sweeps.s1 is defined twice: first at line 2"},
		{base + "    time_zone: Mars/Olympus\n", `f:6:16: sweeps.s1.time_zone "Mars/Olympus": not a time zone`},
		{base + "    by: deleted\n", `f:6:9: sweeps.s1.by "deleted": want created or updated`},
		{base + "    bot_ids: [1.5e18]\n", "f:6:5: sweeps.s1.bot_ids is defined twice: first at line 4"},
		{strings.Replace(base, `["7379996104700000001"]`, "[1.5e18]", 1), "f:4:15: sweeps.s1.bot_ids holds a floating-point number: write each id in digits, in quotes"},
		{strings.Replace(base, "s1:", "s 1:", 1), `f:2:3: sweeps["s 1"] is not a valid sweep name`},
		{strings.Replace(base, "    older_than: 2160h\n", "", 1), "f:2:3: sweeps.s1.older_than is missing"},
		{"sweeps:\n", "f:1:1: sweeps is empty: define at least one sweep"},
		{"profiles: {}\n", "f:1:1: profiles is not a known key: use sweeps"},
		{"", "f: is empty"},
	} {
		_, err := sweep.Parse(strings.NewReader(tt.file), "f")
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("file:\n%s\nerror %v\nwant %s", tt.file, err, tt.want)
		}
	}
}
