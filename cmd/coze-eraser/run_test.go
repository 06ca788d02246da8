package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// writeIDs writes n ids to a file and returns its path and the ids.
func writeIDs(t *testing.T, n int, base int64) (string, []string) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.FormatInt(base+int64(i)*13, 10)
	}
	path := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(path, []byte(strings.Join(ids, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// scriptedFake answers by id alone, so two runs against two such fakes
// must give the same outcomes: every 7th id fails for good, every 5th is
// not found, every 3rd fails twice before it is deleted.
func scriptedFake(t *testing.T, ids []string) *cozetest.Server {
	t.Helper()
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	for i, id := range ids {
		switch {
		case i%7 == 0:
			fake.ScriptForever(id, cozetest.BadParameter)
		case i%5 == 0:
			fake.ScriptForever(id, cozetest.NotFound)
		case i%3 == 0:
			fake.Script(id, cozetest.InternalError, cozetest.BadGateway)
		}
	}
	return fake
}

var fastRun = []string{"--retry-base", "10ms", "--retry-cap", "50ms", "--metrics-addr", "", "--concurrency", "20"}

// TestRunEmbeddedAndRealRedisAgree is issue 5's second acceptance point.
func TestRunEmbeddedAndRealRedisAgree(t *testing.T) {
	t.Parallel()
	path, ids := writeIDs(t, 500, 7379996104798150001)
	outcomes := func(redisArgs ...string) map[string]string {
		fake := scriptedFake(t, ids)
		report := filepath.Join(t.TempDir(), "proof.csv")
		c := cli{env: map[string]string{"COZE_API_TOKEN": "pat_run", "COZE_BASE_URL": fake.URL}}
		args := append([]string{"run", "--file", path, "--max-retry", "5", "--report", report}, fastRun...)
		res := c.run(context.Background(), append(args, redisArgs...)...)
		if res.code != exitPartial { // the scripted permanent failures
			t.Fatalf("run %v: exit %d\n%s", redisArgs, res.code, res.stderr)
		}
		if !strings.HasPrefix(lastLine(res.stdout), "total=500 ") {
			t.Errorf("summary %q", lastLine(res.stdout))
		}
		out := map[string]string{}
		data, _ := os.ReadFile(report)
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Split(line, ","); len(f) == 6 && f[0] != "conversation_id" {
				out[f[0]] = f[1] + "/" + f[2]
			}
		}
		return out
	}
	embedded := outcomes()
	if !strings.Contains(strings.Join(mapsKeys(embedded), ""), ids[0]) || len(embedded) != len(ids) {
		t.Fatalf("embedded run reported %d ids", len(embedded))
	}
	real := outcomes("--redis-url", redistest.Start(t).URL)
	if !maps.Equal(embedded, real) {
		for id, o := range embedded {
			if real[id] != o {
				t.Errorf("id %s: embedded %s, redis-server %s", id, o, real[id])
			}
		}
	}
	counts := map[string]int{}
	for _, o := range real {
		counts[o]++
	}
	if counts["failed/4000"] != 72 || counts["not_found/4002"] != 85 || counts["deleted/0"] != 343 {
		t.Errorf("outcome counts %v", counts)
	}
}

func mapsKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRunResumesAfterInterrupt is issue 5's third acceptance point: a run
// interrupted mid-way against a real Redis, run again, finishes the batch
// without calling the fake twice for an id it already deleted.
func TestRunResumesAfterInterrupt(t *testing.T) {
	t.Parallel()
	path, ids := writeIDs(t, 1000, 7479996104798150001)
	fake := cozetest.NewServer(cozetest.WithLatency(20 * time.Millisecond))
	t.Cleanup(fake.Close)
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"COZE_API_TOKEN": "pat_run", "COZE_BASE_URL": fake.URL, "REDIS_URL": srv.URL}}
	args := append([]string{"run", "--file", path}, fastRun...)
	args = append(args, "--concurrency", "5")

	ctx, interrupt := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- c.run(ctx, args...) }()
	waitUntil(t, 30*time.Second, func() bool { return len(fake.Deletions()) >= 300 })
	interrupt() // as SIGINT does
	first := <-done
	if first.code != exitInterrupted || !strings.Contains(first.stderr, "run the same command again to resume") {
		t.Fatalf("interrupted run: exit %d\n%s", first.code, first.stderr)
	}
	deletedBefore := len(fake.Deletions())
	if deletedBefore >= len(ids) {
		t.Fatal("the run finished before the interrupt")
	}

	second := c.run(context.Background(), args...)
	if second.code != 0 {
		t.Fatalf("second run: exit %d\n%s", second.code, second.stderr)
	}
	if got := lastLine(second.stdout); !strings.HasPrefix(got, "total=1000 deleted=1000 not_found=0 failed=0 pending=0") {
		t.Errorf("second run summary %q", got)
	}
	calls := map[string][]string{}
	for _, call := range fake.Calls() {
		calls[call.ID] = append(calls[call.ID], call.Answer+"@"+call.At.Format("15:04:05.000"))
		if call.Answer == cozetest.AnswerGone {
			t.Errorf("id %s was called again after the fake deleted it", call.ID)
		}
	}
	for _, id := range ids {
		if len(calls[id]) != 1 {
			t.Errorf("id %s called %d times: %v", id, len(calls[id]), calls[id])
		}
	}
	bt, _, _ := ledger.New(srv.Client()).Batch(context.Background(), defaultRunBatch("file:"+path))
	if bt.Deleted != 1000 || bt.Completions != 1 {
		t.Errorf("batch %+v", bt)
	}
	t.Logf("interrupted after %d deletions; the second run did the other %d", deletedBefore, len(ids)-deletedBefore)
}

