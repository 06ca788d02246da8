package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

const sweepBot = "7379996104700000001"

// sweepFake is a fake holding 60 old conversations of sweepBot (20 of
// them with meta tier=free), 5 new ones, and 3 old ones on the Chat SDK
// channel; it returns the ids of the old API ones.
func sweepFake(t *testing.T) (*cozetest.Server, []string) {
	t.Helper()
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	old := time.Now().Add(-100 * 24 * time.Hour)
	var olds []string
	for i := range 60 {
		c := cozetest.Conversation{ID: fmt.Sprintf("73799961048%08d", i), BotID: sweepBot, CreatedAt: old.Add(time.Duration(i) * time.Minute)}
		if i%3 == 0 {
			c.Meta = map[string]string{"tier": "free"}
		}
		fake.AddConversations(c)
		olds = append(olds, c.ID)
	}
	for i := range 5 {
		fake.AddConversations(cozetest.Conversation{ID: fmt.Sprintf("73799961049%08d", i), BotID: sweepBot, CreatedAt: time.Now().Add(-time.Hour)})
	}
	for i := range 3 {
		fake.AddConversations(cozetest.Conversation{ID: fmt.Sprintf("73799961047%08d", i), BotID: sweepBot,
			ConnectorID: cozetest.ConnectorChatSDK, CreatedAt: old})
	}
	return fake, olds
}

func deleteCalls(fake *cozetest.Server) int {
	n := 0
	for _, c := range fake.Calls() {
		if c.Method == http.MethodDelete {
			n++
		}
	}
	return n
}

