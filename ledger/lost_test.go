package ledger_test

import (
	"errors"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestRecordNeverRecreatesALostBatch: Redis loses the batch and its tasks
// while a task runs; the task's outcome is kept as a lost outcome, and the
// batch is not created anew from it (it would be a proof of 1 id out of 3).
func TestRecordNeverRecreatesALostBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "gone", CallbackURL: "http://127.0.0.1:1/"}, "1", "2", "3")
	if err := b.rdb.FlushDB(b.ctx).Err(); err != nil { // Redis restarted empty
		t.Fatal(err)
	}
	got := b.record(t, "gone", "1", ledger.Deleted, "LOG1")
	if !got.Lost || got.Transitions != 0 || len(got.Completed) != 0 {
		t.Errorf("recorded %+v; want Lost, no transition, no completion", got)
	}
	if _, ok, _ := b.ledger.Batch(b.ctx, "gone"); ok {
		t.Fatal("the batch was created anew from a late record")
	}
	lost, err := b.ledger.LostBatches(b.ctx)
	if err != nil || len(lost) != 1 || lost[0].Name != "gone" || lost[0].LostOutcomes != 1 || lost[0].State(b.now) != ledger.StateLost {
		t.Fatalf("lost batches %+v, %v; want gone with 1 outcome kept", lost, err)
	}
	var kept []ledger.Entry
	_ = b.ledger.LostOutcomes(b.ctx, "gone", func(e ledger.Entry) error { kept = append(kept, e); return nil })
	if len(kept) != 1 || kept[0].ConversationID != "1" || kept[0].Outcome != ledger.Deleted || kept[0].LogID != "LOG1" {
		t.Errorf("kept %+v; want id 1 deleted with its log id", kept)
	}
	if n, _ := b.rdb.SCard(b.ctx, keyspace.New(ledger.DefaultPrefix).Callbacks()).Result(); n != 0 {
		t.Errorf("%d completions queued for a callback", n)
	}
	// Enqueueing the input again replaces the lost batch.
	b.open(t, ledger.BatchSpec{Name: "gone", Created: time.Now()}, "1", "2", "3")
	if lost, _ := b.ledger.LostBatches(b.ctx); len(lost) != 0 {
		t.Errorf("still lost after the batch was created again: %+v", lost)
	}
}

// TestRecordCreatesTheBatchOfAnotherProducersTask: a producer that writes
// tasks without opening a batch still gets one, while its task exists.
func TestRecordCreatesTheBatchOfAnotherProducersTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rdb.HSet(b.ctx, asynqwire.TaskKey("default", tasks.TaskID("42")), "state", "active")
	if got := b.record(t, "foreign", "42", ledger.Deleted, "L"); got.Lost || got.Transitions != 1 {
		t.Fatalf("recorded %+v; want one transition", got)
	}
	if bt := b.batch(t, "foreign"); bt.Total != 1 || bt.Deleted != 1 || bt.Instance == "" {
		t.Errorf("batch %+v; want 1 deleted and an instance id", bt)
	}
	if lost, _ := b.ledger.LostBatches(b.ctx); len(lost) != 0 {
		t.Errorf("lost batches %+v", lost)
	}
}

// TestAddingToALostBatchFails: a producer still adding ids when Redis loses
// the batch gets an ErrBatchLost naming it, and the batch shows as lost.
func TestAddingToALostBatchFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.adder(t, ledger.BatchSpec{Name: "feeding"})
	if _, err := a.Add(b.ctx, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	b.rdb.FlushDB(b.ctx)
	_, err := a.Add(b.ctx, []string{"2"})
	var lostErr *ledger.LostError
	if !errors.Is(err, ledger.ErrBatchLost) || !errors.As(err, &lostErr) || lostErr.Batch != "feeding" {
		t.Fatalf("add after the loss: %v; want a LostError for feeding", err)
	}
	if bt, ok, _ := b.ledger.BatchOrLost(b.ctx, "feeding"); !ok || bt.State(time.Now()) != ledger.StateLost {
		t.Errorf("BatchOrLost: %+v %v; want lost", bt, ok)
	}
}

