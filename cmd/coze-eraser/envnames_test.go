package main

import (
	"context"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestEnvOfOneCommandStaysWithIt is issue 12's point: a variable set for
// one command (COZE_ERASER_FORMAT for status, COZE_ERASER_BATCH for
// enqueue) changed every command with a flag of that name. Settings of
// one command are now named after it and reach no other.
func TestEnvOfOneCommandStaysWithIt(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	leaks := map[string]string{"REDIS_URL": srv.URL, "COZE_ERASER_FORMAT": "json", "COZE_ERASER_BATCH": "leaked"}

	res := cli{env: leaks}.run(context.Background(), "enqueue", "7379996104798150001", "--batch", "env-scope")
	if res.code != exitOK {
		t.Fatalf("enqueue: exit %d, stderr %q", res.code, res.stderr)
	}
	res = cli{env: leaks}.run(context.Background(), "report", "env-scope")
	if res.code != exitOK || !strings.HasPrefix(res.stdout, "# batch: env-scope\n") {
		t.Errorf("report with COZE_ERASER_FORMAT=json set: exit %d, stdout %.80q, stderr %q; want the CSV proof", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "COZE_ERASER_FORMAT is not read") || !strings.Contains(res.stderr, "COZE_ERASER_REPORT_FORMAT") {
		t.Errorf("report stderr %q; want a warning naming the old variable and the new one", res.stderr)
	}

	// The command's own variable still works.
	own := map[string]string{"REDIS_URL": srv.URL, "COZE_ERASER_REPORT_FORMAT": "jsonl", "COZE_ERASER_ENQUEUE_BATCH": "from-env"}
	res = cli{env: own}.run(context.Background(), "report", "env-scope")
	if res.code != exitOK || !strings.HasPrefix(res.stdout, `{"`) {
		t.Errorf("report with COZE_ERASER_REPORT_FORMAT=jsonl: exit %d, stdout %.80q; want JSON lines", res.code, res.stdout)
	}
	res = cli{env: own}.run(context.Background(), "enqueue", "7379996104798150002")
	if res.code != exitOK || !strings.Contains(lastLine(res.stdout), "batch=from-env ") {
		t.Errorf("enqueue with COZE_ERASER_ENQUEUE_BATCH: exit %d, stdout %q", res.code, res.stdout)
	}
}

// TestHelpNamesEachVariable: --help shows the variable each flag reads,
// global ones under their global name, the others under the command's.
func TestHelpNamesEachVariable(t *testing.T) {
	t.Parallel()
	for cmd, want := range map[string][]string{
		"worker":        {"$REDIS_URL", "$COZE_BASE_URL", "$COZE_ERASER_REDIS_WAIT", "$COZE_ERASER_LOG_FORMAT", "$COZE_ERASER_WORKER_CONCURRENCY", "$COZE_ERASER_WORKER_METRICS_ADDR"},
		"report":        {"$REDIS_URL", "$COZE_ERASER_REPORT_FORMAT", "$COZE_ERASER_REPORT_OUTPUT"},
		"failures list": {"$COZE_ERASER_FAILURES_LIST_BATCH", "$COZE_ERASER_FAILURES_LIST_FORMAT"},
		"enqueue":       {"$COZE_ERASER_ENQUEUE_BATCH", "$COZE_ERASER_ENQUEUE_CONCURRENCY", "$COZE_ERASER_REDIS_TLS_CA"},
		"run":           {"$COZE_ERASER_RUN_CONCURRENCY", "$COZE_ERASER_LOG_LEVEL"},
	} {
		res := cli{}.run(context.Background(), append(strings.Fields(cmd), "--help")...)
		for _, v := range want {
			if !strings.Contains(res.stdout, v+"]") {
				t.Errorf("%s --help does not name %s", cmd, v)
			}
		}
		for _, old := range []string{"$COZE_ERASER_CONCURRENCY]", "$COZE_ERASER_FORMAT]", "$COZE_ERASER_BATCH]"} {
			if strings.Contains(res.stdout, old) {
				t.Errorf("%s --help still names %s", cmd, old)
			}
		}
	}
}
