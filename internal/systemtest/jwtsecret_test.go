package systemtest

import (
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
)

// TestJWTSecretsNeverLeak runs `profiles check` as a process with an OAuth
// app whose tokens are minted (one good key id, one the app does not have)
// and greps its output for the private key, the JWT, the minted access
// tokens and the session name.
func TestJWTSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile, keyPEM, pub := appKey(t, dir)
	fake := cozetest.NewServer(cozetest.WithJWTApp("1127900106117", map[string]*rsa.PublicKey{"kid-1": pub}))
	t.Cleanup(fake.Close)
	profilesFile := filepath.Join(dir, "profiles.yaml")
	profile := func(name, kid string) string {
		return "  " + name + ":\n    base_url: " + fake.URL + "\n    jwt:\n      app_id: \"1127900106117\"\n      key_id: " + kid +
			"\n      private_key_file: " + keyFile + "\n"
	}
	if err := os.WriteFile(profilesFile, []byte("profiles:\n"+profile("good", "kid-1")+profile("bad", "kid-2")), 0o600); err != nil {
		t.Fatal(err)
	}
	const session = "SESSION_user_4711_PERSONAL"
	out := run(t, nil, "profiles", "check", "--profiles", profilesFile, "--session", session) +
		run(t, map[string]string{"COZE_ERASER_PROFILES": profilesFile}, "profiles", "check")
	if fake.Mints("1127900106117", session) != 1 || fake.Mints("1127900106117", "") == 0 {
		t.Fatalf("mints %v: the check minted nothing, so this test proves nothing; output:\n%s", fake.MintCounts(), out)
	}
	if !strings.Contains(out, "invalid_client") {
		t.Errorf("the bad key id's line is missing:\n%s", out)
	}
	body := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[2] // a line of the key's base64
	for what, secret := range map[string]string{
		"the PEM header": "PRIVATE KEY", "a line of the private key": body, "a JWT": "eyJ",
		"an access token": "czs_", "the session name": session,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the output holds %s:\n%s", what, out)
		}
	}
}

// TestJWTWorkerLeaksNothing runs a worker process acting as an OAuth app's
// end-user sessions, with one token revoked mid-run (so that the auth path
// and its log lines run too), until the batches complete; then it greps
// Redis, the worker's log, /metrics, /readyz, the report, status and the
// process's command line for the private key, a JWT, the access tokens the
// fake minted and, outside asynq's task keys, the session names.
func TestJWTWorkerLeaksNothing(t *testing.T) {
	t.Parallel()
	const app, kid = "1127900106117", "kid-1"
	dir := t.TempDir()
	keyFile, keyPEM, pub := appKey(t, dir)
	b := setup(t, nil, cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: pub}), cozetest.WithTokenLifetime(3*time.Second))
	profiles := writeFile(t, dir, "profiles.yaml", "profiles:\n"+jwtProfile("app-cn", b.fake.URL, app, kid, keyFile, 200))
	env := map[string]string{"REDIS_URL": b.redis.URL, "COZE_ERASER_SESSION_KEY_FILE": writeFile(t, dir, "session.key", "leak-test-session-key-0123456789")}
	sessions := []string{"LEAKTEST_SESSION_alice", "LEAKTEST_SESSION_bob"}
	c := enqueue.NewClient(b.rdb)
	defer c.Close()
	for i, s := range sessions {
		owned := ids(50, 7379996104000000000+int64(i)*1_000_000)
		b.fake.SetOwner(app, s, owned...)
		if _, err := c.EnqueueAll(b.ctx, slices.Values(owned), enqueue.Batch(fmt.Sprintf("leak-%d", i)),
			enqueue.Profile("app-cn"), enqueue.Session(s)); err != nil {
			t.Fatal(err)
		}
	}
	b.fake.RevokeTokens(app) // nothing minted yet: harmless; again below once tokens exist
	w := startWorker(t, env, "--profiles", profiles, "--concurrency", "4", "--auth-probe-interval", "1s")
	waitFor(t, 10*time.Second, "some deletions", func() bool { return len(b.fake.Deletions()) >= 10 })
	b.fake.RevokeTokens(app)
	waitFor(t, 60*time.Second, "both batches to complete", func() bool {
		return b.batch("leak-0").Deleted == 50 && b.batch("leak-1").Deleted == 50
	})
	waitFor(t, 40*time.Second, "session names to leave the ledger", func() bool { return !redisHolds(t, b.redis, "LEAKTEST_SESSION") })

	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", w.cmd.Process.Pid))
	outputs := map[string]string{
		"worker log": w.out.String(),
		"/metrics":   w.body("/metrics"),
		"/readyz":    w.body("/readyz"),
		"report":     run(t, env, "report", "leak-0", "--format", "jsonl") + run(t, env, "report", "leak-1"),
		"status":     run(t, env, "status", "leak-0", "--format", "json"),
		"ps":         string(cmdline),
	}
	if !strings.Contains(outputs["report"], "hmac-sha256:") {
		t.Errorf("the report's summary lacks the session hash:\n%s", outputs["report"])
	}
	body := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[2]
	secrets := map[string]string{"a line of the private key": body, "a JWT": "eyJ", "an access token": "czs_",
		"a session name": "LEAKTEST_SESSION"}
	for where, out := range outputs {
		for what, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Errorf("%s holds %s", where, what)
			}
		}
	}
	for what, secret := range map[string]string{"a line of the private key": body, "a JWT": "eyJ", "an access token": "czs_"} {
		if found, _, err := b.redis.KeysHolding(b.ctx, secret); err != nil || len(found) > 0 {
			t.Errorf("Redis holds %s in %v (%v)", what, found, err)
		}
	}
	if b.fake.TotalMints() < 3 {
		t.Errorf("%d mints: the revocation did not make the worker mint again, so this test proves less", b.fake.TotalMints())
	}
}
