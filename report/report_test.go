package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// setup makes a batch "p" of three ids: one deleted, one failed, one
// pending.
func setup(t *testing.T) *ledger.Ledger {
	t.Helper()
	led := ledger.New(redistest.Start(t).Client())
	ctx := context.Background()
	adder, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: "p", Created: now.Add(-time.Hour), Due: now.Add(time.Hour), Note: "ticket\n118"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Add(ctx, []string{"1", "2", "3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range []ledger.Attempt{
		{ConversationID: "1", Batch: "p", Outcome: ledger.Deleted, HasCode: true, LogID: "LOG1", At: now},
		{ConversationID: "2", Batch: "p", Outcome: ledger.Failed, Code: 4000, HasCode: true, LogID: "LOG2", At: now},
	} {
		if _, err := led.Record(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return led
}

func TestProofCSV(t *testing.T) {
	t.Parallel()
	led := setup(t)
	var buf bytes.Buffer
	if err := report.WriteProof(context.Background(), led, "p", "csv", &buf, now); err != nil {
		t.Fatal(err)
	}
	var comments, body []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.HasPrefix(line, "# ") {
			comments = append(comments, line)
		} else {
			body = append(body, line)
		}
	}
	for _, want := range []string{"# batch: p", `# note: "ticket\n118"`, "# state: open", "# total: 3", "# deleted: 1",
		"# failed: 1", "# pending: 1", "# due_at: 2026-11-27T13:00:00Z"} {
		if !contains(comments, want) {
			t.Errorf("summary lacks %q:\n%s", want, strings.Join(comments, "\n"))
		}
	}
	rows, err := csv.NewReader(strings.NewReader(strings.Join(body, "\n"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[0]] = strings.Join(r[1:], ",")
	}
	want := map[string]string{
		"1": "deleted,0,LOG1,1,2026-11-27T12:00:00Z",
		"2": "failed,4000,LOG2,1,2026-11-27T12:00:00Z",
		"3": "pending,,,,",
	}
	if strings.Join(rows[0], ",") != "conversation_id,outcome,code,logid,attempts,finished_at" || len(got) != 3 {
		t.Fatalf("rows %q", rows)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("row %s = %q, want %q", id, got[id], w)
		}
	}
}

func TestProofJSONLEndsWithTheSummary(t *testing.T) {
	t.Parallel()
	led := setup(t)
	var buf bytes.Buffer
	if err := report.WriteProof(context.Background(), led, "p", "jsonl", &buf, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	var last struct {
		Summary report.Summary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[3]), &last); err != nil || last.Summary.Total != 3 || last.Summary.Pending != 1 {
		t.Errorf("summary line %s: %v", lines[3], err)
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil || row["conversation_id"] == nil {
		t.Errorf("row %s: %v", lines[0], err)
	}
}

func TestProofOfMissingBatch(t *testing.T) {
	t.Parallel()
	led := ledger.New(redistest.Start(t).Client())
	err := report.WriteProof(context.Background(), led, "nope", "csv", &bytes.Buffer{}, now)
	if !errors.Is(err, report.ErrNoBatch) {
		t.Errorf("err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	led := setup(t)
	b, _, _ := led.Batch(context.Background(), "p")
	var table bytes.Buffer
	if err := report.WriteStatus(&table, []ledger.Batch{b}, now, "table"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "p      open   2026-11-27 11:00Z  2026-11-27 13:00Z  3      1        0          1       1") {
		t.Errorf("table:\n%s", table.String())
	}
	var js bytes.Buffer
	_ = report.WriteStatus(&js, []ledger.Batch{b}, now.Add(2*time.Hour), "json")
	var out []report.Status
	if err := json.Unmarshal(js.Bytes(), &out); err != nil || len(out) != 1 || out[0].State != "overdue" || out[0].Pending != 1 {
		t.Errorf("json %s: %v", js.String(), err)
	}
	if line := report.ProgressLine(b, now); !strings.Contains(line, "p: 2/3 done (66.6%) deleted=1 not_found=0 failed=1 pending=1") {
		t.Errorf("progress line %q", line)
	}
	if bar := report.ProgressBar(b, now, 100); !strings.Contains(bar, "[") || !strings.Contains(bar, " 66.6%") {
		t.Errorf("progress bar %q", bar)
	}
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}
