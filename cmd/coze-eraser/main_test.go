package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command in-process with the given environment and stdin.
type cli struct {
	env   map[string]string
	stdin string
}

func (c cli) run(ctx context.Context, args ...string) result {
	var stdout, stderr logbuf.Buffer
	lookup := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
	code := run(ctx, args, env{lookup: lookup}, strings.NewReader(c.stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// feed makes the tasks of every ready id waiting in queue, as a worker's
// feeder would: an enqueue leaves its ids in the ledger, with no task.
func feed(t *testing.T, srv *redistest.Server, queue string) enqueue.Fed {
	t.Helper()
	fed, err := enqueue.NewClient(srv.Client()).Feed(context.Background(), queue, 1<<30)
	if err != nil {
		t.Fatalf("feed %s: %v", queue, err)
	}
	return fed
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestEnqueueBadInput is acceptance point 3: CRLF, a BOM, blanks,
// duplicates and every kind of invalid id in one file.
func TestEnqueueBadInput(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	input := "\xEF\xBB\xBF7379996104798150001\r\n" +
		"\r\n" +
		"  7379996104798150002\t\r\n" +
		"abc\r\n" +
		"123/../x\n" +
		"-5\n" +
		"73799961047981500011\n" +
		"１２３\n" +
		"0123\n" +
		"\n" +
		"7379996104798150001\n" +
		"7379996104798150003\n"
	path := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(path, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	res := c.run(context.Background(), "enqueue", "--file", path, "--batch", "bad-input")

	if res.code != exitPartial {
		t.Errorf("exit %d, want 1; stderr:\n%s", res.code, res.stderr)
	}
	if got, want := lastLine(res.stdout), "enqueued=3 duplicate=1 invalid=6 batch=bad-input finished=0"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	wantErrors := []string{
		`line 4: invalid conversation id "abc": has 'a' at byte 1; only ASCII digits 0-9 are allowed`,
		`line 5: invalid conversation id "123/../x": has '/' at byte 4; only ASCII digits 0-9 are allowed`,
		`line 6: invalid conversation id "-5": has '-' at byte 1; only ASCII digits 0-9 are allowed`,
		`line 7: invalid conversation id "73799961047981500011": has 20 digits; at most 19 are allowed`,
		`line 8: invalid conversation id "１２３": has the non-ASCII character U+FF11 at byte 1; only ASCII digits 0-9 are allowed`,
		`line 9: invalid conversation id "0123": has a leading zero`,
	}
	stderr := strings.Split(strings.TrimSpace(res.stderr), "\n")
	// No worker runs here: enqueue warns that none serves the queue.
	stderr = slices.DeleteFunc(stderr, func(l string) bool { return strings.HasPrefix(l, "warning: --queue default:") })
	if stderr[0] != "batch bad-input (coze-eraser status bad-input)" {
		t.Errorf("first stderr line %q does not name the batch", stderr[0])
	}
	if got := stderr[1:]; !slices.Equal(got, wantErrors) {
		t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrors, "\n"))
	}

	if fed := feed(t, srv, "default"); fed.Tasks != 3 {
		t.Errorf("fed %+v, want 3 tasks", fed)
	}
	inspector := asynq.NewInspectorFromRedisClient(srv.Client())
	pending, err := inspector.ListPendingTasks("default", asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, task := range pending {
		p, err := tasks.ParsePayload(task.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.ConversationID)
	}
	slices.Sort(got)
	if want := []string{"7379996104798150001", "7379996104798150002", "7379996104798150003"}; !slices.Equal(got, want) {
		t.Errorf("queued %v, want each valid id once: %v", got, want)
	}
}

// TestEnqueueSizesTheBatchToItsFile checks a file's size sizes a new
// batch's ledger (fewer, fuller buckets for a small file), and that input
// of unknown size gets the default.
func TestEnqueueSizesTheBatchToItsFile(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var ids strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&ids, "%d\n", 7379996104798150001+i*13)
	}
	path := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(path, []byte(ids.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}, stdin: ids.String()}
	ctx := context.Background()
	if res := c.run(ctx, "enqueue", "--file", path, "--batch", "from-file"); res.code != 0 {
		t.Fatalf("enqueue --file: exit %d: %s", res.code, res.stderr)
	}
	if res := c.run(ctx, "enqueue", "--file", "-", "--batch", "from-stdin"); res.code != 0 {
		t.Fatalf("enqueue --file -: exit %d: %s", res.code, res.stderr)
	}
	buckets := func(batch string) int {
		keys, err := srv.Client().Keys(ctx, "*batch:"+batch+":ids:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	// 100,000 bytes are at most 6,251 ids: 512 buckets.
	if got, want := buckets("from-file"), ledger.BucketsFor(100_000/16+1); got != want || want != 512 {
		t.Errorf("the file's batch has %d buckets, want %d", got, want)
	}
	if got := buckets("from-stdin"); got <= 512 {
		t.Errorf("the stdin batch has %d buckets, want the default's spread (thousands)", got)
	}
}

func TestEnqueueFromStdinAndArgs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}, stdin: "11\n12\n"}
	if res := c.run(context.Background(), "enqueue", "--file", "-"); res.code != 0 || !strings.HasPrefix(lastLine(res.stdout), "enqueued=2 duplicate=0 invalid=0 batch=b-") {
		t.Errorf("stdin: %+v", res)
	}
	// 12 waits in the default queue already: it is enqueued in both
	// batches, and the feed links them so that one task (one call) serves
	// both, whatever the queue.
	res := c.run(context.Background(), "enqueue", "12", "13", "x1", "--queue", "gdpr", "--in", "1h")
	if res.code != exitPartial || !strings.HasPrefix(lastLine(res.stdout), "enqueued=2 duplicate=0 invalid=1") {
		t.Errorf("args: %+v", res)
	}
	if !strings.Contains(res.stderr, `argument 3: invalid conversation id "x1"`) {
		t.Errorf("stderr %q does not name the argument", res.stderr)
	}
	ctx := context.Background()
	led := ledger.New(srv.Client())
	if unfed, err := led.Unfed(ctx); err != nil || unfed["default"] != 2 || unfed["gdpr"] != 2 {
		t.Errorf("unfed %v, %v; want 2 ids waiting in default and 2 in gdpr", unfed, err)
	}
	// 12's task, made for the first batch, serves the gdpr batch too.
	if fed := feed(t, srv, "default"); fed.Tasks != 2 {
		t.Errorf("default fed %+v, want the tasks of 11 and 12", fed)
	}
	// --in 1h: the gdpr batch may be fed in an hour, not before.
	now := time.Now()
	if early, err := led.FeedReady(ctx, "gdpr", now.Add(59*time.Minute), 10); err != nil || len(early) != 0 {
		t.Errorf("gdpr feed ready before its time: %v, %v", early, err)
	}
	if fed := feed(t, srv, "gdpr"); fed.Tasks != 0 {
		t.Errorf("gdpr fed %+v before its time", fed)
	}
	later := enqueue.NewClient(srv.Client(), enqueue.WithClock(func() time.Time { return now.Add(61 * time.Minute) }))
	fed, err := later.Feed(ctx, "gdpr", 1<<30)
	if err != nil || fed.Tasks != 1 {
		t.Errorf("gdpr fed in an hour: %+v, %v; want 13's task only", fed, err)
	}
	inspector := asynq.NewInspectorFromRedisClient(srv.Client())
	if info, err := inspector.GetQueueInfo("gdpr"); err != nil || info.Size != 1 {
		t.Errorf("gdpr queue: %+v, %v; want one task", info, err)
	}
	if _, err := inspector.GetTaskInfo("gdpr", tasks.TaskID("12")); err == nil {
		t.Error("12 has a second task, in gdpr")
	}
}

// TestSetupErrors: every way a command cannot start is one line on stderr
// and exit 2.
func TestSetupErrors(t *testing.T) {
	t.Parallel()
	deadRedis := deadRedisURL(t)
	srv := redistest.Start(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no token", nil, []string{"worker"}, "no Coze token: set COZE_API_TOKEN"},
		{"both token sources", map[string]string{"COZE_API_TOKEN": "a", "COZE_API_TOKEN_FILE": "/x"}, []string{"worker"}, "keep one"},
		{"token file missing", map[string]string{"COZE_API_TOKEN_FILE": "/nonexistent/token"}, []string{"worker"}, "COZE_API_TOKEN_FILE: token file"},
		{"redis unreachable (worker)", map[string]string{"COZE_API_TOKEN": "pat_x"}, []string{"worker", "--redis-url", deadRedis, "--redis-wait", "0"}, "cannot reach Redis at redis://127.0.0.1:"},
		{"redis unreachable (enqueue)", nil, []string{"enqueue", "1", "--redis-url", deadRedis}, "cannot reach Redis"},
		{"password hidden", nil, []string{"enqueue", "1", "--redis-url", "redis://:hunter2@" + strings.TrimPrefix(deadRedis, "redis://")}, "cannot reach Redis at redis://:xxxxx@"},
		{"bad redis url", nil, []string{"enqueue", "1", "--redis-url", "http://x"}, "--redis-url"},
		{"unparsable redis url", nil, []string{"enqueue", "1", "--redis-url", "redis://:hunter2%zz@127.0.0.1:1/0"}, "not a Redis URL"},
		{"bad queues", map[string]string{"COZE_API_TOKEN": "pat_x"}, []string{"worker", "--queues", "gdpr=0"}, "--queues"},
		{"bad base url", map[string]string{"COZE_API_TOKEN": "pat_x"}, []string{"worker", "--coze-base-url", "api.coze.cn"}, "--coze-base-url"},
		{"no ids", nil, []string{"enqueue", "--redis-url", srv.URL}, "no ids"},
		{"ids and file", nil, []string{"enqueue", "1", "--file", "x"}, "not both"},
		{"bad --at", nil, []string{"enqueue", "1", "--at", "tomorrow"}, "--at \"tomorrow\""},
		{"bad batch", nil, []string{"enqueue", "1", "--batch", "a b"}, "--batch"},
		{"bad env value", map[string]string{"COZE_ERASER_WORKER_CONCURRENCY": "many", "COZE_API_TOKEN": "x"}, []string{"worker"}, "COZE_ERASER_WORKER_CONCURRENCY=\"many\""},
		{"unknown flag", nil, []string{"enqueue", "--nope"}, "unknown flag: --nope"},
		{"unknown command", nil, []string{"erase-everything"}, "unknown command"},
		{"bad fault", nil, []string{"fake-api", "--fault", "boom=0.1"}, "unknown fault"},
		{"bad outcome", nil, []string{"failures", "list", "--outcome", "deleted"}, "--outcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runWithoutRedis(t, tt.env, tt.args...)
			if res.code != exitSetup {
				t.Errorf("exit %d, want 2", res.code)
			}
			first := strings.SplitN(res.stderr, "\n", 2)[0]
			if !strings.HasPrefix(first, "coze-eraser: ") || !strings.Contains(first, tt.want) {
				t.Errorf("stderr %q, want one line containing %q", res.stderr, tt.want)
			}
			if strings.Contains(res.stderr, "hunter2") {
				t.Error("the Redis password is in the error")
			}
		})
	}
}