// TestMarkLostOnlyMarksMissingBatches and dismissing a loss.
func TestMarkLostOnlyMarksMissingBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "here"}, "1")
	if marked, err := b.ledger.MarkLost(b.ctx, "here", b.now, true); err != nil || marked {
		t.Errorf("MarkLost of an existing batch: %v %v", marked, err)
	}
	if marked, _ := b.ledger.MarkLost(b.ctx, "gone", b.now, true); !marked {
		t.Error("MarkLost of a missing batch did not mark it")
	}
	if marked, _ := b.ledger.MarkLost(b.ctx, "gone", b.now.Add(time.Hour), true); marked {
		t.Error("marked twice")
	}
	if ok, _ := b.ledger.DismissLost(b.ctx, "gone"); !ok {
		t.Error("DismissLost found nothing")
	}
	if lost, _ := b.ledger.LostBatches(b.ctx); len(lost) != 0 {
		t.Errorf("lost after dismissal: %+v", lost)
	}
}

// TestLossDetector: a restart with AOF keeps the data (a restart, not a
// loss); a restart without persistence, and a FLUSHALL, lose it.
func TestLossDetector(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, d *ledger.LossDetector) ledger.LossSign {
		t.Helper()
		s, err := d.Check(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("restart empty", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		d := ledger.New(srv.Client()).NewLossDetector()
		if s := check(t, d); s.Lost || s.Restarted {
			t.Fatalf("first check %+v", s)
		}
		if s := check(t, d); s.Lost || s.Restarted {
			t.Fatalf("second check %+v", s)
		}
		srv.Restart()
		s := check(t, d)
		if !s.Lost || !s.Restarted {
			t.Fatalf("after an empty restart %+v; want lost and restarted", s)
		}
		t.Logf("reason: %s", s.Reason)
		if s := check(t, d); s.Lost {
			t.Errorf("the loss is reported again: %+v", s)
		}
	})
	t.Run("restart with AOF", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
		d := ledger.New(srv.Client()).NewLossDetector()
		check(t, d)
		srv.Restart()
		if s := check(t, d); s.Lost || !s.Restarted {
			t.Fatalf("after a restart with AOF %+v; want restarted, not lost", s)
		}
	})
	t.Run("flushall", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		rdb := srv.Client()
		d := ledger.New(rdb).NewLossDetector()
		check(t, d)
		rdb.FlushAll(t.Context())
		if s := check(t, d); !s.Lost || s.Restarted {
			t.Fatalf("after FLUSHALL %+v; want lost, not restarted", s)
		}
	})
}

// TestTaskIDPrefixAgrees: the ledger finds a deletion's task under the id
// tasks.TaskID gives it.
func TestTaskIDPrefixAgrees(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "a"}, "7")
	b.rdb.Del(b.ctx, keyspace.New(ledger.DefaultPrefix).Batch("a"))
	b.rdb.HSet(b.ctx, asynqwire.TaskKey("default", tasks.TaskID("7")), "state", "active")
	if got := b.record(t, "a", "7", ledger.Deleted, "L"); got.Lost {
		t.Error("the record did not find the task under tasks.TaskID's id")
	}
}

// TestATaskCannotRecreateALostBatch: the producer had added the ids before
// Redis lost the batch and wrote their tasks after; those tasks exist, but
// the batch was found lost, so their records do not make a new one.
func TestATaskCannotRecreateALostBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "gone"}, "5")
	b.rdb.FlushDB(b.ctx)
	if _, err := b.ledger.MarkLost(b.ctx, "gone", b.now, true); err != nil {
		t.Fatal(err)
	}
	b.rdb.HSet(b.ctx, asynqwire.TaskKey("default", tasks.TaskID("5")), "state", "active")
	if got := b.record(t, "gone", "5", ledger.Deleted, "L"); !got.Lost {
		t.Errorf("recorded %+v; want Lost", got)
	}
	if bt, ok, _ := b.ledger.Batch(b.ctx, "gone"); ok {
		t.Fatalf("recreated: %+v", bt)
	}
	if lost, _ := b.ledger.LostBatches(b.ctx); len(lost) != 1 || lost[0].LostOutcomes != 1 || !lost[0].LostWhileOpen {
		t.Errorf("lost %+v; want gone, open, 1 outcome kept", lost)
	}
}

