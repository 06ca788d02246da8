package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestBatchCannotWriteIntoAnotherBatch is issue 11's reproduction: `enqueue
// --batch evil:ids:1` wrote into the id bucket 1 of batch "evil", whose
// report then had 19 rows of garbage. It is refused, and the report of
// "evil" stays as it was.
func TestBatchCannotWriteIntoAnotherBatch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	ctx := context.Background()
	if res := c.run(ctx, "enqueue", "1001", "1002", "2001", "--batch", "evil"); res.code != 0 {
		t.Fatalf("enqueue into evil: %+v", res)
	}
	before := c.run(ctx, "report", "evil")
	if before.code != 0 || strings.Count(before.stdout, "\n1001,") != 1 {
		t.Fatalf("report evil: %+v", before)
	}

	res := c.run(ctx, "enqueue", "3001", "--batch", "evil:ids:1")
	if res.code != exitSetup {
		t.Errorf("enqueue --batch evil:ids:1: exit %d, want 2; stderr %q", res.code, res.stderr)
	}
	want := `--batch: invalid batch name "evil:ids:1": use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`
	if !strings.Contains(res.stderr, want) {
		t.Errorf("stderr %q, want %q", res.stderr, want)
	}
	if after := c.run(ctx, "report", "evil"); after.code != 0 || withoutGeneratedAt(after.stdout) != withoutGeneratedAt(before.stdout) {
		t.Errorf("report evil changed:\nbefore:\n%s\nafter:\n%s", before.stdout, after.stdout)
	}
	if _, ok, err := ledger.New(srv.Client()).Batch(ctx, "evil:ids:1"); ok || err != nil {
		t.Errorf("batch evil:ids:1 exists (%v)", err)
	}
}

// TestNameFlagsAreChecked: every command that takes a batch or queue name
// refuses one outside the rule, or a reserved one, with an error that names
// the flag and the rule, before it touches Redis or needs a token.
func TestNameFlagsAreChecked(t *testing.T) {
	t.Parallel()
	queueRule := "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
	batchRule := "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
	token := map[string]string{"COZE_API_TOKEN": "pat_x"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"enqueue queue with a space", nil, []string{"enqueue", "1", "--queue", "a b"}, `--queue: invalid queue name "a b": ` + queueRule},
		{"enqueue callback queue", nil, []string{"enqueue", "1", "--queue", callback.Queue}, `--queue: invalid queue name "callbacks": reserved`},
		{"enqueue queue from env", map[string]string{"COZE_ERASER_ENQUEUE_QUEUE": "q{1}"}, []string{"enqueue", "1"}, `--queue: invalid queue name "q{1}": ` + queueRule},
		{"enqueue long queue", nil, []string{"enqueue", "1", "--queue", strings.Repeat("q", 65)}, "--queue: invalid queue name"},
		{"enqueue empty queue", nil, []string{"enqueue", "1", "--queue", ""}, `--queue: invalid queue name "": ` + queueRule},
		{"enqueue batch with a colon", nil, []string{"enqueue", "1", "--batch", "ticket:1"}, `--batch: invalid batch name "ticket:1": ` + batchRule},
		{"enqueue reserved batch", nil, []string{"enqueue", "1", "--batch", ledger.InvalidBatch}, `--batch: invalid batch name "invalid-tasks": reserved`},
		{"run callback queue", token, []string{"run", "1", "--queue", callback.Queue}, `--queue: invalid queue name "callbacks": reserved`},
		{"run queue with a space", token, []string{"run", "1", "--queue", "a b"}, `--queue: invalid queue name "a b": ` + queueRule},
		{"run batch with a colon", token, []string{"run", "1", "--batch", "evil:ids:1"}, `--batch: invalid batch name "evil:ids:1": ` + batchRule},
		{"run reserved batch", token, []string{"run", "1", "--batch", ledger.InvalidBatch}, `--batch: invalid batch name "invalid-tasks": reserved`},
		{"worker queue with a space", token, []string{"worker", "--queues", "gdpr=6,a b=1"}, `--queues: invalid queue name "a b": ` + queueRule},
		{"worker callback queue", token, []string{"worker", "--queues", callback.Queue}, `--queues: invalid queue name "callbacks": reserved`},
		{"worker queues from env", map[string]string{"COZE_API_TOKEN": "pat_x", "COZE_ERASER_WORKER_QUEUES": "a@b"}, []string{"worker"}, `--queues: invalid queue name "a@b": ` + queueRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runWithoutRedis(t, tt.env, tt.args...)
			if res.code != exitSetup {
				t.Errorf("exit %d, want 2; stderr %q", res.code, res.stderr)
			}
			first := strings.SplitN(res.stderr, "\n", 2)[0]
			if !strings.HasPrefix(first, "coze-eraser: ") || !strings.Contains(first, tt.want) {
				t.Errorf("stderr %q, want a first line containing %q", res.stderr, tt.want)
			}
		})
	}
}

// withoutGeneratedAt drops the report's "# generated_at:" line, the one line
// that differs between two reports of an unchanged batch.
func withoutGeneratedAt(report string) string {
	lines := strings.Split(report, "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "# generated_at:") })
	return strings.Join(lines, "\n")
}

// TestDefaultRunBatchIsValid: the name run derives from its input always
// passes the batch name rule, whatever the file is called.
func TestDefaultRunBatchIsValid(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"file:/data/ids.txt", "file:/x/evil:ids:1", "file:/x/a@b c{d}/e", "file:/x/ünïcødé.txt",
		"file:/x/...", "file:/x/-", "file:/x/" + strings.Repeat("é", 200), "file:/", "args:1 2 3", "args:"} {
		if name := defaultRunBatch(source); enqueue.ValidateBatch(name) != nil {
			t.Errorf("defaultRunBatch(%q) = %q: %v", source, name, enqueue.ValidateBatch(name))
		}
	}
}

// TestRunWorksItsQueue: `run --queue gdpr` puts its ids on gdpr, so its own
// worker must take tasks from gdpr (it took them only from "default", and
// the run never ended).
func TestRunWorksItsQueue(t *testing.T) {
	t.Parallel()
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	c := cli{env: map[string]string{"COZE_API_TOKEN": "pat_run", "COZE_BASE_URL": fake.URL}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"run", "7379996104798150001", "7379996104798150002", "--queue", "gdpr"}, fastRun...)
	res := c.run(ctx, args...)
	if res.code != 0 || !strings.HasPrefix(lastLine(res.stdout), "total=2 deleted=2 ") {
		t.Errorf("run --queue gdpr: exit %d, stdout %q, stderr:\n%s", res.code, res.stdout, res.stderr)
	}
}
