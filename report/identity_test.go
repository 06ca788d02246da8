package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// session is an end user's session name: personal data, which no report
// may show.
const session = "user-4711@example.org"

var sessionKey = []byte("a test key of the deployment")

// reports are a batch's proofs (CSV and JSONL) and status (JSON and
// table), as text.
func reports(t *testing.T, led *ledger.Ledger, batch string) (csvProof, jsonlProof, statusJSON, table string) {
	t.Helper()
	ctx := context.Background()
	var c, j, s, tb bytes.Buffer
	if err := report.WriteProof(ctx, led, batch, "csv", &c, now); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteProof(ctx, led, batch, "jsonl", &j, now); err != nil {
		t.Fatal(err)
	}
	b, _, err := led.Batch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.WriteStatus(&s, []ledger.Batch{b}, now, "json"); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteStatus(&tb, []ledger.Batch{b}, now, "table"); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{c.String(), j.String(), s.String(), tb.String()} {
		if strings.Contains(text, session) {
			t.Errorf("a report shows the session name:\n%s", text)
		}
	}
	return c.String(), j.String(), s.String(), tb.String()
}

// TestReportsShowTheIdentityNotTheSession: proofs and status show the
// batch's profile, that its session name is held, then its hash once the
// ledger erased it; never the name.
func TestReportsShowTheIdentityNotTheSession(t *testing.T) {
	t.Parallel()
	led := ledger.New(redistest.Start(t).Client())
	ctx := context.Background()
	adder, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: "jwt", Created: now.Add(-time.Hour), Profile: "app-eu", Session: session})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Add(ctx, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Seal(ctx); err != nil {
		t.Fatal(err)
	}

	csvProof, jsonlProof, statusJSON, _ := reports(t, led, "jwt")
	for _, want := range []string{"# profile: app-eu\n", "# session: held until the batch completes\n"} {
		if !strings.Contains(csvProof, want) {
			t.Errorf("CSV proof while the session is held lacks %q:\n%s", want, csvProof)
		}
	}
	if strings.Contains(csvProof, "session_hash") {
		t.Errorf("CSV proof shows a hash before the scrub:\n%s", csvProof)
	}
	sum := lastSummary(t, jsonlProof)
	if sum.Profile != "app-eu" || sum.Session != report.SessionHeld || sum.SessionHash != "" {
		t.Errorf("JSONL summary while held: %+v", sum)
	}
	if st := statusOf(t, statusJSON); st["profile"] != "app-eu" || st["session"] != report.SessionHeld || st["session_hash"] != nil {
		t.Errorf("status JSON while held: %s", statusJSON)
	}

	if _, err := led.Record(ctx, ledger.Attempt{ConversationID: "1", Batch: "jwt", Outcome: ledger.Deleted, HasCode: true, LogID: "L", At: now}); err != nil {
		t.Fatal(err)
	}
	if n, err := led.ScrubSessions(ctx, sessionKey); n != 1 || err != nil {
		t.Fatalf("ScrubSessions = %d, %v", n, err)
	}
	hash := ledger.SessionHash(sessionKey, session)
	csvProof, jsonlProof, statusJSON, _ = reports(t, led, "jwt")
	if !strings.Contains(csvProof, "# profile: app-eu\n# session_hash: "+hash+"\n") || strings.Contains(csvProof, "# session: ") {
		t.Errorf("CSV proof after the scrub:\n%s", csvProof)
	}
	if sum := lastSummary(t, jsonlProof); sum.Profile != "app-eu" || sum.Session != "" || sum.SessionHash != hash {
		t.Errorf("JSONL summary after the scrub: %+v", sum)
	}
	if st := statusOf(t, statusJSON); st["profile"] != "app-eu" || st["session_hash"] != hash || st["session"] != nil {
		t.Errorf("status JSON after the scrub: %s", statusJSON)
	}
}

// TestReportsOfADefaultBatch: a batch without identity shows the default
// profile, and no session line or field.
func TestReportsOfADefaultBatch(t *testing.T) {
	t.Parallel()
	led := setup(t)
	csvProof, jsonlProof, statusJSON, _ := reports(t, led, "p")
	if !strings.Contains(csvProof, "# profile: default\n") || strings.Contains(csvProof, "# session") {
		t.Errorf("CSV proof:\n%s", csvProof)
	}
	if sum := lastSummary(t, jsonlProof); sum.Profile != "default" || sum.Session != "" || sum.SessionHash != "" {
		t.Errorf("JSONL summary: %+v", sum)
	}
	st := statusOf(t, statusJSON)
	if _, ok := st["session_hash"]; ok || st["profile"] != "default" {
		t.Errorf("status JSON: %s", statusJSON)
	}
	if _, ok := st["session"]; ok {
		t.Errorf("status JSON shows a session field for a batch without one: %s", statusJSON)
	}
}

func lastSummary(t *testing.T, jsonl string) report.Summary {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(jsonl), "\n")
	var last struct {
		Summary report.Summary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	return last.Summary
}

func statusOf(t *testing.T, js string) map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal([]byte(js), &out); err != nil || len(out) != 1 {
		t.Fatalf("status JSON %s: %v", js, err)
	}
	return out[0]
}
