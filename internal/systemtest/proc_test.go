package systemtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// binary and benchBinary are the coze-eraser and coze-eraser-bench built
// by TestMain.
var binary, benchBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coze-eraser-systemtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "coze-eraser")
	benchBinary = filepath.Join(dir, "coze-eraser-bench")
	build := exec.Command("go", "build", "-o", dir+"/", "../../cmd/coze-eraser", "../../cmd/coze-eraser-bench")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "systemtest: building coze-eraser:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir) // a temporary directory: a leftover is harmless
	os.Exit(code)
}

// proc is a coze-eraser process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *logbuf.Buffer
	exited  chan struct{}
	metrics string // host:port of /metrics, when it serves them
}

// start runs the binary with args and env (and nothing else of the test's
// environment but PATH), killed at cleanup.
func start(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	return startProgram(t, binary, env, args...)
}

// startProgram runs program with args and env, as start runs coze-eraser.
func startProgram(t *testing.T, program string, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{t: t, cmd: cmd, out: &logbuf.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// startWorker runs `coze-eraser worker` with its metrics on a free port.
func startWorker(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	p := start(t, env, append([]string{"worker", "--metrics-addr", addr, "--log-format", "json"}, args...)...)
	p.metrics = addr
	waitFor(t, 20*time.Second, "the worker's /healthz", func() bool { return p.get("/healthz") == 200 })
	return p
}

// get returns the status of a GET on the process's metrics server.
func (p *proc) get(path string) int {
	resp, err := http.Get("http://" + p.metrics + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) (int, time.Duration) {
	p.t.Helper()
	start := time.Now()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("the process did not exit within %v; output:\n%s", timeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// cpu returns the process's user and system CPU time so far.
func (p *proc) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses; utime and stime are
	// the 14th and 15th fields of the line.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks of 10 ms
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bundle is a scenario's Redis, fake API and clients.
type bundle struct {
	ctx    context.Context
	redis  *redistest.Server
	rdb    *redis.Client
	fake   *cozetest.Server
	ledger *ledger.Ledger
	token  string
}

func setup(t *testing.T, redisOpts []redistest.Option, fakeOpts ...cozetest.Option) *bundle {
	t.Helper()
	srv := redistest.Start(t, redisOpts...)
	fake := cozetest.NewServer(fakeOpts...)
	t.Cleanup(fake.Close)
	rdb := srv.Client()
	return &bundle{ctx: context.Background(), redis: srv, rdb: rdb, fake: fake, ledger: ledger.New(rdb),
		token: "pat_SYSTEMTEST_" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_NEVER_LOG_ME"}
}

// env is what a worker process of the bundle needs.
func (b *bundle) env() map[string]string {
	return map[string]string{"REDIS_URL": b.redis.URL, "COZE_BASE_URL": b.fake.URL, "COZE_API_TOKEN": b.token}
}

func (b *bundle) enqueue(t *testing.T, batch string, ids []string) {
	t.Helper()
	c := enqueue.NewClient(b.rdb)
	defer c.Close()
	sum, err := c.EnqueueAll(b.ctx, slices.Values(ids), enqueue.Batch(batch))
	if err != nil || sum.Enqueued != len(ids) {
		t.Fatalf("enqueue: %+v, %v", sum, err)
	}
}

// persistAOF makes what Redis holds durable in its AOF before a test kills
// it: a rewrite writes and fsyncs a new base file, where appendfsync
// everysec would leave up to a second (or two, when an fsync is slow) of
// writes to chance. It waits for the rewrite to finish rather than for the
// once-a-second fsync.
func (b *bundle) persistAOF(t *testing.T) {
	t.Helper()
	before := b.aofInfo(t)["aof_rewrites"]
	if err := b.rdb.BgRewriteAOF(b.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the AOF rewrite", func() bool {
		info := b.aofInfo(t)
		return info["aof_rewrites"] != before && info["aof_rewrite_in_progress"] == "0" && info["aof_rewrite_scheduled"] == "0"
	})
	if status := b.aofInfo(t)["aof_last_bgrewrite_status"]; status != "ok" {
		t.Fatalf("AOF rewrite: %s", status)
	}
}

// aofInfo is Redis's INFO persistence as fields.
func (b *bundle) aofInfo(t *testing.T) map[string]string {
	t.Helper()
	text, err := b.rdb.Info(b.ctx, "persistence").Result()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for line := range strings.Lines(text) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

func (b *bundle) batch(name string) ledger.Batch {
	bt, _, _ := b.ledger.Batch(b.ctx, name)
	return bt
}

func ids(n int, base int64) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.FormatInt(base+int64(i)*7919, 10)
	}
	return out
}

// checkOutcomes holds the batch against the fake's record: every id has
// exactly one terminal outcome; every deleted id was deleted by the fake;
// every id the fake deleted is deleted or not_found. It returns the number
// of DELETE calls beyond the first for an id.
func (b *bundle) checkOutcomes(t *testing.T, batch string, all []string) (duplicates int) {
	t.Helper()
	entries := map[string]ledger.Entry{}
	err := b.ledger.Entries(b.ctx, batch, func(e ledger.Entry) error {
		if _, dup := entries[e.ConversationID]; dup {
			t.Errorf("id %s listed twice", e.ConversationID)
		}
		entries[e.ConversationID] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deletions := b.fake.Deletions()
	lost := 0
	for _, id := range all {
		e, ok := entries[id]
		switch {
		case !ok:
			lost++
			t.Errorf("id %s is not in the batch any more", id)
		case !e.Outcome.Terminal():
			lost++
			t.Errorf("id %s ended %s", id, e.Outcome)
		case e.Outcome == ledger.Deleted:
			if _, ok := deletions[id]; !ok {
				t.Errorf("id %s recorded deleted; the fake never deleted it", id)
			}
		case e.Outcome == ledger.Failed:
			if _, ok := deletions[id]; ok {
				t.Errorf("id %s recorded failed; the fake deleted it", id)
			}
		}
	}
	for id := range deletions {
		if o := entries[id].Outcome; o != ledger.Deleted && o != ledger.NotFound {
			t.Errorf("the fake deleted %s; the ledger says %q", id, o)
		}
	}
	if lost > 0 {
		t.Errorf("%d ids lost", lost)
	}
	return b.duplicateCalls()
}

// duplicateCalls counts the fake's DELETE calls beyond the first per id.
func (b *bundle) duplicateCalls() (duplicates int) {
	calls := map[string]int{}
	for _, c := range b.fake.Calls() {
		calls[c.ID]++
	}
	for _, n := range calls {
		duplicates += n - 1
	}
	return duplicates
}

// readLines returns the non-empty lines of s.
func readLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out
}
