package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// The answer of a hostile API: a msg that would clear the screen, retitle
// the terminal, ring its bell and break a row in two, and a log id that a
// spreadsheet would compute.
const (
	hostileMsg   = "\x1b[2J\x1b]0;pwned\x07line1\nline2"
	hostileLogID = "=1+1"
	hostileNote  = "ticket \x1b[31m118\nsecond line"
)

// hostileAPI answers every DELETE with code 4000 (a permanent failure), the
// hostile msg and the hostile log id.
func hostileAPI(t *testing.T) *httptest.Server {
	t.Helper()
	body, err := json.Marshal(map[string]any{"code": 4000, "msg": hostileMsg, "detail": map[string]string{"logid": hostileLogID}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHostileAPIAndNoteAreContained is issue 11, point 6: what the API sends
// (msg, log id) and what a user writes (a note) can neither act on the
// terminal nor be computed by a spreadsheet, and JSON keeps it exact.
func TestHostileAPIAndNoteAreContained(t *testing.T) {
	t.Parallel()
	path, ids := writeIDs(t, 2, 7579996104798150001)
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"COZE_API_TOKEN": "pat_hostile", "COZE_BASE_URL": hostileAPI(t).URL,
		"REDIS_URL": srv.URL}}
	// --note refuses control characters now; the note stands for one that
	// an older version or another producer wrote through the library.
	adder, err := ledger.New(srv.Client()).OpenBatch(context.Background(), ledger.BatchSpec{Name: "hostile", Note: hostileNote})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adder.Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--file", path, "--batch", "hostile", "--max-retry", "0"}, fastRun...)
	if res := c.run(context.Background(), args...); res.code != exitPartial {
		t.Fatalf("run: exit %d\n%s", res.code, res.stderr)
	}
	ctx := context.Background()
	out := func(args ...string) string {
		t.Helper()
		res := c.run(ctx, args...)
		if res.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, res.code, res.stderr)
		}
		return res.stdout
	}

	t.Run("failures list table", func(t *testing.T) {
		table := out("failures", "list")
		assertInert(t, table)
		if lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n"); len(lines) != 1+len(ids) {
			t.Errorf("%d lines, want a header and %d rows:\n%s", len(lines), len(ids), table)
		}
		if !strings.Contains(table, `\x1b[2J\x1b]0;pwned\aline1\nline2`) {
			t.Errorf("the msg is not shown escaped:\n%s", table)
		}
	})
	t.Run("failures list csv", func(t *testing.T) {
		rows := readCSV(t, out("failures", "list", "--format", "csv"))
		if len(rows) != 1+len(ids) {
			t.Fatalf("%d rows: %q", len(rows), rows)
		}
		for _, r := range rows[1:] {
			if r[6] != "'"+hostileLogID || r[4] != hostileMsg {
				t.Errorf("logid %q msg %q, want logid %q and the msg exact", r[6], r[4], "'"+hostileLogID)
			}
		}
	})
	t.Run("failures list jsonl", func(t *testing.T) {
		lines := strings.Split(strings.TrimSuffix(out("failures", "list", "--format", "jsonl"), "\n"), "\n")
		for _, line := range lines {
			var f struct{ Msg, LogID string }
			if err := json.Unmarshal([]byte(line), &f); err != nil || f.Msg != hostileMsg || f.LogID != hostileLogID {
				t.Errorf("line %s (%v): msg %q logid %q, want them exact", line, err, f.Msg, f.LogID)
			}
		}
		if len(lines) != len(ids) {
			t.Errorf("%d lines", len(lines))
		}
	})
	t.Run("status", func(t *testing.T) {
		for _, args := range [][]string{{"status"}, {"status", "hostile"}} {
			table := out(args...)
			assertInert(t, table)
			if !strings.Contains(table, `ticket \x1b[31m118\nsecond line`) {
				t.Errorf("%v: the note is not shown escaped:\n%s", args, table)
			}
		}
		var st []struct{ Note string }
		if err := json.Unmarshal([]byte(out("status", "hostile", "--format", "json")), &st); err != nil || len(st) != 1 || st[0].Note != hostileNote {
			t.Errorf("status json: %v %q, want the note exact", err, st)
		}
	})
	t.Run("report csv", func(t *testing.T) {
		proof := out("report", "hostile")
		var body []string
		for _, line := range strings.Split(strings.TrimSuffix(proof, "\n"), "\n") {
			if !strings.HasPrefix(line, "# ") {
				body = append(body, line)
			}
		}
		rows := readCSV(t, strings.Join(body, "\n"))
		if len(rows) != 1+len(ids) {
			t.Fatalf("%d rows (a comment line let the note in?):\n%s", len(rows), proof)
		}
		for _, r := range rows[1:] {
			if r[3] != "'"+hostileLogID {
				t.Errorf("logid cell %q, want %q", r[3], "'"+hostileLogID)
			}
		}
		if strings.ContainsRune(proof, 0x1b) {
			t.Errorf("the comment lines carry a raw ESC:\n%q", proof)
		}
	})
	t.Run("report jsonl", func(t *testing.T) {
		lines := strings.Split(strings.TrimSuffix(out("report", "hostile", "--format", "jsonl"), "\n"), "\n")
		for _, line := range lines[:len(lines)-1] {
			var r struct{ LogID string }
			if err := json.Unmarshal([]byte(line), &r); err != nil || r.LogID != hostileLogID {
				t.Errorf("row %s (%v): logid %q, want it exact", line, err, r.LogID)
			}
		}
		var sum struct{ Summary struct{ Note string } }
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Summary.Note != hostileNote {
			t.Errorf("summary %s (%v), want the note exact", lines[len(lines)-1], err)
		}
	})
}

// assertInert fails if text holds a byte a terminal would act on: ESC, BEL
// or any other C0 control but the newline that ends a line, or DEL.
func assertInert(t *testing.T, text string) {
	t.Helper()
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 && c != '\n' || c == 0x7f {
			t.Errorf("byte %d is the control %#02x:\n%q", i, c, text)
			return
		}
	}
}

func readCSV(t *testing.T, text string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatal(fmt.Errorf("csv: %w\n%s", err, text))
	}
	return rows
}
