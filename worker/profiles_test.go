package worker_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
	"github.com/coze-eraser/coze-eraser/worker"
)

// enqueueAs queues raw tasks of ids as profile and session into batch, as
// a producer that names an identity does.
func (b *bundle) enqueueAs(t *testing.T, batch, profile, session string, ids []string) {
	t.Helper()
	client := asynq.NewClientFromRedisClient(b.rdb)
	t.Cleanup(func() { client.Close() })
	for _, id := range ids {
		task, err := tasks.NewTask(tasks.Payload{ConversationID: id, Batch: batch, Profile: profile, Session: session},
			asynq.MaxRetry(tasks.AsynqMaxRetry(5)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEachProfilePausesAlone: two profiles on two accounts (two fakes). The
// API rejects profile a's token: a's calls pause, /readyz names a, and
// a's gauge is 1, while b's tasks all finish; once a's token is accepted
// again, a's tasks finish too, without a restart, and none was archived.
func TestEachProfilePausesAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fakeA := cozetest.NewServer()
	t.Cleanup(fakeA.Close)
	fakeA.SetAuthDown(true)
	cfg := b.fastConfig(t, nil)
	apiB := cfg.API
	cfg.API = nil
	apiA, err := coze.NewClient(fakeA.URL, coze.StaticToken(b.token), coze.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identities = map[string]worker.Identity{"a": {API: apiA}, "b": {API: apiB}}
	idsA, idsB := ids(15, 7379996104700000000), ids(15, 7379996104800000000)
	b.enqueueAs(t, "batch-a", "a", "", idsA)
	b.enqueueAs(t, "batch-b", "b", "", idsB)
	w := b.startWorker(t, cfg)

	waitFor(t, 10*time.Second, "profile b's batch to complete", func() bool {
		bt, ok, err := b.ledger.Batch(b.ctx, "batch-b")
		return err == nil && ok && bt.Total == len(idsB) && bt.Pending() == 0
	})
	if got := testutil.ToFloat64(w.Metrics().AuthPaused.WithLabelValues("a")); got != 1 {
		t.Errorf("auth_paused{profile=a} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(w.Metrics().AuthPaused.WithLabelValues("b")); got != 0 {
		t.Errorf("auth_paused{profile=b} = %v, want 0", got)
	}
	err = w.Ready(b.ctx)
	if err == nil || !strings.Contains(err.Error(), "profile a ") || strings.Contains(err.Error(), "profile a, b") {
		t.Errorf("Ready = %v, want a pause naming profile a only", err)
	}
	if got := w.HeldBack(); got != "paused: token rejected for profile a" {
		t.Errorf("HeldBack = %q", got)
	}
	if n := len(fakeA.Deletions()); n != 0 {
		t.Fatalf("%d of a's ids deleted while its token is rejected", n)
	}

	fakeA.SetAuthDown(false)
	waitFor(t, 10*time.Second, "profile a's batch to complete", func() bool {
		bt, ok, err := b.ledger.Batch(b.ctx, "batch-a")
		return err == nil && ok && bt.Deleted == len(idsA)
	})
	waitFor(t, 5*time.Second, "the pause to end", func() bool { return w.Ready(b.ctx) == nil })
	if n := b.archived(t); n != 0 {
		t.Errorf("%d tasks archived", n)
	}
	for _, id := range idsB {
		if _, ok := fakeA.Deleted(id); ok {
			t.Errorf("b's id %s was called as profile a", id)
		}
	}
	if !strings.Contains(b.logs.String(), `"profile":"a"`) {
		t.Errorf("no log line names profile a:\n%s", b.logs.String())
	}
}

// jwtKeyFile writes a new RSA key as a PKCS#8 PEM file and returns its
// path and public key.
func jwtKeyFile(t *testing.T) (string, *rsa.PublicKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &key.PublicKey
}

// TestSessionTasksActAsTheirSession: tasks of an OAuth app's sessions are
// called with each session's own token (the fake lets only a
// conversation's creator delete it), each session mints once however many
// of its tasks start at once, and once the batch is complete the ledger
// holds the session's keyed hash, not its name.
func TestSessionTasksActAsTheirSession(t *testing.T) {
	t.Parallel()
	const app, kid = "1127900106117", "kid-1"
	keyFile, pub := jwtKeyFile(t)
	b := setup(t, cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: pub}))
	cfg := b.appConfig(t, app, kid, keyFile)
	sessions := []string{"user-4711-PERSONAL", "user-4712-PERSONAL"}
	for i, s := range sessions {
		owned := ids(10, 7379996104700000000+int64(i)*1_000_000)
		b.fake.SetOwner(app, s, owned...)
		b.enqueueSessionBatch(t, fmt.Sprintf("subject-%d", i), s, owned)
	}
	w := b.startWorker(t, cfg)
	for i := range sessions {
		batch := fmt.Sprintf("subject-%d", i)
		waitFor(t, 15*time.Second, batch+" to complete", func() bool {
			bt, ok, err := b.ledger.Batch(b.ctx, batch)
			return err == nil && ok && bt.Total == 10 && bt.Deleted == 10
		})
	}
	for _, s := range sessions {
		if n := b.fake.Mints(app, s); n != 1 {
			t.Errorf("%d mints for one session, want 1", n)
		}
	}
	waitFor(t, 5*time.Second, "the session names to leave the ledger", func() bool {
		for i := range sessions {
			bt, ok, err := b.ledger.Batch(b.ctx, fmt.Sprintf("subject-%d", i))
			if err != nil || !ok || bt.HasSession || bt.SessionHash != ledger.SessionHash(cfg.SessionKey, sessions[i]) {
				return false
			}
		}
		return true
	})
	if n := readyz(w); n != 200 {
		t.Errorf("/readyz = %d", n)
	}
	if strings.Contains(b.logs.String(), "PERSONAL") {
		t.Errorf("a log line holds a session name:\n%s", b.logs.String())
	}
}

// appConfig is a fast worker configuration whose one profile, app-cn, is
// the OAuth app appID of the fake, signing with keyFile under kid.
func (b *bundle) appConfig(t *testing.T, appID, kid, keyFile string) worker.Config {
	t.Helper()
	jwtApp, err := coze.NewJWTApp(coze.JWTConfig{BaseURL: b.fake.URL, AppID: appID, KeyID: kid, PrivateKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	client, err := coze.NewClient(b.fake.URL, jwtApp.Session(""), coze.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.fastConfig(t, nil)
	cfg.API = nil
	cfg.SessionKey = []byte("0123456789abcdef0123456789abcdef")
	cfg.Identities = map[string]worker.Identity{"app-cn": {
		API:      client,
		Sessions: func(s string) worker.API { return client.WithTokens(jwtApp.Session(s)) },
	}}
	return cfg
}

// enqueueSessionBatch enqueues ids into batch as the session of profile
// app-cn.
func (b *bundle) enqueueSessionBatch(t *testing.T, batch, session string, owned []string) {
	t.Helper()
	sum, err := b.enqueue.EnqueueAll(b.ctx, func(yield func(string) bool) {
		for _, id := range owned {
			if !yield(id) {
				return
			}
		}
	}, enqueue.Batch(batch), enqueue.Profile("app-cn"), enqueue.Session(session))
	if err != nil || sum.Enqueued != len(owned) {
		t.Fatalf("enqueue: %+v, %v", sum, err)
	}
}

// TestJWTRejectionsPauseTheProfile is acceptance 3 for what the token
// endpoint refuses at run time: a key id the app does not have, a wrong
// audience and an expired JWT (the fake's clock an hour ahead) each pause
// the profile with one log line that says why, and never archive a task
// or call the API as another identity.
func TestJWTRejectionsPauseTheProfile(t *testing.T) {
	t.Parallel()
	const app = "1127900106117"
	keyFile, pub := jwtKeyFile(t)
	tests := []struct {
		name string
		fake []cozetest.Option
		want string
	}{
		{"wrong kid", []cozetest.Option{cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{"kid-2": pub})}, "kid"},
		{"wrong aud", []cozetest.Option{cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{"kid-1": pub}),
			cozetest.WithAudience("api.coze.com")}, "aud"},
		{"expired", []cozetest.Option{cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{"kid-1": pub}),
			cozetest.WithClock(func() time.Time { return time.Now().Add(time.Hour) })}, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.fake...)
			cfg := b.appConfig(t, app, "kid-1", keyFile)
			b.enqueueSessionBatch(t, "subject", "user-4711-PERSONAL", ids(3, 7379996104700000000))
			w := b.startWorker(t, cfg)
			waitFor(t, 10*time.Second, "the profile's auth pause", func() bool {
				return testutil.ToFloat64(w.Metrics().AuthPaused.WithLabelValues("app-cn")) == 1
			})
			waitFor(t, 10*time.Second, "a few probes", func() bool {
				n := 0
				for _, c := range b.fake.TokenRejections() {
					n += c
				}
				return n >= 3
			})
			logs := b.logs.String()
			if n := strings.Count(logs, "rejects the profile's token"); n != 1 {
				t.Errorf("%d pause lines, want 1:\n%s", n, logs)
			}
			line := logs[strings.Index(logs, "rejects the profile's token"):]
			line = line[:strings.IndexByte(line, '\n')]
			if !strings.Contains(line, "invalid_client") || !strings.Contains(line, tt.want) {
				t.Errorf("the pause line does not say why (%s): %s", tt.want, line)
			}
			if n := b.archived(t); n != 0 || len(b.fake.Deletions()) != 0 {
				t.Errorf("%d archived, %d deleted; want none", n, len(b.fake.Deletions()))
			}
			if strings.Contains(logs, "PERSONAL") || strings.Contains(logs, "eyJ") {
				t.Errorf("a log line holds the session or a JWT:\n%s", logs)
			}
		})
	}
}
