package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestUnknownIdentityIsHeldBack: a task that names a profile this worker
// was not given, or a session its static token cannot act as, is never
// called (as another identity it would find the conversation "not found")
// and never archived: it waits as an auth pause, using up no retry, with
// one log line naming the profile and not the session; the worker's other
// tasks go on.
func TestUnknownIdentityIsHeldBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := asynq.NewClientFromRedisClient(b.rdb)
	held := map[string]tasks.Payload{
		"7379996104798150101": {Profile: "app-cn"},
		"7379996104798150102": {Profile: "app-cn", Session: "user-4711-PERSONAL"},
		"7379996104798150103": {Profile: "default", Session: "user-4711-PERSONAL"},
	}
	for id, p := range held {
		p.ConversationID, p.Batch = id, "held"
		task, err := tasks.NewTask(p, asynq.MaxRetry(tasks.AsynqMaxRetry(3)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.enqueue.Enqueue(b.ctx, "7379996104798150104", enqueue.Batch("plain")); err != nil {
		t.Fatal(err)
	}
	b.startWorker(t, b.fastConfig(t, nil))

	waitFor(t, 10*time.Second, "the plain task's deletion", func() bool { _, ok := b.fake.Deleted("7379996104798150104"); return ok })
	waitFor(t, 10*time.Second, "the held tasks to wait as retries", func() bool {
		info, err := b.inspector.GetQueueInfo(enqueue.DefaultQueue)
		return err == nil && info.Retry == len(held)
	})
	for id := range held {
		info, err := b.inspector.GetTaskInfo(enqueue.DefaultQueue, tasks.TaskID(id))
		if err != nil {
			t.Fatal(err)
		}
		if info.State != asynq.TaskStateRetry || info.Retried != 0 || !info.NextProcessAt.After(time.Now().Add(30*time.Second)) {
			t.Errorf("%s: state %v, retried %d, next at %v: want a retry a minute away that used up nothing",
				id, info.State, info.Retried, info.NextProcessAt)
		}
	}
	for _, c := range b.fake.Calls() {
		if _, ok := held[c.ID]; ok {
			t.Errorf("%s was called as another identity", c.ID)
		}
	}
	logs := b.logs.String()
	if n := strings.Count(logs, `"profile":"app-cn"`); n != 1 {
		t.Errorf("%d log lines name profile app-cn, want 1 (once a minute):\n%s", n, logs)
	}
	if !strings.Contains(logs, `"profile":"default"`) || strings.Contains(logs, "user-4711-PERSONAL") {
		t.Errorf("want a line for the default profile's session tasks, without the session:\n%s", logs)
	}
}
