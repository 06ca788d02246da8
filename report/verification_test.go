package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// proofs writes batch's CSV and JSONL proofs.
func proofs(t *testing.T, led *ledger.Ledger, batch string) (csvProof, jsonlProof string) {
	t.Helper()
	var c, j bytes.Buffer
	if err := report.WriteProof(context.Background(), led, batch, "csv", &c, now); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteProof(context.Background(), led, batch, "jsonl", &j, now); err != nil {
		t.Fatal(err)
	}
	return c.String(), j.String()
}

// TestAPlainProofIsUnchanged pins a batch's proofs, byte for byte, as they
// were before batches had verifications.
func TestAPlainProofIsUnchanged(t *testing.T) {
	t.Parallel()
	led := ledger.New(redistest.Start(t).Client())
	ctx := context.Background()
	a, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: "plain", Created: now.Add(-time.Hour), Due: now.Add(time.Hour), Note: "t-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, []string{"7"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Record(ctx, ledger.Attempt{ConversationID: "7", Batch: "plain", Outcome: ledger.Deleted, HasCode: true,
		LogID: "L7", At: now}); err != nil {
		t.Fatal(err)
	}
	csvProof, jsonlProof := proofs(t, led, "plain")
	wantCSV := `# batch: plain
# note: "t-1"
# profile: default
# state: complete
# created_at: 2026-11-27T11:00:00Z
# due_at: 2026-11-27T13:00:00Z
# completed_at: 2026-11-27T12:00:00Z
# total: 1
# deleted: 1
# not_found: 0
# failed: 0
# pending: 0
# invalid: 0
# generated_at: 2026-11-27T12:00:00Z
conversation_id,outcome,code,logid,attempts,finished_at
7,deleted,0,L7,1,2026-11-27T12:00:00Z
`
	wantJSONL := `{"conversation_id":"7","outcome":"deleted","code":"0","logid":"L7","attempts":1,"finished_at":"2026-11-27T12:00:00Z"}
{"summary":{"batch":"plain","note":"t-1","state":"complete","created_at":"2026-11-27T11:00:00Z","due_at":"2026-11-27T13:00:00Z",` +
		`"completed_at":"2026-11-27T12:00:00Z","total":1,"deleted":1,"not_found":0,"failed":0,"pending":0,"invalid":0,` +
		`"generated_at":"2026-11-27T12:00:00Z","profile":"default"}}
`
	if csvProof != wantCSV {
		t.Errorf("CSV proof:\n%s\nwant:\n%s", csvProof, wantCSV)
	}
	if jsonlProof != wantJSONL {
		t.Errorf("JSONL proof:\n%s\nwant:\n%s", jsonlProof, wantJSONL)
	}
}

// What a hostile API can put in a listing.
const (
	evilListingError = "walk failed: \x1b]0;pwned\x07,=HYPERLINK(1)\nnext\u202e"
	evilListLogID    = "=1+1 x,y"
)

// verifiedBatch makes a data subject's batch "s" of two ids, deleted, with
// a discovery listing and a verification round's (whose walk failed with
// hostile text) that found id 2 still listed; its verification failed.
func verifiedBatch(t *testing.T) *ledger.Ledger {
	t.Helper()
	led := ledger.New(redistest.Start(t).Client())
	ctx := context.Background()
	a, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: "s", Created: now.Add(-time.Hour), Due: now.Add(time.Hour), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, []string{"1", "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(led.RecordListing(ctx, "s", ledger.Listing{Phase: ledger.ListingDiscovery, BotID: "7001", ConnectorID: "1024",
		Pages: 1, Found: 2, LogIDs: []string{"LD1"}, At: now.Add(-time.Hour)}))
	for _, id := range []string{"1", "2"} {
		_, err := led.Record(ctx, ledger.Attempt{ConversationID: id, Batch: "s", Outcome: ledger.Deleted, HasCode: true, LogID: "L" + id, At: now})
		must(err)
	}
	_, err = led.MarkStillListed(ctx, "s", 1, []string{"2"}, evilListLogID, now)
	must(err)
	must(led.RecordListing(ctx, "s", ledger.Listing{Phase: ledger.ListingVerification, Round: 1, BotID: "7001", ConnectorID: "1024",
		Pages: 1, Found: 1, LogIDs: []string{"LV1", evilListLogID}, At: now, Error: evilListingError}))
	_, err = led.FinishVerification(ctx, "s", 1, 0, "listing failed: "+evilListingError, now)
	must(err)
	return led
}

