package ledger_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestCancel: pending ids (queued or retrying) end cancelled, finished ids
// keep their outcome, the tallies add up, the batch completes once with a
// callback that counts the cancelled ids, and its history says so.
func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "c", CallbackURL: "http://127.0.0.1:1/cb", TTL: 48 * time.Hour}, "1", "2", "3", "4")
	b.record(t, "c", "1", ledger.Deleted, "l1")
	b.record(t, "c", "2", ledger.NotFound, "l2")
	b.record(t, "c", "3", ledger.Retrying, "l3")

	r, err := b.ledger.Cancel(b.ctx, "c", "requester withdrew", b.now)
	if err != nil || r.Cancelled != 2 || !r.Completed {
		t.Fatalf("cancel %+v, %v; want 2 cancelled and completed", r, err)
	}
	got := b.batch(t, "c")
	if got.Deleted != 1 || got.NotFound != 1 || got.Cancelled != 2 || got.Pending() != 0 || got.State(b.now) != ledger.StateComplete ||
		got.Control != ledger.ControlCancelled {
		t.Errorf("batch after cancel %+v, state %s", got, got.State(b.now))
	}
	for id, want := range map[string]ledger.Outcome{"1": ledger.Deleted, "2": ledger.NotFound, "3": ledger.Cancelled, "4": ledger.Cancelled} {
		if e, ok, err := b.ledger.Entry(b.ctx, "c", id); err != nil || !ok || e.Outcome != want {
			t.Errorf("id %s: %+v %v %v, want %s", id, e, ok, err, want)
		}
	}
	pending, _ := b.outbox().PendingCallbacks(b.ctx)
	if len(pending) != 1 || pending[0].Cancelled != 2 || pending[0].Total != 4 {
		t.Fatalf("callbacks %+v, want one with 2 cancelled of 4", pending)
	}
	// A late record of a cancelled id changes nothing; a second cancel
	// finds nothing to do and queues no second callback.
	if rec := b.record(t, "c", "4", ledger.Deleted, "late"); rec.Transitions != 0 {
		t.Errorf("late record of a cancelled id made %d transitions", rec.Transitions)
	}
	if r, err := b.ledger.Cancel(b.ctx, "c", "again", b.now); err != nil || r.Cancelled != 0 || r.Completed {
		t.Errorf("second cancel %+v, %v", r, err)
	}
	if pending, _ := b.outbox().PendingCallbacks(b.ctx); len(pending) != 1 {
		t.Errorf("%d callbacks after a second cancel, want 1", len(pending))
	}
	h, err := b.ledger.History(b.ctx, "c")
	if err != nil || len(h) != 1 || h[0].Action != "cancel" || h[0].Note != "requester withdrew" || !h[0].At.Equal(b.now) {
		t.Fatalf("history %+v, %v", h, err)
	}
	// The history keeps the batch's retention.
	key := keyspace.New(ledger.DefaultPrefix).BatchHistory("c")
	if ttl := b.rdb.TTL(b.ctx, key).Val(); ttl < 47*time.Hour || ttl > 48*time.Hour {
		t.Errorf("history TTL %v, want the batch's 48h", ttl)
	}
	if err := b.ledger.Pause(b.ctx, "c", "", b.now); !errors.Is(err, ledger.ErrBatchCancelled) {
		t.Errorf("pause of a cancelled batch: %v", err)
	}
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "c"}); !errors.Is(err, ledger.ErrBatchConflict) ||
		!errors.Is(err, ledger.ErrBatchCancelled) {
		t.Errorf("new ids for a cancelled batch: %v", err)
	}
}

