package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

const (
	subjectApp     = "1127900106117"
	subjectSession = "user-4711-PERSONAL"
	subjectBot1    = "7300000000000000001"
	subjectBot2    = "7300000000000000002"
)

// subjectFake is a fake API with an OAuth app, whose profile is app-cn of
// the returned profiles file (with a static profile, bot), and the
// subject's perBot conversations on each of two bots beside another
// user's.
func subjectFake(t *testing.T, perBot int) (fake *cozetest.Server, profilesFile string, mine []string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fake = cozetest.NewServer(cozetest.WithJWTApp(subjectApp, map[string]*rsa.PublicKey{"k1": &key.PublicKey}))
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "app.pem")
	tokenFile := filepath.Join(dir, "token")
	profilesFile = filepath.Join(dir, "profiles.yaml")
	for path, content := range map[string]string{
		keyFile:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		tokenFile: "pat_SUBJECT_TEST\n",
		profilesFile: "profiles:\n  app-cn:\n    base_url: " + fake.URL + "\n    jwt:\n      app_id: \"" + subjectApp + "\"\n" +
			"      key_id: k1\n      private_key_file: " + keyFile + "\n  bot:\n    base_url: " + fake.URL + "\n    token_file: " + tokenFile + "\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	next := int64(7379996104700000000)
	for _, bot := range []string{subjectBot1, subjectBot2} {
		for i := range 2 * perBot {
			next++
			session := subjectSession
			if i%2 == 1 {
				session = "someone-else"
			} else {
				mine = append(mine, fmt.Sprint(next))
			}
			fake.AddConversations(cozetest.Conversation{ID: fmt.Sprint(next), BotID: bot, Owner: cozetest.Identity{App: subjectApp, Session: session}})
		}
	}
	return fake, profilesFile, mine
}