// TestALossEndsWhenTheBatchIsOpenedAgain, whatever the clocks: the machine
// that marked the loss may run ahead of the one that enqueues again.
func TestALossEndsWhenTheBatchIsOpenedAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "ahead"}, "1")
	b.rdb.FlushDB(b.ctx)
	if _, err := b.ledger.MarkLost(b.ctx, "ahead", b.now.Add(24*time.Hour), true); err != nil {
		t.Fatal(err)
	}
	b.open(t, ledger.BatchSpec{Name: "ahead", Created: b.now}, "1")
	if lost, _ := b.ledger.LostBatches(b.ctx); len(lost) != 0 {
		t.Errorf("still lost after the batch was opened again: %+v", lost)
	}
}

// TestACompleteBatchLosesOnlyItsProof: a batch that was complete when it
// was lost is listed as lost, without work pending.
func TestACompleteBatchLosesOnlyItsProof(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.ledger.MarkLost(b.ctx, "done", b.now, false); err != nil {
		t.Fatal(err)
	}
	if lost, _ := b.ledger.LostBatches(b.ctx); len(lost) != 1 || lost[0].LostWhileOpen || lost[0].LostOutcomes != 0 {
		t.Errorf("lost %+v; want done, not open, no outcome", lost)
	}
}

// TestARolledBackBatchNeverCompletes: Redis holds an older copy of the
// batch; finishing every id it holds does not complete it or queue its
// callback, until its input is enqueued again (the batch opened again).
func TestARolledBackBatchNeverCompletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "old", CallbackURL: "http://127.0.0.1:1/"}, "1", "2")
	if marked, err := b.ledger.MarkRolledBack(b.ctx, "old", b.now); err != nil || !marked {
		t.Fatalf("MarkRolledBack: %v %v", marked, err)
	}
	b.record(t, "old", "1", ledger.Deleted, "L1")
	if got := b.record(t, "old", "2", ledger.Deleted, "L2"); len(got.Completed) != 0 {
		t.Errorf("the old copy completed: %+v", got)
	}
	if n, _ := b.rdb.SCard(b.ctx, keyspace.New(ledger.DefaultPrefix).Callbacks()).Result(); n != 0 {
		t.Errorf("%d callbacks queued", n)
	}
	if bt, _, _ := b.ledger.BatchOrLost(b.ctx, "old"); bt.State(b.now) != ledger.StateLost {
		t.Errorf("state %s, want lost", bt.State(b.now))
	}
	b.open(t, ledger.BatchSpec{Name: "old"}, "1", "2") // the input again; seal completes it
	bt := b.batch(t, "old")
	if bt.State(b.now) != ledger.StateComplete || bt.Completions != 1 {
		t.Errorf("after the input was enqueued again: %+v", bt)
	}
}

// TestLossDetectorSeesARollback: Redis restarts from a snapshot older than
// the detector's last look.
func TestLossDetectorSeesARollback(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	l := ledger.New(rdb)
	d := l.NewLossDetector()
	if _, err := d.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	open := func(name string) {
		a, err := l.OpenBatch(t.Context(), ledger.BatchSpec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = a.Add(t.Context(), []string{"1"})
	}
	open("a")
	rdb.Save(t.Context())
	open("b")
	if s, _ := d.Check(t.Context()); s.Lost {
		t.Fatalf("before the restart: %+v", s)
	}
	srv.Restart()
	s, err := d.Check(t.Context())
	if err != nil || !s.Lost || !s.RolledBack {
		t.Fatalf("after a restart from an older snapshot: %+v %v; want a rollback", s, err)
	}
	t.Logf("reason: %s", s.Reason)
}
