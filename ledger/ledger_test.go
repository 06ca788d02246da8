package ledger_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

type bundle struct {
	ctx    context.Context
	ledger *ledger.Ledger
}

func setup(t *testing.T) bundle {
	t.Helper()
	srv := redistest.Start(t)
	return bundle{ctx: context.Background(), ledger: ledger.New(srv.Client())}
}

func attempt(id string, o ledger.Outcome, code int64, logID string) ledger.Attempt {
	return ledger.Attempt{
		ConversationID: id, Batch: "b1", Queue: "default", Outcome: o,
		Code: code, HasCode: true, Msg: "msg " + string(o), HTTPStatus: 200, LogID: logID,
		At: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
	}
}

func TestRecordMovesOnlyForward(t *testing.T) {
	t.Parallel()
	b := setup(t)
	steps := []struct {
		outcome      ledger.Outcome
		wantTerminal bool
		wantAttempts int
	}{
		{ledger.Retrying, false, 1},
		{ledger.Retrying, false, 2},
		{ledger.NotFound, true, 3},
		{ledger.Deleted, false, 0}, // a duplicate run after the terminal outcome
		{ledger.Failed, false, 0},
	}
	for i, s := range steps {
		got, err := b.ledger.Record(b.ctx, attempt("11", s.outcome, 4002, "L"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		if got.Terminal != s.wantTerminal || got.Attempts != s.wantAttempts {
			t.Errorf("step %d (%s): got %+v, want terminal=%v attempts=%d", i, s.outcome, got, s.wantTerminal, s.wantAttempts)
		}
	}
	final, ok, err := b.ledger.Final(b.ctx, "b1", "11")
	if err != nil || !ok {
		t.Fatalf("Final: %v %v", ok, err)
	}
	if final.Outcome != ledger.NotFound || final.LogID != "L2" || final.Attempts != 3 || final.Code != "4002" {
		t.Errorf("final = %+v", final)
	}
	f, ok, err := b.ledger.Failure(b.ctx, "11")
	if err != nil || !ok {
		t.Fatalf("Failure: %v %v", ok, err)
	}
	if f.Outcome != ledger.NotFound || f.Attempts != 3 || f.LogID != "L2" || f.Batch != "b1" || f.Queue != "default" {
		t.Errorf("failure = %+v", f)
	}
}

func TestDeletionClearsTheFailureRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.ledger.Record(b.ctx, attempt("22", ledger.Retrying, 5000, "LA")); err != nil {
		t.Fatal(err)
	}
	got, err := b.ledger.Record(b.ctx, attempt("22", ledger.Deleted, 0, "LB"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Terminal || got.Attempts != 2 {
		t.Errorf("deleted after one failure: %+v, want terminal with 2 attempts", got)
	}
	if _, ok, _ := b.ledger.Failure(b.ctx, "22"); ok {
		t.Error("failure record still there after the deletion")
	}
	var n int
	_ = b.ledger.Failures(b.ctx, ledger.Filter{}, func(ledger.Failure) error { n++; return nil })
	if n != 0 {
		t.Errorf("failure index lists %d records, want 0", n)
	}
	final, _, _ := b.ledger.Final(b.ctx, "b1", "22")
	if final.Outcome != ledger.Deleted || final.LogID != "LB" {
		t.Errorf("final = %+v", final)
	}
}

// TestConcurrentRecordsGiveOneTerminalOutcome races duplicate executions of
// the same task.
func TestConcurrentRecordsGiveOneTerminalOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t)
	outcomes := []ledger.Outcome{ledger.Deleted, ledger.NotFound, ledger.Failed, ledger.Retrying}
	var wg sync.WaitGroup
	var mu sync.Mutex
	terminal := 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := b.ledger.Record(b.ctx, attempt("33", outcomes[i%len(outcomes)], 0, "L"))
			if err != nil {
				t.Error(err)
				return
			}
			if got.Terminal {
				mu.Lock()
				terminal++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if terminal != 1 {
		t.Errorf("%d attempts reported a terminal transition, want exactly 1", terminal)
	}
}

func TestBatchesAreSeparate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := attempt("44", ledger.Deleted, 0, "L1")
	if got, _ := b.ledger.Record(b.ctx, a); !got.Terminal {
		t.Fatal("first batch: not terminal")
	}
	a.Batch = "b2"
	a.Outcome = ledger.NotFound
	if got, _ := b.ledger.Record(b.ctx, a); !got.Terminal {
		t.Error("the same id in another batch gets its own outcome")
	}
}

func TestFailuresFilterAndReopen(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := func(id, batch string, o ledger.Outcome) {
		a := attempt(id, o, 4000, "L"+id)
		a.Batch = batch
		if _, err := b.ledger.Record(b.ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	rec("1", "x", ledger.Failed)
	rec("2", "x", ledger.NotFound)
	rec("3", "y", ledger.Failed)
	rec("4", "y", ledger.Retrying)
	list := func(f ledger.Filter) string {
		var ids []string
		if err := b.ledger.Failures(b.ctx, f, func(r ledger.Failure) error { ids = append(ids, r.ConversationID); return nil }); err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, ",")
	}
	for _, c := range []struct {
		f    ledger.Filter
		want string
	}{
		{ledger.Filter{}, "1,2,3,4"},
		{ledger.Filter{Batch: "x"}, "1,2"},
		{ledger.Filter{Outcome: ledger.Failed}, "1,3"},
		{ledger.Filter{Batch: "y", Outcome: ledger.Retrying}, "4"},
	} {
		if got := list(c.f); got != c.want {
			t.Errorf("Failures(%+v) = %s, want %s", c.f, got, c.want)
		}
	}

	f, _, _ := b.ledger.Failure(b.ctx, "1")
	if ok, err := b.ledger.Reopen(b.ctx, f, ledger.Failed); err != nil || !ok {
		t.Fatalf("Reopen failed record: %v, %v", ok, err)
	}
	if ok, _ := b.ledger.Reopen(b.ctx, f, ledger.Failed); ok {
		t.Error("Reopen twice: the second must be a no-op")
	}
	if _, ok, _ := b.ledger.Final(b.ctx, "x", "1"); ok {
		t.Error("reopened id still has a terminal outcome")
	}
	again := attempt("1", ledger.Deleted, 0, "LZ")
	again.Batch = "x"
	if got, _ := b.ledger.Record(b.ctx, again); !got.Terminal {
		t.Error("after Reopen a new outcome must be recordable")
	}
}

func TestFailureCSV(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := ledger.NewFailureWriter(&buf, "csv")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	_ = w.Write(ledger.Failure{ConversationID: "7", Batch: "b", Outcome: ledger.Failed, Code: "4000", Msg: `bad, "quoted"`,
		HTTPStatus: 200, LogID: "L", Attempts: 1, FirstAt: at, LastAt: at})
	_ = w.Write(ledger.Failure{ConversationID: "8", Batch: "b", Outcome: ledger.Retrying, Attempts: 2, FirstAt: at, LastAt: at})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"conversation_id", "batch", "outcome", "code", "msg", "http_status", "logid", "attempts", "first_at", "last_at"},
		{"7", "b", "failed", "4000", `bad, "quoted"`, "200", "L", "1", "2026-11-27T12:00:00Z", "2026-11-27T12:00:00Z"},
		{"8", "b", "retrying", "", "", "", "", "2", "2026-11-27T12:00:00Z", "2026-11-27T12:00:00Z"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows = %q", rows)
	}
	for i := range want {
		if strings.Join(rows[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d = %q, want %q", i, rows[i], want[i])
		}
	}
	if _, err := ledger.NewFailureWriter(&buf, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}