func TestEnvAndFlagPrecedence(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// The env names a dead Redis; the flag names the live one and wins.
	c := cli{env: map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "COZE_ERASER_ENQUEUE_QUEUE": "fromenv"}}
	res := c.run(context.Background(), "enqueue", "5", "--redis-url", srv.URL)
	if res.code != 0 {
		t.Fatalf("%+v", res)
	}
	feed(t, srv, "fromenv")
	if _, err := asynq.NewInspectorFromRedisClient(srv.Client()).GetTaskInfo("fromenv", tasks.TaskID("5")); err != nil {
		t.Errorf("COZE_ERASER_ENQUEUE_QUEUE was not used: %v", err)
	}
}

func TestHelpDescribesEveryFlag(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"help"}, {"--help"}, {"worker", "--help"}, {"enqueue", "--help"}, {"failures", "--help"},
		{"failures", "list", "--help"}, {"failures", "retry", "--help"}, {"fake-api", "--help"}, {"help", "worker"},
	} {
		res := cli{}.run(context.Background(), args...)
		if res.code != 0 || !strings.Contains(res.stdout, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q", args, res.code, res.stdout)
		}
	}
	res := cli{}.run(context.Background(), "worker", "--help")
	for _, flag := range []string{"--redis-url", "$REDIS_URL", "--coze-base-url", "$COZE_BASE_URL", "--concurrency",
		"--request-timeout", "--metrics-addr", "127.0.0.1:9464", "--queues", "--shutdown-timeout", "--log-format",
		"--retry-base", "--retry-cap", "$COZE_ERASER_WORKER_CONCURRENCY", "COZE_API_TOKEN"} {
		if !strings.Contains(res.stdout, flag) {
			t.Errorf("worker --help does not mention %s", flag)
		}
	}
}