// TestEraseSubjectCommand: erase-subject lists the subject's conversations
// as their session, queues them as a verified batch, and prints the tally
// line; running it again finds them all held.
func TestEraseSubjectCommand(t *testing.T) {
	t.Parallel()
	_, profilesFile, mine := subjectFake(t, 60)
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL, "COZE_ERASER_ERASE_SUBJECT_SESSION": subjectSession}}
	args := []string{"erase-subject", "--profiles", profilesFile, "--profile", "app-cn", "--bot-id", subjectBot1 + "," + subjectBot2,
		"--batch", "dsr-4711", "--note", "DSR-4711"}
	r := c.run(context.Background(), args...)
	if r.code != 0 || lastLine(r.stdout) != "found=120 enqueued=120 duplicate=0 batch=dsr-4711" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "listed bot "+subjectBot2+" (connector 1024): 60 conversations on 2 pages") {
		t.Errorf("stderr does not tell the listings:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "PERSONAL") {
		t.Errorf("the output shows the session name:\n%s%s", r.stdout, r.stderr)
	}
	led := ledger.New(srv.Client())
	b, ok, err := led.Batch(context.Background(), "dsr-4711")
	if err != nil || !ok || b.Total != len(mine) || b.Verification.State != ledger.VerificationPending || b.Profile != "app-cn" || !b.HasSession {
		t.Fatalf("batch %+v, %v, %v", b, ok, err)
	}
	// Released: every id waits to be fed into default, then is a task.
	if unfed, err := led.Unfed(context.Background()); err != nil || unfed["default"] != len(mine) {
		t.Fatalf("unfed %v, %v; want %d ids waiting in default", unfed, err, len(mine))
	}
	feed(t, srv, "default")
	info, err := asynq.NewInspectorFromRedisClient(srv.Client()).GetQueueInfo("default")
	if err != nil || info.Pending != len(mine) {
		t.Fatalf("queue: %+v, %v; want %d tasks pending", info, err, len(mine))
	}
	r = c.run(context.Background(), args...)
	if r.code != 0 || lastLine(r.stdout) != "found=120 enqueued=0 duplicate=120 batch=dsr-4711" {
		t.Errorf("again: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestRunErasesASubject: run --session --bot-id erases the subject on the
// embedded Redis and exits once the verification passed.
func TestRunErasesASubject(t *testing.T) {
	t.Parallel()
	fake, profilesFile, mine := subjectFake(t, 30)
	report := filepath.Join(t.TempDir(), "proof.csv")
	c := cli{env: map[string]string{"COZE_ERASER_RUN_SESSION": subjectSession}}
	// --profile left out: the run picks the file's profile as it does for ids.
	onlyApp := filepath.Join(t.TempDir(), "app-only.yaml")
	whole, err := os.ReadFile(profilesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(onlyApp, []byte(strings.Split(string(whole), "  bot:\n")[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.run(context.Background(), append([]string{"run", "--profiles", onlyApp, "--bot-id", subjectBot1,
		"--bot-id", subjectBot2, "--report", report}, fastRun...)...)
	if r.code != 0 || !strings.HasPrefix(lastLine(r.stdout), "total=60 deleted=60 not_found=0 failed=0 pending=0 invalid=0 verification=passed ") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if len(fake.Deletions()) != len(mine) {
		t.Errorf("%d deletions, want the subject's %d", len(fake.Deletions()), len(mine))
	}
	proof, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# discovery", "# verification", subjectBot2} {
		if !strings.Contains(string(proof), want) {
			t.Errorf("the proof lacks %q:\n%.600s", want, proof)
		}
	}
	if strings.Contains(string(proof)+r.stdout+r.stderr, "PERSONAL") {
		t.Error("the proof or the output shows the session name")
	}
}

// TestEraseSubjectRefusesBadFlags: each bad flag is one line on stderr,
// exit 2, before Redis is reached.
func TestEraseSubjectRefusesBadFlags(t *testing.T) {
	t.Parallel()
	_, profilesFile, _ := subjectFake(t, 1)
	base := []string{"erase-subject", "--redis-url", deadRedisURL(t), "--profiles", profilesFile}
	withSession := map[string]string{"COZE_ERASER_ERASE_SUBJECT_SESSION": subjectSession}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{withSession, []string{"--bot-id", subjectBot1}, "--profile is required"},
		{nil, []string{"--profile", "app-cn", "--bot-id", subjectBot1}, "--session is required"},
		{withSession, []string{"--profile", "app-cn"}, "--bot-id is required"},
		{withSession, []string{"--profile", "app-cn", "--bot-id", "abc"}, `--bot-id: bot id "abc"`},
		{withSession, []string{"--profile", "app-cn", "--bot-id", subjectBot1, "--connector-id", "5"}, `--connector-id: connector id "5"`},
		{withSession, []string{"--profile", "nope", "--bot-id", subjectBot1}, "--profile nope: not a profile"},
		{withSession, []string{"--profile", "bot", "--bot-id", subjectBot1}, "--profile bot is a static token"},
		{withSession, []string{"--profile", "app-cn", "--bot-id", subjectBot1, "--batch", "a b"}, "--batch"},
		{withSession, []string{"--profile", "app-cn", "--bot-id", subjectBot1, "extra"}, "takes no arguments"},
	} {
		r := cli{env: tc.env}.run(context.Background(), append(base, tc.args...)...)
		if r.code != exitSetup || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q in one line", tc.args, r.code, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, "PERSONAL") {
			t.Errorf("%v: the error shows the session", tc.args)
		}
	}
}

// TestEraseSubjectDiscoveryFails: a listing the API refuses ends the
// command with exit 2 and says what happens to what was found.
func TestEraseSubjectDiscoveryFails(t *testing.T) {
	t.Parallel()
	fake, profilesFile, _ := subjectFake(t, 10)
	fake.ScriptList(cozetest.BadParameter)
	srv := redistest.Start(t)
	c := cli{env: map[string]string{"REDIS_URL": srv.URL, "COZE_ERASER_ERASE_SUBJECT_SESSION": subjectSession}}
	r := c.run(context.Background(), "erase-subject", "--profiles", profilesFile, "--profile", "app-cn", "--bot-id", subjectBot1,
		"--bot-id", subjectBot2, "--batch", "dsr-fail")
	if r.code != exitSetup || lastLine(r.stdout) != "found=0 enqueued=0 duplicate=0 batch=dsr-fail" ||
		!strings.Contains(r.stderr, "discovery incomplete") || !strings.Contains(r.stderr, "running the same command again is safe") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestErrorsFromTheAPIArePrintable: a listing error whose text comes from
// the API (its msg) reaches the terminal without escapes.
func TestErrorsFromTheAPIArePrintable(t *testing.T) {
	t.Parallel()
	if got := printableLines("listing: code 4000: \x1b[2Jpwned\nsecond \x07line"); strings.ContainsAny(got, "\x1b\x07") ||
		strings.Count(got, "\n") != 1 {
		t.Errorf("printableLines = %q", got)
	}
}
