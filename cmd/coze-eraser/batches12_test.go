package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestEnqueueCreatesNoBatchForNothing: a directory given as --file, and an
// empty file, exit 2 and leave no batch; a file of only invalid lines makes
// an "empty" batch that counts them.
func TestEnqueueCreatesNoBatchForNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	led := ledger.New(srv.Client())
	ctx := context.Background()
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	junk := filepath.Join(dir, "junk.txt")
	if err := os.WriteFile(empty, []byte("\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("abc\nx1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ batch, file, want string }{
		{"dir", dir, "is a directory"},
		{"empty", empty, "no ids in the input"},
	} {
		res := c.run(ctx, "enqueue", "--file", tc.file, "--batch", tc.batch)
		if res.code != exitSetup || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("enqueue --file %s: exit %d, stderr %q; want 2 and %q", tc.batch, res.code, res.stderr, tc.want)
		}
		if _, ok, _ := led.Batch(ctx, tc.batch); ok {
			t.Errorf("enqueue --file %s created batch %s", tc.batch, tc.batch)
		}
	}
	res := c.run(ctx, "enqueue", "--file", junk, "--batch", "junk")
	if res.code != exitPartial {
		t.Errorf("only invalid lines: exit %d, want 1\n%s", res.code, res.stderr)
	}
	st := c.run(ctx, "status", "junk", "--format", "json")
	if !strings.Contains(st.stdout, `"state": "empty"`) || !strings.Contains(st.stdout, `"invalid": 2`) {
		t.Errorf("status of an all-invalid batch:\n%s", st.stdout)
	}
}

// TestRunLeavesOtherBatchesQueuedWork: with a shared Redis, run works only
// its own ids; a fleet's task waiting in queue "default" stays there and
// the API never sees its id.
func TestRunLeavesOtherBatchesQueuedWork(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	const fleetID = "7579996104798150001"
	fleet := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	if res := fleet.run(ctx, "enqueue", fleetID, "--batch", "fleet"); res.code != 0 {
		t.Fatalf("enqueue: exit %d\n%s", res.code, res.stderr)
	}
	path, ids := writeIDs(t, 50, 7579996104798160001)
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	c := cli{env: map[string]string{"COZE_API_TOKEN": "pat_run", "COZE_BASE_URL": fake.URL, "REDIS_URL": srv.URL}}
	res := c.run(ctx, append([]string{"run", "--file", path}, fastRun...)...)
	if res.code != 0 || !strings.HasPrefix(lastLine(res.stdout), "total=50 deleted=50 ") {
		t.Fatalf("run: exit %d %q\n%s", res.code, lastLine(res.stdout), res.stderr)
	}
	for _, call := range fake.Calls() {
		if call.ID == fleetID {
			t.Errorf("run called the API for %s, another batch's id", fleetID)
		}
	}
	// The fleet's id still waits in default: in its batch, pending, and
	// either unfed (no worker serves default here) or a pending task.
	led := ledger.New(srv.Client())
	if e, ok, err := led.Entry(ctx, "fleet", fleetID); err != nil || !ok || e.Outcome.Terminal() {
		t.Errorf("the fleet's entry: %+v, %v, %v; want it pending", e, ok, err)
	}
	if b, ok, err := led.Batch(ctx, "fleet"); err != nil || !ok || b.Total != 1 || b.Pending() != 1 {
		t.Errorf("the fleet's batch: %+v, %v, %v; want its id pending", b, ok, err)
	}
	unfed, err := led.Unfed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := asynq.NewInspectorFromRedisClient(srv.Client()).GetTaskInfo("default", tasks.TaskID(fleetID))
	if taskPending := err == nil && info.State == asynq.TaskStatePending; unfed["default"] != 1 && !taskPending {
		t.Errorf("the fleet's id: unfed %v, task %v, %v; want it still waiting in default", unfed, info, err)
	}
	if len(fake.Deletions()) != len(ids) {
		t.Errorf("fake deleted %d ids, want the run's %d", len(fake.Deletions()), len(ids))
	}
}

// TestNoSuchBatchIsOneErrorEverywhere: status, report and failures list and
// retry say the same thing about an unknown batch, and exit 2.
func TestNoSuchBatchIsOneErrorEverywhere(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	want := `no batch "nope": it may have expired, or never existed`
	for _, args := range [][]string{
		{"status", "nope"},
		{"report", "nope"},
		{"failures", "list", "--batch", "nope"},
		{"failures", "retry", "--batch", "nope"},
		{"failures", "retry", "--batch", "nope", "--dry-run"},
	} {
		res := c.run(context.Background(), args...)
		if res.code != exitSetup || !strings.Contains(res.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", strings.Join(args, " "), res.code, res.stderr, want)
		}
	}
}

// TestFailuresRetryDryRunSaysWould: a dry run's tally is worded as what
// would happen, not as what did.
func TestFailuresRetryDryRunSaysWould(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	res := c.run(context.Background(), "failures", "retry", "--dry-run")
	if res.code != 0 || lastLine(res.stdout) != "would retry=0 already_queued=0" {
		t.Errorf("dry run: exit %d, %q", res.code, lastLine(res.stdout))
	}
	if res := c.run(context.Background(), "failures", "retry"); lastLine(res.stdout) != "retried=0 already_queued=0" {
		t.Errorf("real retry: %q", lastLine(res.stdout))
	}
}

// TestEnqueueWarnsOfAnUnservedQueue: enqueue into a queue no live worker
// serves warns, naming the queues that are served, and status shows the
// batch as stalled there rather than an ETA of "?".
func TestEnqueueWarnsOfAnUnservedQueue(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	server := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{"default": 1, "callbacks": 1},
		LogLevel: asynq.FatalLevel})
	if err := server.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return asynq.SkipRetry })); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Shutdown)
	waitUntil(t, 10*time.Second, func() bool {
		servers, err := asynq.NewInspectorFromRedisClient(rdb).Servers()
		return err == nil && len(servers) == 1
	})
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	ctx := context.Background()
	res := c.run(ctx, "enqueue", "7679996104798150001", "--batch", "g", "--queue", "gdpr")
	want := "warning: --queue gdpr: no live worker serves it (workers serve default)"
	if res.code != 0 || !strings.Contains(res.stderr, want) {
		t.Errorf("enqueue --queue gdpr: exit %d, stderr %q; want %q", res.code, res.stderr, want)
	}
	if res := c.run(ctx, "enqueue", "7679996104798150002", "--batch", "d", "--in", "1h"); strings.Contains(res.stderr, "warning") {
		t.Errorf("enqueue into a served queue warned: %q", res.stderr)
	}
	st := c.run(ctx, "status", "g")
	if !strings.Contains(st.stdout, "stalled: no worker serves queue gdpr") {
		t.Errorf("status of a batch in an unserved queue:\n%s", st.stdout)
	}
	if st := c.run(ctx, "status", "d"); strings.Contains(st.stdout, "stalled") {
		t.Errorf("status of a batch in a served queue:\n%s", st.stdout)
	}
}