// TestPauseResume: the control state follows, the batch shows paused
// until its due time passes, and wrong-state actions are refused.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	due := b.now.Add(24 * time.Hour)
	b.open(t, ledger.BatchSpec{Name: "p", Due: due}, "1", "2")
	if err := b.ledger.Resume(b.ctx, "p", "", b.now); !errors.Is(err, ledger.ErrBatchState) {
		t.Errorf("resume of a running batch: %v", err)
	}
	if err := b.ledger.Pause(b.ctx, "p", "legal hold", b.now); err != nil {
		t.Fatal(err)
	}
	if err := b.ledger.Pause(b.ctx, "p", "", b.now); !errors.Is(err, ledger.ErrBatchState) {
		t.Errorf("second pause: %v", err)
	}
	if s, err := b.ledger.Control(b.ctx, "p"); err != nil || s != ledger.ControlPaused {
		t.Errorf("control %q, %v", s, err)
	}
	got := b.batch(t, "p")
	if got.State(b.now) != ledger.StatePaused || got.State(due.Add(time.Second)) != ledger.StateOverdue {
		t.Errorf("states %s / %s, want paused, then overdue past its due time", got.State(b.now), got.State(due.Add(time.Second)))
	}
	if names, _ := b.ledger.OpenBatches(b.ctx); len(names) != 1 {
		t.Errorf("open batches %q: a paused batch stays in the open index", names)
	}
	if err := b.ledger.Resume(b.ctx, "p", "", b.now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.ledger.Control(b.ctx, "p"); s != ledger.ControlRunning {
		t.Errorf("control after resume %q", s)
	}
	h, _ := b.ledger.History(b.ctx, "p")
	if len(h) != 2 || h[0].Action != "pause" || h[0].Note != "legal hold" || h[1].Action != "resume" {
		t.Errorf("history %+v", h)
	}
	for _, name := range []string{"nope"} {
		if err := b.ledger.Pause(b.ctx, name, "", b.now); !errors.Is(err, ledger.ErrNoBatch) || !strings.Contains(err.Error(), name) {
			t.Errorf("pause of a missing batch: %v", err)
		}
	}
	b.record(t, "p", "1", ledger.Deleted, "")
	b.record(t, "p", "2", ledger.Deleted, "")
	if err := b.ledger.Pause(b.ctx, "p", "", b.now); !errors.Is(err, ledger.ErrBatchComplete) {
		t.Errorf("pause of a complete batch: %v", err)
	}
}

// TestExtend: later due times within 60 days of the original are kept,
// with both times in the history; earlier, past and too late are refused.
func TestExtend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	due := b.now.Add(30 * 24 * time.Hour)
	b.open(t, ledger.BatchSpec{Name: "e", Due: due}, "1")
	for _, bad := range []time.Time{due.Add(-time.Hour), due, b.now.Add(-time.Hour), due.Add(ledger.MaxExtension + time.Minute)} {
		if _, err := b.ledger.Extend(b.ctx, "e", bad, "x", b.now); !errors.Is(err, ledger.ErrBadExtension) {
			t.Errorf("extend to %v: %v", bad, err)
		}
	}
	mid := due.Add(30 * 24 * time.Hour)
	if old, err := b.ledger.Extend(b.ctx, "e", mid, "complex request", b.now); err != nil || !old.Equal(due) {
		t.Fatalf("extend: %v, %v", old, err)
	}
	// The bound is from the original due time, not the extended one.
	if _, err := b.ledger.Extend(b.ctx, "e", mid.Add(31*24*time.Hour), "", b.now); !errors.Is(err, ledger.ErrBadExtension) ||
		!strings.Contains(err.Error(), "two more months") {
		t.Errorf("extend past 60 days: %v", err)
	}
	last := due.Add(ledger.MaxExtension)
	if _, err := b.ledger.Extend(b.ctx, "e", last, "more", b.now); err != nil {
		t.Fatal(err)
	}
	got := b.batch(t, "e")
	if !got.DueAt.Equal(last) || !got.OriginalDue.Equal(due) {
		t.Errorf("due %v original %v", got.DueAt, got.OriginalDue)
	}
	h, _ := b.ledger.History(b.ctx, "e")
	if len(h) != 2 || !h[0].OldDue.Equal(due) || !h[0].Due.Equal(mid) || h[0].Note != "complex request" || !h[1].OldDue.Equal(mid) {
		t.Errorf("history %+v", h)
	}
	if s, _ := b.ledger.OpenStats(b.ctx, due.Add(time.Hour)); s.Overdue != 0 || !s.OldestDue.Equal(last) {
		t.Errorf("open stats %+v: the open index must hold the new due time", s)
	}
}
