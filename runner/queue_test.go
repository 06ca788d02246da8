package runner_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/runner"
	"github.com/coze-eraser/coze-eraser/tasks"
	"github.com/coze-eraser/coze-eraser/worker"
)

// TestPrivateQueueIsAValidBoundedName: any batch name, the longest
// included, gives a queue name tasks.ValidateQueue takes, the same each
// time (a run resumed finds its tasks), and another for another batch.
func TestPrivateQueueIsAValidBoundedName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("b", 128)
	for _, batch := range []string{"r", long, "run-ids.txt-0a1b2c3d"} {
		q := runner.PrivateQueue(batch)
		if err := tasks.ValidateQueue(q); err != nil || !strings.HasPrefix(q, "run.") {
			t.Errorf("PrivateQueue(%.20q) = %q: %v", batch, q, err)
		}
		if runner.PrivateQueue(batch) != q {
			t.Errorf("PrivateQueue(%.20q) is not stable", batch)
		}
	}
	if runner.PrivateQueue("a") == runner.PrivateQueue("b") {
		t.Error("two batches share a private queue")
	}
}

// TestAFinishedRunLeavesNoQueue: every queue asynq knows is read by each
// enqueue's cross-queue check, so a finished run removes its private
// queue.
func TestAFinishedRunLeavesNoQueue(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	api, err := coze.NewClient(fake.URL, coze.StaticToken("pat_x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = runner.Run(context.Background(), runner.Config{
		Redis: srv.Client(), Batch: "private", PrivateQueue: true,
		Worker: worker.Config{API: api, PollInterval: 20 * time.Millisecond},
	}, runner.Input{IDs: slices.Values([]string{"11", "12", "13"})})
	if err != nil {
		t.Fatal(err)
	}
	queues, err := srv.Client().SMembers(context.Background(), asynqwire.QueuesKey).Result()
	if err != nil || slices.Contains(queues, runner.PrivateQueue("private")) {
		t.Errorf("asynq's queues after the run: %v %v", queues, err)
	}
}
