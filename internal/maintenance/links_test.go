package maintenance_test

import (
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/maintenance"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestOrphanLinks: a link made while the task was finishing is found once
// the task is gone, and only while the id is still pending.
func TestOrphanLinks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "A"}, "55", "56")
	b.open(t, ledger.BatchSpec{Name: "B"}, "55", "56")
	for _, id := range []string{"55", "56"} {
		b.rdb.HSet(b.ctx, asynqwire.TaskKey("q", "del:"+id), "state", "active")
		if _, err := b.ledger.Link(b.ctx, "B", id, "q", "del:"+id); err != nil {
			t.Fatal(err)
		}
	}
	taskID := func(id string) string { return "del:" + id }
	if orphans, _ := b.store.Orphans(b.ctx, taskID); len(orphans) != 0 {
		t.Errorf("orphans while the tasks exist: %+v", orphans)
	}
	b.rdb.Del(b.ctx, asynqwire.TaskKey("q", "del:55"), asynqwire.TaskKey("q", "del:56"))
	b.record(t, "B", "56", ledger.Deleted, "L") // 56 got its outcome in B some other way
	orphans, err := b.store.Orphans(b.ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 1 || orphans[0] != (maintenance.Orphan{ConversationID: "55", Batch: "B", Queue: "q"}) {
		t.Errorf("orphans %+v, want 55 in B on q", orphans)
	}
	// Until 55 gets its outcome in B (from the new task), it stays an
	// orphan: a janitor that died before queueing that task is covered.
	if again, _ := b.store.Orphans(b.ctx, taskID); len(again) != 1 {
		t.Errorf("orphan dropped before its outcome: %+v", again)
	}
	b.record(t, "B", "55", ledger.Deleted, "L")
	if again, _ := b.store.Orphans(b.ctx, taskID); len(again) != 0 {
		t.Errorf("orphan reported after its outcome: %+v", again)
	}
}

// TestArchivedLinkedTaskIsAnOrphan: a link to a task that then failed and
// was archived in its own batch needs a new task for the linked batch.
func TestArchivedLinkedTaskIsAnOrphan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "A"}, "77")
	b.open(t, ledger.BatchSpec{Name: "B"}, "77")
	key := asynqwire.TaskKey("default", "del:77")
	b.rdb.HSet(b.ctx, key, "state", "active")
	if _, err := b.ledger.Link(b.ctx, "B", "77", "default", "del:77"); err != nil {
		t.Fatal(err)
	}
	b.rdb.HSet(b.ctx, key, "state", "archived") // it failed in A, without seeing the link
	orphans, err := b.store.Orphans(b.ctx, func(id string) string { return "del:" + id })
	if err != nil || len(orphans) != 1 || orphans[0].Batch != "B" {
		t.Fatalf("orphans %+v, %v", orphans, err)
	}
	// The link stays until an outcome is recorded in B.
	if again, _ := b.store.Orphans(b.ctx, func(id string) string { return "del:" + id }); len(again) != 1 {
		t.Errorf("orphan forgotten before B got its outcome: %+v", again)
	}
	b.record(t, "B", "77", ledger.NotFound, "L")
	if again, _ := b.store.Orphans(b.ctx, func(id string) string { return "del:" + id }); len(again) != 0 {
		t.Errorf("a spent link is still reported: %+v", again)
	}
}
