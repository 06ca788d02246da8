package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestBatchControl: pause, resume, extend and cancel through the command,
// with their outcomes in the ledger and history, and every refusal an
// exit 2 that names the batch or the flag.
func TestBatchControl(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	ctx := context.Background()
	due := time.Now().Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	if res := c.run(ctx, "enqueue", "--batch", "bc", "--due", due.Format(time.RFC3339),
		"7379996104798150001", "7379996104798150002"); res.code != 0 {
		t.Fatalf("enqueue: exit %d: %s", res.code, res.stderr)
	}
	// One id gets its task (a feed with room for one), the other still
	// waits in the ledger: cancel ends both and removes the task.
	if fed, err := enqueue.NewClient(srv.Client()).Feed(ctx, "default", 1); err != nil || fed.Tasks != 1 {
		t.Fatalf("feed: %+v, %v", fed, err)
	}
	led := ledger.New(srv.Client())
	steps := []struct {
		args []string
		code int
		want string // in stdout for exit 0, stderr otherwise
	}{
		{[]string{"batch", "pause", "bc", "--note", "legal hold"}, 0, "batch bc paused"},
		{[]string{"batch", "pause", "bc"}, 2, "paused already"},
		{[]string{"batch", "resume", "bc"}, 0, "batch bc resumed"},
		{[]string{"batch", "resume", "bc"}, 2, "not paused"},
		{[]string{"batch", "extend", "bc", "--note", "complex"}, 2, "--due"},
		{[]string{"batch", "extend", "bc", "--due", "tomorrow", "--note", "x"}, 2, `--due "tomorrow"`},
		{[]string{"batch", "extend", "bc", "--due", due.Add(24 * time.Hour).Format(time.RFC3339)}, 2, "--note"},
		{[]string{"batch", "extend", "bc", "--due", due.Add(-time.Hour).Format(time.RFC3339), "--note", "x"}, 2, "later than the current"},
		{[]string{"batch", "extend", "bc", "--due", due.Add(61 * 24 * time.Hour).Format(time.RFC3339), "--note", "x"}, 2, "two more months"},
		{[]string{"batch", "extend", "bc", "--due", due.Add(30 * 24 * time.Hour).Format(time.RFC3339), "--note", "complex request"}, 0, "(was " + due.Format(time.RFC3339)},
		{[]string{"batch", "pause", "nope"}, 2, `"nope"`},
		{[]string{"batch", "pause", "bad name!"}, 2, "batch name"},
		{[]string{"batch", "cancel", "bc", "--note", "withdrawn"}, 0, "2 pending ids ended cancelled, 1 queued tasks removed; it is complete"},
		{[]string{"batch", "resume", "bc"}, 2, "batch bc"},
		{[]string{"batch", "cancel", "gone"}, 2, "batch gone was lost"},
		{[]string{"batch", "pause", "done"}, 2, "batch is complete"},
	}
	if _, err := led.MarkLost(ctx, "gone", time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if res := c.run(ctx, "enqueue", "--batch", "done", "7379996104798150003"); res.code != 0 {
		t.Fatalf("enqueue: exit %d: %s", res.code, res.stderr)
	}
	if _, err := led.Record(ctx, ledger.Attempt{ConversationID: "7379996104798150003", Batch: "done", Queue: "default",
		Outcome: ledger.Deleted, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		res := c.run(ctx, s.args...)
		out := res.stdout
		if s.code != 0 {
			out = res.stderr
		}
		if res.code != s.code || !strings.Contains(out, s.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d with %q", s.args, res.code, res.stdout, res.stderr, s.code, s.want)
		}
	}
	inspector := asynq.NewInspectorFromRedisClient(srv.Client())
	for _, id := range []string{"7379996104798150001", "7379996104798150002"} {
		if info, err := inspector.GetTaskInfo("default", tasks.TaskID(id)); err == nil {
			t.Errorf("%s's task is still there after cancel: %+v", id, info)
		}
	}
	if names, err := led.FeedReady(ctx, "default", time.Now().Add(time.Hour), 100); err != nil || slices.Contains(names, "bc") {
		t.Errorf("default's feed %v, %v: the cancelled batch is still in it", names, err)
	}
	b, _, err := led.Batch(ctx, "bc")
	if err != nil || b.Cancelled != 2 || b.Pending() != 0 || !b.DueAt.Equal(due.Add(30*24*time.Hour)) || !b.OriginalDue.Equal(due) {
		t.Errorf("batch %+v, %v", b, err)
	}
	for _, check := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "bc", "--format", "json"}, []string{`"cancelled": 2`, `"history": [`, `"action": "extend"`, `"note": "complex request"`, `"old_due": "` + due.Format(time.RFC3339)}},
		{[]string{"status", "bc"}, []string{"CANCELLED", "complete (cancelled)"}},
		{[]string{"report", "bc", "--format", "csv"}, []string{"# cancelled: 2\n", "# history: ", ` cancel note="withdrawn"`, ",cancelled,"}},
		{[]string{"report", "bc", "--format", "jsonl"}, []string{`"outcome":"cancelled"`, `"history":[`}},
	} {
		res := c.run(ctx, check.args...)
		for _, want := range check.want {
			if res.code != 0 || !strings.Contains(res.stdout, want) {
				t.Errorf("%q: exit %d, %s; want %q in:\n%s", check.args, res.code, res.stderr, want, res.stdout)
			}
		}
	}
	h, err := led.History(ctx, "bc")
	if err != nil || len(h) != 4 || h[0].Action != "pause" || h[2].Action != "extend" || h[2].Note != "complex request" || h[3].Action != "cancel" {
		t.Errorf("history %+v, %v", h, err)
	}
}