// TestSweepCommand is acceptance point 4 through the command: --dry-run
// prints the matches and makes no DELETE; --meta filters; the sweep then
// queues exactly the old conversations, and a worker deletes exactly
// those.
func TestSweepCommand(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake, olds := sweepFake(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL, "COZE_BASE_URL": fake.URL, "COZE_API_TOKEN": "pat_sweep"}}
	ctx := context.Background()
	args := []string{"sweep", "--bot-id", sweepBot, "--older-than", "2160h"}

	res := c.run(ctx, append(args, "--dry-run")...)
	rows := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || lastLine(res.stdout) != "listed=65 matched=60 dry_run=true" || len(rows) != 62 ||
		rows[0] != "id\tbot_id\tconnector_id\tcreated_at\tupdated_at" || !strings.HasPrefix(rows[1], olds[0]+"\t"+sweepBot+"\t1024\t") {
		t.Fatalf("dry run: exit %d, stdout %.300q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = c.run(ctx, append(args, "--dry-run", "--meta", "tier=free", "--connector-id", "1024,999")...)
	if res.code != exitOK || lastLine(res.stdout) != "listed=68 matched=20 dry_run=true" {
		t.Fatalf("--meta: exit %d, last line %q, stderr %q", res.code, lastLine(res.stdout), res.stderr)
	}
	if n := deleteCalls(fake); n != 0 {
		t.Fatalf("a dry run made %d DELETE calls", n)
	}
	if names, _ := ledger.New(srv.Client()).RecentBatchNames(ctx, 10); len(names) != 0 {
		t.Fatalf("a dry run created batches %v", names)
	}

	res = c.run(ctx, append(args, "--batch", "retention-1", "--queue", "retention", "--note", "policy R-7")...)
	if res.code != exitOK || lastLine(res.stdout) != "listed=65 matched=60 enqueued=60 duplicate=0 batch=retention-1" {
		t.Fatalf("sweep: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "batch retention-1 (coze-eraser status retention-1)") {
		t.Errorf("stderr %q does not name the batch", res.stderr)
	}
	// Released: the 60 wait to be fed into retention. A worker's feeder
	// makes their tasks; sweeping again then queues nothing new.
	led := ledger.New(srv.Client())
	if unfed, err := led.Unfed(ctx); err != nil || unfed["retention"] != 60 {
		t.Errorf("unfed %v, %v; want the 60 waiting in retention", unfed, err)
	}
	if fed := feed(t, srv, "retention"); fed.Tasks != 60 {
		t.Errorf("fed %+v, want 60 tasks", fed)
	}
	if res := c.run(ctx, append(args, "--batch", "retention-1", "--queue", "retention")...); lastLine(res.stdout) != "listed=65 matched=60 enqueued=0 duplicate=60 batch=retention-1" {
		t.Errorf("again: %q", res.stdout)
	}
	if b, _, err := led.Batch(ctx, "retention-1"); err != nil || b.Total != 60 {
		t.Errorf("batch after the second sweep: %+v, %v; want its 60 ids once", b, err)
	}

	// A worker deletes exactly the old ones.
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.run(wctx, "worker", "--queues", "retention", "--metrics-addr", "") })
	defer func() { stop(); wg.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for len(fake.Deletions()) < 60 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	var deleted []string
	for id := range fake.Deletions() {
		deleted = append(deleted, id)
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, olds) {
		t.Errorf("deleted %d conversations, want exactly the %d old ones", len(deleted), len(olds))
	}
	if left := fake.Conversations(); len(left) != 8 {
		t.Errorf("%d conversations left, want the 5 new and the 3 of the Chat SDK", len(left))
	}
}

// TestSweepNothingMatches: no batch is created, and the command says so.
func TestSweepNothingMatches(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake, _ := sweepFake(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL, "COZE_BASE_URL": fake.URL, "COZE_API_TOKEN": "pat_sweep"}}
	res := c.run(context.Background(), "sweep", "--bot-id", sweepBot, "--older-than", "87600h", "--batch", "none")
	if res.code != exitOK || lastLine(res.stdout) != "listed=50 matched=0 enqueued=0 duplicate=0 batch=none" ||
		!strings.Contains(res.stderr, "no conversation matched: no batch was created") {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if _, ok, _ := ledger.New(srv.Client()).Batch(context.Background(), "none"); ok {
		t.Error("a batch was created")
	}
}

// TestSweepListingFails: a rejected token stops the listing: exit 2, and
// the error names the bot, connector and page.
func TestSweepListingFails(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake, _ := sweepFake(t)
	fake.SetAuthDown(true)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL, "COZE_BASE_URL": fake.URL, "COZE_API_TOKEN": "pat_sweep"}}
	res := c.run(context.Background(), "sweep", "--bot-id", sweepBot, "--older-than", "2160h")
	if res.code != exitSetup || !strings.Contains(res.stderr, "listing bot "+sweepBot+" (connector 1024) stopped at page 1") ||
		lastLine(res.stdout) != "listed=0 matched=0 enqueued=0 duplicate=0 batch="+strings.Fields(res.stderr)[1] {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stderr+res.stdout, "pat_sweep") {
		t.Error("the token is in the output")
	}
}

// TestSweepBadFlags: each bad flag is exit 2 and one line naming it,
// before a token or Redis is needed.
func TestSweepBadFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--bot-id", sweepBot}, "--older-than is required"},
		{[]string{"--bot-id", sweepBot, "--older-than", "-1h"}, "--older-than -1h0m0s: must be more than 0s"},
		{[]string{"--older-than", "1h"}, "--bot-id is empty: give at least one"},
		{[]string{"--bot-id", "my-bot", "--older-than", "1h"}, `--bot-id "my-bot": want the bot's numeric id`},
		{[]string{"--bot-id", sweepBot + "," + sweepBot, "--older-than", "1h"}, "--bot-id " + sweepBot + " is given twice"},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--connector-id", "1025"}, `--connector-id "1025": want 1024 (API) or 999 (Chat SDK)`},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--by", "deleted"}, `--by "deleted": want created or updated`},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--meta", "tier"}, `--meta "tier": want KEY=VALUE`},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--meta", "a=1", "--meta", "a=2"}, "--meta a: given twice"},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--queue", "callbacks"}, `--queue invalid queue name "callbacks"`},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--note", "a\nb"}, "--note has the control character"},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--batch", "a b"}, `--batch: invalid batch name "a b"`},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--due", "2001-01-01T00:00:00Z"}, "--due 2001-01-01T00:00:00Z: is in the past"},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--profile", "app-us"}, "--profile app-us: not a profile of --profiles"},
		{[]string{"--bot-id", sweepBot, "--older-than", "1h", "--profile", "app us"}, `--profile invalid profile name "app us"`},
	} {
		res := runWithoutRedis(t, map[string]string{"COZE_API_TOKEN": "pat_x"}, append([]string{"sweep"}, tt.args...)...)
		if res.code != exitSetup || !strings.HasPrefix(res.stderr, "coze-eraser: "+tt.want) || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line %q", tt.args, res.code, res.stderr, tt.want)
		}
	}
}

