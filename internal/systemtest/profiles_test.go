package systemtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// appKey writes a new RSA private key as a PKCS#8 PEM file in dir and
// returns its path, its PEM and its public key.
func appKey(t *testing.T, dir string) (path string, keyPEM []byte, pub *rsa.PublicKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	path = filepath.Join(dir, "app.pem")
	if err := os.WriteFile(path, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, keyPEM, &key.PublicKey
}

// writeFile writes text to name in dir, readable by its owner only, and
// returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwtProfile is a profiles-file entry of an OAuth app.
func jwtProfile(name, baseURL, appID, kid, keyFile string, rate float64) string {
	return fmt.Sprintf("  %s:\n    base_url: %s\n    jwt:\n      app_id: %q\n      key_id: %s\n      private_key_file: %s\n    rate: %g\n",
		name, baseURL, appID, kid, keyFile, rate)
}

// sessionsScenario is acceptance run 1 of the identities issue: n ids
// owned by sessions sessions of one OAuth app (the fake lets only a
// conversation's creator delete it), the fake's tokens living lifetime, a
// worker process acting as each session at about rate calls a second. It
// checks that every id is deleted by its own session, no call was refused
// for its token, each session minted at most ceil(T / (0.9 × lifetime)) + 1
// times, and no session name is left in the ledger once the batches are
// complete. It returns the run's time and the mints per session.
func sessionsScenario(t *testing.T, n, sessions int, lifetime time.Duration, rate float64) (time.Duration, []int) {
	const app, kid = "1127900106117", "kid-1"
	dir := t.TempDir()
	keyFile, _, pub := appKey(t, dir)
	b := setup(t, nil, cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: pub}),
		cozetest.WithTokenLifetime(lifetime), cozetest.WithoutCallLog())
	profiles := writeFile(t, dir, "profiles.yaml", "profiles:\n"+jwtProfile("app-cn", b.fake.URL, app, kid, keyFile, rate))
	sessionKey := writeFile(t, dir, "session.key", "systemtest-session-key-0123456789abcdef")
	names := make([]string, sessions)
	owned := make([][]string, sessions)
	all := ids(n, 7379996104000000000)
	for i := range names {
		names[i] = fmt.Sprintf("PERSONAL-subject-%04d", i)
	}
	for j, id := range all {
		owned[j%sessions] = append(owned[j%sessions], id)
	}
	c := enqueue.NewClient(b.rdb)
	defer c.Close()
	for i, s := range names {
		b.fake.SetOwner(app, s, owned[i]...)
	}
	// In rounds of a few ids per session, so that every session has
	// tasks from the first minute of the run to the last and must renew.
	const round = 10
	for r := 0; r*round < len(owned[0]); r++ {
		for i, s := range names {
			chunk := owned[i][r*round : min((r+1)*round, len(owned[i]))]
			sum, err := c.EnqueueAll(b.ctx, slices.Values(chunk), enqueue.Batch(fmt.Sprintf("subject-%04d", i)),
				enqueue.Profile("app-cn"), enqueue.Session(s))
			if err != nil || sum.Enqueued != len(chunk) {
				t.Fatalf("enqueue: %+v, %v", sum, err)
			}
		}
	}
	start := time.Now()
	w := startWorker(t, map[string]string{"REDIS_URL": b.redis.URL, "COZE_ERASER_SESSION_KEY_FILE": sessionKey},
		"--profiles", profiles, "--concurrency", "50")
	waitFor(t, 10*time.Minute, "every batch to complete", func() bool {
		for i := range names {
			if bt := b.batch(fmt.Sprintf("subject-%04d", i)); bt.Total == 0 || bt.Pending() > 0 {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	deleted := 0
	for i := range names {
		bt := b.batch(fmt.Sprintf("subject-%04d", i))
		deleted += bt.Deleted
	}
	if deleted != n {
		t.Errorf("%d of %d ids deleted", deleted, n)
	}
	counts := b.fake.Counts()
	if counts[cozetest.AnswerUnauth] > 0 || counts[cozetest.AnswerNotCreator] > 0 {
		t.Errorf("answers %v: want no 4100 (token) and no 4200 (another identity)", counts)
	}
	bound := int(math.Ceil(took.Seconds()/(0.9*lifetime.Seconds()))) + 1
	mints := make([]int, sessions)
	for i, s := range names {
		mints[i] = b.fake.Mints(app, s)
		if mints[i] < 1 || mints[i] > bound {
			t.Errorf("session %d minted %d tokens in %v; want 1 to %d", i, mints[i], took.Round(time.Second), bound)
		}
	}
	waitFor(t, 40*time.Second, "session names to leave the ledger", func() bool {
		return !redisHolds(t, b.redis, "PERSONAL-subject")
	})
	if out := w.out.String(); strings.Contains(out, "PERSONAL-subject") {
		t.Errorf("the worker's log holds a session name")
	}
	return took, mints
}

// redisHolds reports whether a key, or a value, of Redis outside asynq's
// task keys of the default queue (the tasks of a session carry it while
// they exist) holds s.
func redisHolds(t *testing.T, srv *redistest.Server, s string) bool {
	t.Helper()
	found, _, err := srv.KeysHolding(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range found {
		if !strings.HasPrefix(key, asynqwire.TaskPrefix(enqueue.DefaultQueue)) {
			return true
		}
	}
	return false
}

// TestSessionsOfOneApp is acceptance run 1 at CI size: 2,000 ids of 20
// sessions for about 20 s with 10 s tokens, so that every session renews.
// The full run (20,000 ids, 200 sessions, 3 minutes, 60 s tokens) is
// TestSessionsOfOneAppFullSize, behind the slow tag.
func TestSessionsOfOneApp(t *testing.T) {
	t.Parallel()
	took, mints := sessionsScenario(t, 2000, 20, 10*time.Second, 100)
	t.Logf("2,000 ids, 20 sessions: %v; mints per session %v", took.Round(time.Millisecond), mints)
}

// TestTwoProfilesTwoLimits is acceptance run 2: two profiles on two
// accounts (fakes limited to 50 and 200 calls a second, the profiles'
// rates) in one fleet of two workers, 20,000 ids each in one queue. Each
// runs near its own limit; revoking profile a's key pauses a only (b keeps
// its rate); restoring it resumes a without a restart, and no task is
// archived.
func TestTwoProfilesTwoLimits(t *testing.T) {
	// Not parallel: it measures rates, which the package's heavy parallel
	// tests (the Sentinel failover, the browser) would bend on a 2-core
	// CI machine (39.2/s against 45 once, right after the resume). Go runs
	// it alone, before them.
	const app, kid = "1127900106117", "kid-1"
	dir := t.TempDir()
	keyFile, _, pub := appKey(t, dir)
	b := setup(t, nil, cozetest.WithRateLimit(200, 20), cozetest.WithoutCallLog())
	fakeA := cozetest.NewServer(cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: pub}),
		cozetest.WithRateLimit(50, 5), cozetest.WithoutCallLog())
	t.Cleanup(fakeA.Close)
	tokenFile := writeFile(t, dir, "token", b.token)
	profiles := writeFile(t, dir, "profiles.yaml", "profiles:\n"+jwtProfile("a", fakeA.URL, app, kid, keyFile, 45)+
		fmt.Sprintf("  b:\n    base_url: %s\n    token_file: %s\n    rate: 200\n", b.fake.URL, tokenFile))
	env := map[string]string{"REDIS_URL": b.redis.URL,
		"COZE_ERASER_SESSION_KEY_FILE": writeFile(t, dir, "session.key", "systemtest-session-key-0123456789abcdef")}
	c := enqueue.NewClient(b.rdb)
	defer c.Close()
	for _, p := range []struct {
		profile string
		base    int64
	}{{"a", 7379996104000000000}, {"b", 7379996105000000000}} {
		if _, err := c.EnqueueAll(b.ctx, slices.Values(ids(20000, p.base)), enqueue.Batch("batch-"+p.profile),
			enqueue.Profile(p.profile)); err != nil {
			t.Fatal(err)
		}
	}
	workers := []*proc{
		startWorker(t, env, "--profiles", profiles, "--concurrency", "250", "--auth-probe-interval", "1s"),
		startWorker(t, env, "--profiles", profiles, "--concurrency", "250", "--auth-probe-interval", "1s"),
	}
	deleted := func() (a, b2 int) { return b.batch("batch-a").Deleted, b.batch("batch-b").Deleted }
	rates := func(window time.Duration) (float64, float64) {
		a0, b0 := deleted()
		time.Sleep(window)
		a1, b1 := deleted()
		return float64(a1-a0) / window.Seconds(), float64(b1-b0) / window.Seconds()
	}
	time.Sleep(15 * time.Second) // let both budgets find their limits
	rateA, rateB := rates(10 * time.Second)
	t.Logf("both running: a %.1f/s (limit 50), b %.1f/s (limit 200)", rateA, rateB)
	// Each profile runs near its own account's limit. (a's rate is a
	// tenth under its limit: at the limit exactly, calls bunched by a
	// loaded machine draw 429s, and each cuts its budget.)
	if rateA < 40 || rateA > 55 || rateB < 160 || rateB > 210 {
		t.Errorf("rates a %.1f/s, b %.1f/s; want each near its limit, 50 and 200", rateA, rateB)
	}

	fakeA.RemoveJWTKey(app, kid)
	fakeA.RevokeTokens(app)
	waitFor(t, 20*time.Second, "profile a to pause on both workers", func() bool {
		for _, w := range workers {
			if !strings.Contains(w.body("/metrics"), `coze_eraser_auth_paused{profile="a"} 1`) {
				return false
			}
		}
		return true
	})
	rateA, rateB = rates(5 * time.Second)
	t.Logf("a revoked: a %.1f/s, b %.1f/s", rateA, rateB)
	if rateA != 0 || rateB < 160 {
		t.Errorf("a revoked: a %.1f/s, b %.1f/s; want a paused and b near 200", rateA, rateB)
	}
	if body := workers[0].body("/readyz"); !strings.Contains(body, "profile a ") {
		t.Errorf("/readyz = %q; want it to name profile a", body)
	}

	fakeA.AddJWTKey(app, kid, pub)
	waitFor(t, 30*time.Second, "profile a to resume", func() bool {
		a0, _ := deleted()
		time.Sleep(time.Second)
		a1, _ := deleted()
		return a1 > a0
	})
	rateA, _ = rates(5 * time.Second)
	t.Logf("a restored: a %.1f/s", rateA)
	if rateA < 40 {
		t.Errorf("a restored: %.1f/s; want it near 50 again", rateA)
	}
	if n := b.rdb.ZCard(b.ctx, asynqwire.StateKey(enqueue.DefaultQueue, "archived")).Val(); n != 0 {
		t.Errorf("%d tasks archived", n)
	}
	for _, w := range workers {
		if out := w.out.String(); strings.Contains(out, "czs_") || strings.Contains(out, "eyJ") {
			t.Errorf("a worker's log holds an access token or a JWT")
		}
	}
}