func TestRunInputAndBatchName(t *testing.T) {
	t.Parallel()
	if a, b := defaultRunBatch("file:/data/ids.txt"), defaultRunBatch("file:/data/ids.txt"); a != b || !strings.HasPrefix(a, "run-ids.txt-") {
		t.Errorf("batch names %q %q", a, b)
	}
	if defaultRunBatch("file:/a/ids.txt") == defaultRunBatch("file:/b/ids.txt") {
		t.Error("two files with one base name share a batch")
	}
	if got := defaultRunBatch("file:/x/we!rd name $.txt"); !strings.HasPrefix(got, "run-we-rd-name-.txt-") {
		t.Errorf("unsafe characters: %q", got)
	}
	res := cli{env: map[string]string{"COZE_API_TOKEN": "x"}}.run(context.Background(), "run")
	if res.code != exitSetup || !strings.Contains(res.stderr, "no ids") {
		t.Errorf("run without ids: %+v", res)
	}
}

// TestRunOverTLSWithACLUser: a batch through a redis-server that speaks
// only TLS and knows only an ACL user with a password.
func TestRunOverTLSWithACLUser(t *testing.T) {
	t.Parallel()
	files := redistest.NewTLSFiles(t)
	srv := redistest.Start(t, redistest.WithTLS(files), redistest.WithUser("eraser", "pw-for-the-tls-test"))
	path, ids := writeIDs(t, 200, 7579996104798150001)
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	c := cli{env: map[string]string{"COZE_API_TOKEN": "pat_tls", "COZE_BASE_URL": fake.URL}}
	res := c.run(context.Background(), append([]string{"run", "--file", path, "--redis-url", srv.URL, "--redis-tls-ca", files.CA}, fastRun...)...)
	if res.code != 0 || !strings.HasPrefix(lastLine(res.stdout), "total=200 deleted=200") {
		t.Fatalf("run over TLS: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if len(fake.Deletions()) != len(ids) {
		t.Errorf("the fake deleted %d", len(fake.Deletions()))
	}
	if strings.Contains(res.stderr, "pw-for-the-tls-test") {
		t.Error("the Redis password is in the output")
	}
	// Without the CA the certificate is not trusted: a clear error, exit 2.
	bad := c.run(context.Background(), "run", "--file", path, "--redis-url", srv.URL)
	if bad.code != exitSetup || !strings.Contains(bad.stderr, "certificate") || strings.Contains(bad.stderr, "pw-for-the-tls-test") {
		t.Errorf("without --redis-tls-ca: %+v", bad)
	}
}