// TestWorkerCommandEndToEnd runs the real subcommands against a fake API:
// enqueue, worker until cancelled, failures list and retry.
func TestWorkerCommandEndToEnd(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake := cozetest.NewServer(cozetest.WithToken("pat_cli_TOKEN"))
	t.Cleanup(fake.Close)
	fake.ScriptForever("7379996104798150003", cozetest.BadParameter)
	c := cli{env: map[string]string{
		"REDIS_URL":      srv.URL,
		"COZE_BASE_URL":  fake.URL,
		"COZE_API_TOKEN": "pat_cli_TOKEN",
	}}
	ctx := context.Background()
	if res := c.run(ctx, "enqueue", "7379996104798150001", "7379996104798150002", "7379996104798150003", "--batch", "cli", "--note", "ticket 118"); res.code != 0 {
		t.Fatalf("enqueue: %+v", res)
	}

	workerCtx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	done := make(chan result, 1)
	go func() {
		done <- c.run(workerCtx, "worker", "--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "2s")
	}()
	led := ledger.New(srv.Client())
	waitUntil(t, 20*time.Second, func() bool {
		select {
		case res := <-done:
			t.Fatalf("worker ended early: %+v", res)
		default:
		}
		b, _, _ := led.Batch(ctx, "cli")
		return b.Total == 3 && b.Pending() == 0
	})
	stop()
	res := <-done
	if res.code != 0 {
		t.Fatalf("worker exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, `"msg":"attempt"`) || !strings.Contains(res.stderr, `"logid":"`) {
		t.Errorf("no JSON attempt lines with log ids in:\n%s", res.stderr)
	}
	if strings.Contains(res.stderr, "pat_cli_TOKEN") {
		t.Error("the token is in the worker's log")
	}

	status := c.run(ctx, "status", "cli", "--format", "json")
	if status.code != 0 || !strings.Contains(status.stdout, `"state": "complete"`) || !strings.Contains(status.stdout, `"note": "ticket 118"`) {
		t.Errorf("status: %+v", status)
	}
	if table := c.run(ctx, "status"); !strings.Contains(table.stdout, "cli") || !strings.Contains(table.stdout, "complete") {
		t.Errorf("status table: %+v", table)
	}
	if watch := c.run(ctx, "status", "cli", "--watch"); watch.code != 0 || !strings.Contains(watch.stdout, "cli: 3/3 done (100.0%)") {
		t.Errorf("status --watch of a complete batch must print a plain line and return: %+v", watch)
	}
	proofPath := filepath.Join(t.TempDir(), "proof.csv")
	if res := c.run(ctx, "report", "cli", "--output", proofPath); res.code != 0 {
		t.Fatalf("report: %+v", res)
	}
	proof, _ := os.ReadFile(proofPath)
	if !strings.Contains(string(proof), "# total: 3") || strings.Count(string(proof), "\n7379996104798150") != 3 {
		t.Errorf("proof:\n%s", proof)
	}
	if res := c.run(ctx, "report", "nope"); res.code != exitSetup {
		t.Errorf("report of a missing batch: %+v", res)
	}
	if res := c.run(ctx, "enqueue", "7379996104798150009", "--batch", "cli", "--due-in", "1h"); res.code != exitSetup || !strings.Contains(res.stderr, "batch cli has due") {
		t.Errorf("another due time for an existing batch: %+v", res)
	}

	list := c.run(ctx, "failures", "list", "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(list.stdout)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("failures list: %q, %v", list.stdout, err)
	}
	if rows[0][0] != "conversation_id" || rows[1][0] != "7379996104798150003" || rows[1][2] != "failed" || rows[1][3] != "4000" || rows[1][6] == "" {
		t.Errorf("failures csv rows %q", rows)
	}

	// Fix the cause, retry, and work again.
	fake.ScriptForever("7379996104798150003", "")
	if res := c.run(ctx, "failures", "retry", "--dry-run"); lastLine(res.stdout) != "would retry=1 already_queued=0" {
		t.Errorf("dry run: %+v", res)
	}
	if res := c.run(ctx, "failures", "retry", "--batch", "cli"); res.code != 0 || lastLine(res.stdout) != "retried=1 already_queued=0" {
		t.Fatalf("retry: %+v", res)
	}
	workerCtx, stop = context.WithCancel(ctx)
	t.Cleanup(stop)
	go func() { done <- c.run(workerCtx, "worker", "--metrics-addr", "") }()
	waitUntil(t, 20*time.Second, func() bool {
		e, ok, _ := led.Entry(ctx, "cli", "7379996104798150003")
		return ok && e.Outcome == ledger.Deleted
	})
	stop()
	<-done
	if list := c.run(ctx, "failures", "list", "--format", "jsonl"); strings.TrimSpace(list.stdout) != "" {
		t.Errorf("failures left after the retry: %s", list.stdout)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPersistenceCheckAtStart: a Redis that keeps nothing gets a warning
// naming the risk, and --require-persistence refuses it.
func TestPersistenceCheckAtStart(t *testing.T) {
	t.Parallel()
	volatile := redistest.Start(t)
	c := cli{env: map[string]string{"COZE_API_TOKEN": "pat_x", "REDIS_URL": volatile.URL}}
	res := c.run(context.Background(), "worker", "--require-persistence", "--metrics-addr", "")
	if res.code != exitSetup || !strings.Contains(res.stderr, "neither AOF nor RDB") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Errorf("--require-persistence on a volatile Redis: %+v", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res = c.run(ctx, "worker", "--metrics-addr", "")
	if res.code != 0 || !strings.Contains(res.stderr, "level=WARN msg=\"Redis has neither AOF nor RDB snapshots") {
		t.Errorf("without the flag: exit %d, want a warning at start:\n%s", res.code, res.stderr)
	}
	durable := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "everysec"))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	c.env["REDIS_URL"] = durable.URL
	res = c.run(ctx2, "worker", "--require-persistence", "--metrics-addr", "")
	if res.code != 0 || strings.Contains(res.stderr, "AOF") {
		t.Errorf("with AOF: exit %d\n%s", res.code, res.stderr)
	}
}

// deadRedisURL is a Redis URL where nothing listens: a command whose flags
// pass fails to reach it, one whose flags do not never tries.
func deadRedisURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "redis://" + ln.Addr().String() + "/0"
}

// runWithoutRedis runs the command with env and a Redis where nothing
// listens, not waited for: never the machine's own Redis on 6379. Flag
// errors must come before any connection anyway.
func runWithoutRedis(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	all := map[string]string{"REDIS_URL": deadRedisURL(t), "COZE_ERASER_REDIS_WAIT": "0"}
	for k, v := range env {
		all[k] = v
	}
	return cli{env: all}.run(context.Background(), args...)
}