// TestProofOfAVerifiedBatch: the CSV proof states each listing and the
// verification in comment lines, with the API's text shown and not
// obeyed; the JSONL summary has them exact.
func TestProofOfAVerifiedBatch(t *testing.T) {
	t.Parallel()
	led := verifiedBatch(t)
	csvProof, jsonlProof := proofs(t, led, "s")
	var comments, body []string
	for _, line := range strings.SplitAfter(csvProof, "\n") {
		if strings.HasPrefix(line, "# ") {
			comments = append(comments, strings.TrimSuffix(line, "\n"))
		} else {
			body = append(body, line)
		}
	}
	for _, want := range []string{
		"# state: complete",
		"# discovery: bot=7001 connector=1024 pages=1 found=2 at=2026-11-27T11:00:00Z log_ids=LD1",
		`# verification round 1: bot=7001 connector=1024 pages=1 found=1 at=2026-11-27T12:00:00Z log_ids=LV1 \x3d1\x2b1\x20x\x2cy ` +
			`error="walk failed: \x1b]0;pwned\a\x2c=HYPERLINK(1)\nnext\u202e"`,
		`# verification: state=failed rounds=1 still_listed=1 unverified=0 reason="listing failed: walk failed: \x1b]0;pwned\a\x2c=HYPERLINK(1)\nnext\u202e" verified_at=2026-11-27T12:00:00Z`,
	} {
		if !contains(comments, want) {
			t.Errorf("CSV proof lacks %s:\n%s", want, strings.Join(comments, "\n"))
		}
	}
	if bad := firstControl(csvProof); bad >= 0 {
		t.Errorf("CSV proof has a control at byte %d:\n%q", bad, csvProof)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.Join(body, ""))).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("rows %q: %v", rows, err)
	}
	for _, r := range rows[1:] {
		if r[0] == "2" && (r[1] != "failed" || r[2] != ledger.StillListedCode || r[3] != "'"+evilListLogID) {
			t.Errorf("row of the still listed id: %q", r)
		}
	}

	lines := strings.Split(strings.TrimSpace(jsonlProof), "\n")
	var last struct {
		Summary struct {
			report.Summary
			Discovery    []ledger.Listing          `json:"discovery"`
			Verification *report.ProofVerification `json:"verification"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	s := last.Summary
	if len(s.Discovery) != 1 || s.Discovery[0].BotID != "7001" || s.Discovery[0].Found != 2 {
		t.Errorf("discovery %+v", s.Discovery)
	}
	v := s.Verification
	if v == nil || v.State != "failed" || v.Rounds != 1 || v.StillListed != 1 || v.Unverified != 0 ||
		v.Reason != "listing failed: "+evilListingError || v.VerifiedAt == nil || len(v.Listings) != 1 ||
		v.Listings[0].Error != evilListingError || v.Listings[0].LogIDs[1] != evilListLogID {
		t.Errorf("verification %+v", v)
	}
	if s.State != "complete" || s.Failed != 1 || s.Deleted != 1 {
		t.Errorf("summary %+v", s.Summary)
	}
}

// TestProofOfABatchBeingVerified: a batch verifying is not complete, and
// its verification is pending, with no time.
func TestProofOfABatchBeingVerified(t *testing.T) {
	t.Parallel()
	led := ledger.New(redistest.Start(t).Client())
	ctx := context.Background()
	a, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: "v", Created: now.Add(-time.Hour), Due: now.Add(time.Hour), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Record(ctx, ledger.Attempt{ConversationID: "1", Batch: "v", Outcome: ledger.Deleted, HasCode: true, LogID: "L", At: now}); err != nil {
		t.Fatal(err)
	}
	csvProof, jsonlProof := proofs(t, led, "v")
	for _, want := range []string{"# state: verifying\n", "# completed_at: \n",
		"# verification: state=pending rounds=0 still_listed=0 unverified=0 reason=\"\" verified_at=\n"} {
		if !strings.Contains(csvProof, want) {
			t.Errorf("CSV proof lacks %q:\n%s", want, csvProof)
		}
	}
	if !strings.Contains(jsonlProof, `"discovery":[],"verification":{"state":"pending","rounds":0,"still_listed":0,"unverified":0,"reason":"","listings":[]}}}`) {
		t.Errorf("JSONL proof:\n%s", jsonlProof)
	}
}

// TestStatusOfVerifiedBatches: status JSON has a verification only for a
// data subject's batch; the table and the progress line and bar say where
// it stands, the API's text escaped.
func TestStatusOfVerifiedBatches(t *testing.T) {
	t.Parallel()
	led := verifiedBatch(t)
	failed, _, _ := led.Batch(context.Background(), "s")
	verifying := ledger.Batch{Name: "v", CreatedAt: now, DueAt: now.Add(time.Hour), Total: 2, Deleted: 2,
		Verification: ledger.Verification{State: ledger.VerificationPending}}
	plain := ledger.Batch{Name: "p", CreatedAt: now, DueAt: now.Add(time.Hour), Total: 2, Deleted: 1}
	var js bytes.Buffer
	if err := report.WriteStatus(&js, []ledger.Batch{failed, verifying, plain}, now, "json"); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if err := json.Unmarshal(js.Bytes(), &out); err != nil || len(out) != 3 {
		t.Fatalf("json %s: %v", js.String(), err)
	}
	if v, _ := out[0]["verification"].(map[string]any); v["state"] != "failed" || v["still_listed"] != 1.0 || len(v) != 2 {
		t.Errorf("failed batch's verification %v", out[0]["verification"])
	}
	if v, _ := out[1]["verification"].(map[string]any); v["state"] != "pending" || out[1]["state"] != "verifying" {
		t.Errorf("verifying batch: state %v, verification %v", out[1]["state"], out[1]["verification"])
	}
	if _, has := out[2]["verification"]; has {
		t.Errorf("a plain batch has a verification: %v", out[2])
	}

	var table bytes.Buffer
	if err := report.WriteStatus(&table, []ledger.Batch{failed, verifying, plain}, now, "table"); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(table.String(), "\n")
	for i, want := range []string{"complete (verification failed)", "verifying", "open"} {
		if f := strings.Fields(rows[i+1]); len(f) < 2 || !strings.HasPrefix(strings.Join(f[1:], " "), want+" ") {
			t.Errorf("row %q, want state %q", rows[i+1], want)
		}
	}
	line := report.ProgressLine(failed, now)
	if !strings.Contains(line, ` verification=failed still_listed=1 reason="listing failed: walk failed: \x1b]0;pwned\a,=HYPERLINK(1)\nnext\u202e"`) ||
		firstControl(line) >= 0 || strings.Contains(line, "\n") {
		t.Errorf("progress line %q", line)
	}
	if !strings.HasSuffix(report.ProgressBar(verifying, now, 100), " verifying") ||
		!strings.HasSuffix(report.ProgressBar(failed, now, 100), " verification failed") {
		t.Errorf("progress bars %q, %q", report.ProgressBar(verifying, now, 100), report.ProgressBar(failed, now, 100))
	}
	if strings.Contains(report.ProgressLine(plain, now), "verification") || strings.Contains(report.ProgressBar(plain, now, 100), "verif") {
		t.Error("a plain batch's progress mentions a verification")
	}
}
