package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// endUser is an end user's session name: personal data, which no output
// of the command may hold.
const endUser = "user-4711@example.org"

// identityProfiles writes a profiles file with a JWT profile (app-eu) and
// a static one (support-bot). Loading it reads no key or token.
func identityProfiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "profiles.yaml")
	content := `profiles:
  app-eu:
    base_url: https://api.coze.com
    jwt:
      app_id: "1127900106117"
      key_id: kid-1
      private_key_file: ` + filepath.Join(dir, "app.pem") + `
  support-bot:
    base_url: https://api.coze.com
    token_file: ` + filepath.Join(dir, "token") + `
`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEnqueueIdentityFlags: --profile and --session are checked before
// Redis is reached, against --profiles when given, and no message shows
// the session.
func TestEnqueueIdentityFlags(t *testing.T) {
	t.Parallel()
	file := identityProfiles(t)
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--session", endUser}, "--session needs --profile"},
		{map[string]string{"COZE_ERASER_ENQUEUE_SESSION": endUser}, nil, "--session needs --profile"},
		{nil, []string{"--profile", "app eu"}, `--profile: invalid profile name "app eu"`},
		{nil, []string{"--profile", "app-eu", "--session", endUser + "\n"}, "--session: invalid session name: a control character at byte 22"},
		{nil, []string{"--profile", "app-eu", "--session", strings.Repeat(endUser, 20)}, "--session: invalid session name: use 1-256 bytes"},
		{nil, []string{"--profiles", file, "--profile", "app-us"}, "--profile app-us: not a profile of --profiles " + file + " (it has: app-eu, support-bot)"},
		{map[string]string{"COZE_ERASER_PROFILES": file}, []string{"--profile", "app-us"}, "--profile app-us: not a profile of --profiles"},
		{nil, []string{"--profiles", file, "--profile", "support-bot", "--session", endUser}, "--session: profile support-bot of --profiles " + file + " is a static token"},
		{nil, []string{"--profiles", filepath.Join(t.TempDir(), "none.yaml"), "--profile", "app-eu"}, "--profiles: "},
	} {
		args := append([]string{"enqueue", "7379996104798150001"}, tt.args...)
		res := runWithoutRedis(t, tt.env, args...)
		first := strings.SplitN(res.stderr, "\n", 2)[0]
		if res.code != exitSetup || !strings.HasPrefix(first, "coze-eraser: "+tt.want) {
			t.Errorf("%q %v: exit %d, stderr %q; want exit 2 and %q", tt.args, tt.env, res.code, res.stderr, tt.want)
		}
		if strings.Contains(res.stderr+res.stdout, "user-4711") {
			t.Errorf("%q: the output shows the session name: %s", tt.args, res.stderr)
		}
	}
}

// TestEnqueueActsAsTheIdentity: the tasks and the batch carry the
// identity, status shows the profile and that a session is held (not the
// name), and the batch refuses ids of another identity.
func TestEnqueueActsAsTheIdentity(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	file := identityProfiles(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL, "COZE_ERASER_PROFILES": file}}
	ctx := context.Background()
	res := c.run(ctx, "enqueue", "7379996104798150001", "--batch", "jwt", "--profile", "app-eu", "--session", endUser)
	if res.code != exitOK || !strings.Contains(res.stderr, "acting as profile app-eu, for an end user's session") {
		t.Fatalf("enqueue: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	feed(t, srv, "default")
	info, err := asynq.NewInspectorFromRedisClient(srv.Client()).GetTaskInfo("default", tasks.TaskID("7379996104798150001"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := tasks.ParsePayload(info.Payload); err != nil || p.Profile != "app-eu" || p.Session != endUser {
		t.Errorf("payload %s: %v", info.Payload, err)
	}

	status := c.run(ctx, "status", "jwt", "--format", "json")
	var out []map[string]any
	if err := json.Unmarshal([]byte(status.stdout), &out); err != nil || len(out) != 1 ||
		out[0]["profile"] != "app-eu" || out[0]["session"] != "held until the batch completes" {
		t.Errorf("status: %v\n%s", err, status.stdout)
	}
	proof := c.run(ctx, "report", "jwt")
	if !strings.Contains(proof.stdout, "# profile: app-eu\n") {
		t.Errorf("report:\n%s\n%s", proof.stdout, proof.stderr)
	}

	for _, args := range [][]string{
		{"--batch", "jwt"},
		{"--batch", "jwt", "--profile", "app-eu"},
		{"--batch", "jwt", "--profile", "support-bot"},
	} {
		res := c.run(ctx, append([]string{"enqueue", "7379996104798150002"}, args...)...)
		if res.code != exitSetup || !strings.Contains(res.stderr, "batch exists with other settings: batch jwt acts as profile app-eu") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, res.code, res.stderr)
		}
	}
	// Without a profiles file, any valid profile is taken: the workers
	// resolve it.
	c.env["COZE_ERASER_PROFILES"] = ""
	if res := c.run(ctx, "enqueue", "7379996104798150003", "--batch", "other", "--profile", "app-us", "--session", endUser); res.code != exitOK {
		t.Errorf("enqueue without a profiles file: exit %d\n%s", res.code, res.stderr)
	}
	for _, r := range []result{res, status, proof} {
		if strings.Contains(r.stdout+r.stderr, "user-4711") {
			t.Errorf("the output shows the session name:\n%s\n%s", r.stdout, r.stderr)
		}
	}
}

// TestFailuresRetryRefusesAnErasedSession: once a session batch completed
// and its session name left the ledger, its failures cannot be retried in
// it (the new tasks could only act as another identity): a setup error
// that names the batch, not the session.
func TestFailuresRetryRefusesAnErasedSession(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL}}
	ctx := context.Background()
	id := "7379996104798150001"
	if res := c.run(ctx, "enqueue", id, "--batch", "jwt", "--profile", "app-eu", "--session", endUser); res.code != exitOK {
		t.Fatalf("enqueue: exit %d\n%s", res.code, res.stderr)
	}
	led := ledger.New(srv.Client())
	if _, err := led.Record(ctx, ledger.Attempt{ConversationID: id, Batch: "jwt", Queue: "default", Outcome: ledger.Failed,
		Code: 4101, HasCode: true, HTTPStatus: 200, LogID: "L", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if n, err := led.ScrubSessions(ctx, []byte("a test key of the deployment")); n != 1 || err != nil {
		t.Fatalf("ScrubSessions = %d, %v", n, err)
	}
	res := c.run(ctx, "failures", "retry", "--batch", "jwt")
	if res.code != exitSetup || !strings.Contains(res.stderr, "batch jwt is complete and its session name was erased from the ledger") ||
		strings.Contains(res.stdout+res.stderr, "user-4711") {
		t.Errorf("failures retry: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
}
