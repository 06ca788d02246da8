package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// What a hostile API can send (msg, log id) and a user can write (a note,
// a batch name from before names were restricted).
const (
	evilMsg   = "\x1b[2J\x1b]0;pwned\x07line1\nline2"
	evilLogID = "=1+1"
	evilNote  = "ticket 118, subject 4711,=HYPERLINK(1); @A1;x\x1b[31m\nnext\u202e"
	evilBatch = "b\x1b[2J\n\u2066x"
)

var evilFailure = ledger.Failure{ConversationID: "7", Batch: evilBatch, Outcome: ledger.Failed, Code: "4000",
	Msg: evilMsg, HTTPStatus: 200, LogID: evilLogID, Attempts: 1, FirstAt: now, LastAt: now}

// writeFailure writes evilFailure in format.
func writeFailure(t *testing.T, format string) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := report.NewFailureWriter(&buf, format)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(evilFailure); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestFailureTableEscapesControls(t *testing.T) {
	t.Parallel()
	table := writeFailure(t, "table")
	if bad := firstControl(table); bad >= 0 {
		t.Errorf("byte %d is a control character:\n%q", bad, table)
	}
	if lines := strings.Count(table, "\n"); lines != 2 {
		t.Errorf("%d lines, want a header and one row:\n%s", lines, table)
	}
	for _, want := range []string{`\x1b[2J\x1b]0;pwned\aline1\nline2`, `b\x1b[2J\n\u2066x`} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %s:\n%s", want, table)
		}
	}
}

func TestFailureCSVNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	rows, err := csv.NewReader(strings.NewReader(writeFailure(t, "csv"))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %q: %v", rows, err)
	}
	want := []string{"7", evilBatch, "failed", "4000", evilMsg, "200", "'" + evilLogID, "1"}
	for i, w := range want {
		if rows[1][i] != w {
			t.Errorf("%s = %q, want %q", rows[0][i], rows[1][i], w)
		}
	}
}

func TestFailureJSONLIsExact(t *testing.T) {
	t.Parallel()
	var got ledger.Failure
	if err := json.Unmarshal([]byte(writeFailure(t, "jsonl")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Msg != evilMsg || got.LogID != evilLogID || got.Batch != evilBatch {
		t.Errorf("msg %q logid %q batch %q, want them exact", got.Msg, got.LogID, got.Batch)
	}
}

func TestStatusAndProgressEscapeControls(t *testing.T) {
	t.Parallel()
	b := ledger.Batch{Name: evilBatch, Note: evilNote, CreatedAt: now, DueAt: now.Add(time.Hour), Total: 2, Failed: 1}
	var table bytes.Buffer
	if err := report.WriteStatus(&table, []ledger.Batch{b}, now, "table"); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"table": table.String(), "progress line": report.ProgressLine(b, now) + "\n",
		"progress bar": report.ProgressBar(b, now, 100) + "\n"} {
		lines := map[string]int{"table": 2, "progress line": 1, "progress bar": 1}[name]
		if bad := firstControl(text); bad >= 0 || strings.Count(text, "\n") != lines {
			t.Errorf("%s: control at byte %d or a line break inside:\n%q", name, bad, text)
		}
		if !strings.Contains(text, `b\x1b[2J\n\u2066x`) {
			t.Errorf("%s does not show the name escaped:\n%s", name, text)
		}
	}
	if !strings.Contains(table.String(), `\x1b[31m\nnext\u202e`) {
		t.Errorf("the note is not shown escaped:\n%s", table.String())
	}
	var js bytes.Buffer
	_ = report.WriteStatus(&js, []ledger.Batch{b}, now, "json")
	var out []report.Status
	if err := json.Unmarshal(js.Bytes(), &out); err != nil || out[0].Note != evilNote || out[0].Batch != evilBatch {
		t.Errorf("json %s: %v, want note and batch exact", js.String(), err)
	}
}

// TestProofCSVHeaderIsInert checks the "# " summary lines: a note cannot
// add a line, and (as a spreadsheet splits a comment line at its commas
// like any other) cannot start a cell of its own with a formula.
func TestProofCSVHeaderIsInert(t *testing.T) {
	t.Parallel()
	led := ledger.New(redistest.Start(t).Client())
	ctx := context.Background()
	adder, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: "h", Note: evilNote})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Add(ctx, []string{"1", "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Record(ctx, ledger.Attempt{ConversationID: "1", Batch: "h", Outcome: ledger.Failed, Code: -5,
		HasCode: true, Msg: evilMsg, LogID: evilLogID, At: now}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := report.WriteProof(ctx, led, "h", "csv", &buf, now); err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if strings.HasPrefix(line, "# ") {
			for _, cell := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ';' })[1:] {
				if c := strings.TrimLeft(cell, " "); report.SafeCell(c) != c {
					t.Errorf("comment line %q has a cell that starts with a formula: %q", line, cell)
				}
			}
			if firstControl(line) >= 0 {
				t.Errorf("comment line %q holds a control character", line)
			}
			if v, ok := strings.CutPrefix(line, "# note: "); ok {
				if note, err := strconv.Unquote(v); err != nil || note != evilNote {
					t.Errorf("note line %q unquotes to %q (%v), want the note", line, note, err)
				}
			}
			continue
		}
		body = append(body, line)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.Join(body, "\n"))).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("rows %q: %v\n%s", rows, err, buf.String())
	}
	for _, r := range rows[1:] {
		// The code is a number the program formats: a negative one stays a
		// number.
		if r[0] == "1" && (r[3] != "'"+evilLogID || r[2] != "-5") {
			t.Errorf("row %q: want code -5 and logid %q", r, "'"+evilLogID)
		}
	}
	if !strings.Contains(buf.String(), `# note: "ticket 118, subject 4711\x2c=HYPERLINK(1)\x3b @A1;x\x1b[31m\nnext\u202e"`) {
		t.Errorf("note line not escaped as documented:\n%s", buf.String())
	}
}

// firstControl is the index of the first C0 control byte other than a
// newline, or DEL, or -1.
func firstControl(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' || c == 0x7f {
			return i
		}
	}
	return -1
}