// writeSweeps writes a sweeps file.
func writeSweeps(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sweeps.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWorkerBadSweepsFile: a worker with a bad sweeps file does not start:
// exit 2, before waiting for Redis, with a line naming the sweep and key
// of each problem.
func TestWorkerBadSweepsFile(t *testing.T) {
	t.Parallel()
	head := "sweeps:\n  nightly:\n    schedule: \"0 3 * * *\"\n    bot_ids: [\"" + sweepBot + "\"]\n"
	for _, tt := range []struct{ file, want string }{
		{head + "    older_than: 2160h\n    colour: blue\n", "sweeps.nightly.colour is not a known key"},
		{strings.Replace(head, "0 3 * * *", "0 25 * * *", 1) + "    older_than: 2160h\n", `sweeps.nightly.schedule "0 25 * * *": end of range (25) above maximum (23)`},
		{head + "    older_than: 90 days\n", `sweeps.nightly.older_than "90 days": not a duration`},
		{head + "    older_than: 2160h\n  nightly:\n    schedule: x\n", "sweeps.nightly is defined twice: first at line 2"},
		{head + "    older_than: 2160h\n    profile: app-us\n", "sweeps.nightly.profile app-us: not a profile of this worker (it has: default)"},
	} {
		path := writeSweeps(t, tt.file)
		res := runWithoutRedis(t, map[string]string{"COZE_API_TOKEN": "pat_x"}, "worker", "--sweeps", path, "--metrics-addr", "")
		if res.code != exitSetup || !strings.HasPrefix(res.stderr, "coze-eraser: --sweeps: "+path+":") ||
			!strings.Contains(res.stderr, tt.want) || strings.Contains(res.stderr, "Redis") {
			t.Errorf("file:\n%s\nexit %d, stderr %q; want exit 2 naming %q", tt.file, res.code, res.stderr, tt.want)
		}
	}
}

// TestWorkerRunsSweeps: a worker with --sweeps runs them on their
// schedule and exports the sweep metrics on its /metrics.
func TestWorkerRunsSweeps(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake, _ := sweepFake(t)
	path := writeSweeps(t, "sweeps:\n  every-second:\n    schedule: \"* * * * * *\"\n    bot_ids: [\""+sweepBot+"\"]\n    older_than: 2160h\n    queue: retention\n")
	ln := sweepFreeAddr(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL, "COZE_BASE_URL": fake.URL, "COZE_API_TOKEN": "pat_sweep", "COZE_ERASER_WORKER_SWEEPS": path}}
	wctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var res result
	wg.Go(func() { res = c.run(wctx, "worker", "--metrics-addr", ln) })
	metrics := func() string {
		resp, err := http.Get("http://" + ln + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(metrics(), `coze_eraser_sweep_runs_total{result="success",sweep="every-second"} 2`) {
		if time.Now().After(deadline) {
			stop()
			wg.Wait()
			t.Fatalf("no two successful runs; metrics:\n%s\nstderr:\n%s", metrics(), res.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := metrics()
	stop()
	wg.Wait()
	for _, want := range []string{`coze_eraser_sweep_interval_seconds{sweep="every-second"} 1`, `coze_eraser_sweep_last_success_timestamp_seconds{sweep="every-second"}`,
		`coze_eraser_sweep_runs_total{result="failure",sweep="every-second"} 0`, "go_goroutines", "coze_eraser_deletions_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if res.code != exitOK || !strings.Contains(res.stderr, "scheduled sweeps started") || !strings.Contains(res.stderr, "batch=every-second-") {
		t.Errorf("worker: exit %d, stderr %s", res.code, res.stderr)
	}
}

// sweepFreeAddr returns a loopback address free a moment ago.
func sweepFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
