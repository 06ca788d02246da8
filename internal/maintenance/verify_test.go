package maintenance_test

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestVerificationsAreQueued: the outbox's verification requests become
// tasks in the batch's queue, once; a stalled batch whose round's task was
// lost (archived, or never written) gets it again; a live task is left
// alone.
func TestVerificationsAreQueued(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "dsr", Queue: "gdpr", Profile: "app-cn", Session: session, Verify: true}, "7001")
	b.record(t, "dsr", "7001", ledger.Deleted, "L1")
	inspector := asynq.NewInspectorFromRedisClient(b.rdb)
	id := tasks.VerifyTaskID("dsr", 1)

	b.sweep(t, b.now, sessionKey)
	info, err := inspector.GetTaskInfo("gdpr", id)
	if err != nil || info.Type != tasks.TypeVerify {
		t.Fatalf("verification task: %+v, %v", info, err)
	}
	if pending, _ := b.ledger.PendingVerifications(b.ctx); len(pending) != 0 {
		t.Errorf("outbox still holds %+v", pending)
	}
	// A live task of a stalled batch is left as it is.
	later := b.now.Add(time.Hour)
	b.sweep(t, later, sessionKey)
	if again, err := inspector.GetTaskInfo("gdpr", id); err != nil || again.State != info.State || again.Retried != 0 {
		t.Errorf("live task touched: %+v, %v", again, err)
	}
	// Archived: queued again.
	if err := inspector.ArchiveTask("gdpr", id); err != nil {
		t.Fatal(err)
	}
	logs := b.sweep(t, later, sessionKey)
	if again, err := inspector.GetTaskInfo("gdpr", id); err != nil || again.State != asynq.TaskStatePending {
		t.Errorf("archived verification not queued again: %+v, %v\n%s", again, err, logs)
	}
	// Gone: queued again.
	if err := inspector.DeleteTask("gdpr", id); err != nil {
		t.Fatal(err)
	}
	b.sweep(t, later, sessionKey)
	if _, err := inspector.GetTaskInfo("gdpr", id); err != nil {
		t.Errorf("lost verification not queued again: %v", err)
	}
}
