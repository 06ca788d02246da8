package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// TestProfilesCheck: one line per profile, ok or the error with what to
// fix; exit 1 when one fails, 2 when the file itself is wrong; the private
// key, the JWT and the minted tokens appear nowhere in the output.
func TestProfilesCheck(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	api := cozetest.NewServer(cozetest.WithJWTApp("1127900106117", map[string]*rsa.PublicKey{"kid-good": &key.PublicKey}))
	defer api.Close()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyFile := write("app.pem", string(keyPEM))
	tokenFile := write("token", "pat_PROFILECHECK_SECRET\n")
	file := write("profiles.yaml", `profiles:
  app-good:
    base_url: `+api.URL+`
    jwt:
      app_id: "1127900106117"
      key_id: kid-good
      private_key_file: `+keyFile+`
  app-wrong-kid:
    base_url: `+api.URL+`
    jwt:
      app_id: "1127900106117"
      key_id: kid-revoked
      private_key_file: `+keyFile+`
  app-no-key:
    base_url: `+api.URL+`
    jwt:
      app_id: "1127900106117"
      key_id: kid-good
      private_key_file: `+filepath.Join(dir, "missing.pem")+`
  support-bot:
    base_url: `+api.URL+`
    token_file: `+tokenFile+`
`)
	r := cli{}.run(context.Background(), "profiles", "check", "--profiles", file, "--session", "user-4711")
	if r.code != exitPartial || !strings.Contains(r.stderr, "2 of 4 profiles failed") {
		t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", r.code, exitPartial, r.stdout, r.stderr)
	}
	lines := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		name, rest, _ := strings.Cut(line, " ")
		lines[name] = strings.TrimSpace(rest)
	}
	for name, want := range map[string]string{
		"app-good":      "ok: minted a token, and one for the session",
		"app-wrong-kid": "invalid_client",
		"app-no-key":    "missing.pem",
		"support-bot":   "ok: token read (a static token has no sessions",
	} {
		if !strings.Contains(lines[name], want) {
			t.Errorf("%s: %q, want it to say %q", name, lines[name], want)
		}
	}
	if n, app := api.Mints("1127900106117", "user-4711"), api.Mints("1127900106117", ""); n != 1 || app != 1 {
		t.Errorf("%d mints for the session and %d for the app, want 1 and 1", n, app)
	}
	out := r.stdout + r.stderr
	for _, secret := range []string{"PRIVATE KEY", "pat_PROFILECHECK_SECRET", "czs_", "eyJ", "user-4711"} {
		if strings.Contains(out, secret) {
			t.Errorf("the output holds %q:\n%s", secret, out)
		}
	}

	// Without --session the token file is read and is ok.
	r = cli{}.run(context.Background(), "profiles", "check", "--profiles", file)
	if !strings.Contains(r.stdout, "ok: token read") {
		t.Errorf("support-bot without a session:\n%s", r.stdout)
	}

	// A wrong file is a setup error naming the line.
	bad := write("bad.yaml", "profiles:\n  x:\n    base_url: https://api.coze.cn\n    tokn_file: /x\n")
	r = cli{}.run(context.Background(), "profiles", "check", "--profiles", bad)
	if r.code != exitSetup || !strings.Contains(r.stderr, "bad.yaml:4") {
		t.Errorf("a bad file: exit %d, stderr %q; want 2 and the line", r.code, r.stderr)
	}
}

// TestFakeAPIJWTKeyFlag: a --jwt-key the fake cannot use is a setup error
// naming the flag and the rule, before it listens.
func TestFakeAPIJWTKeyFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ spec, want string }{
		{"1127900106117=" + notPEM, "use APP_ID:KEY_ID=PUBLIC_KEY_PEM_FILE"},
		{"1127900106117:kid", "use APP_ID:KEY_ID=PUBLIC_KEY_PEM_FILE"},
		{"1127900106117:kid=" + notPEM, "no PEM block"},
		{"1127900106117:kid=" + filepath.Join(dir, "missing.pub"), "missing.pub"},
	} {
		r := cli{}.run(context.Background(), "fake-api", "--addr", "127.0.0.1:0", "--jwt-key", tt.spec)
		if r.code != exitSetup || !strings.Contains(r.stderr, "--jwt-key") || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("--jwt-key %q: exit %d, stderr %q; want 2 and %q", tt.spec, r.code, r.stderr, tt.want)
		}
	}
}

// TestWorkerProfileErrorsAtStart: what is wrong in a profile's files is
// one line at start, exit 2, before any wait for Redis: an unreadable or
// malformed private key, a run of a profile the file lacks, and an OAuth
// app profile without the session key (or with a short one).
func TestWorkerProfileErrorsAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	goodPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	good := write("good.pem", goodPEM)
	keyLine := strings.Split(goodPEM, "\n")[2] // a line of the key's base64
	profile := func(keyFile string) string {
		return write(filepath.Base(keyFile)+".yaml", "profiles:\n  app-cn:\n    base_url: http://127.0.0.1:1\n    jwt:\n"+
			"      app_id: \"1127900106117\"\n      key_id: k1\n      private_key_file: "+keyFile+"\n")
	}
	sessionKey := write("session.key", "0123456789abcdef0123456789abcdef\n")
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"malformed key", map[string]string{"COZE_ERASER_SESSION_KEY_FILE": sessionKey},
			[]string{"worker", "--profiles", profile(write("bad.pem", "not a key\n"))}, "profile app-cn: coze: private key file"},
		{"missing key", map[string]string{"COZE_ERASER_SESSION_KEY_FILE": sessionKey},
			[]string{"worker", "--profiles", profile(filepath.Join(dir, "missing.pem"))}, "cannot read it"},
		{"no session key", nil, []string{"worker", "--profiles", profile(good)}, "COZE_ERASER_SESSION_KEY_FILE is not set"},
		{"short session key", map[string]string{"COZE_ERASER_SESSION_KEY_FILE": write("short.key", "tiny")},
			[]string{"worker", "--profiles", profile(good)}, "it must be at least 16"},
		{"run of an unknown profile", map[string]string{"COZE_ERASER_SESSION_KEY_FILE": sessionKey},
			[]string{"run", "--profiles", profile(good), "--profile", "app-eu", "7379996104798150001"}, "--profile app-eu: not a profile"},
	} {
		env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}
		for k, v := range tt.env {
			env[k] = v
		}
		r := cli{env: env}.run(context.Background(), append(tt.args, "--redis-wait", "0")...)
		if r.code != exitSetup || !strings.Contains(r.stderr, tt.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line saying %q", tt.name, r.code, r.stderr, tt.want)
		}
		if strings.Contains(r.stderr, keyLine) || strings.Contains(r.stderr, "0123456789abcdef") {
			t.Errorf("%s: the error holds a secret: %s", tt.name, r.stderr)
		}
	}
}

// TestRunActsAsOneProfile: run with a profiles file acts as --profile
// only (the file's OAuth app needs no session key then, and its key file
// is not even read), and the batch records the profile.
func TestRunActsAsOneProfile(t *testing.T) {
	t.Parallel()
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("pat_RUN_PROFILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "profiles.yaml")
	yaml := "profiles:\n  bot:\n    base_url: " + fake.URL + "\n    token_file: " + token + "\n" +
		"  app-cn:\n    base_url: " + fake.URL + "\n    jwt:\n      app_id: \"1127900106117\"\n      key_id: k1\n" +
		"      private_key_file: " + filepath.Join(dir, "missing.pem") + "\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	path, ids := writeIDs(t, 20, 7379996104798150001)
	report := filepath.Join(dir, "proof.csv")
	r := cli{}.run(context.Background(), append([]string{"run", "--profiles", file, "--profile", "bot", "--file", path,
		"--report", report}, fastRun...)...)
	if r.code != 0 || !strings.HasPrefix(lastLine(r.stdout), "total=20 deleted=20 ") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, lastLine(r.stdout), r.stderr)
	}
	if proof, _ := os.ReadFile(report); !strings.Contains(string(proof), "# profile: bot") {
		t.Errorf("the proof does not name the profile:\n%.300s", proof)
	}
	if len(fake.Deletions()) != len(ids) {
		t.Errorf("%d deletions, want %d", len(fake.Deletions()), len(ids))
	}
	r = cli{}.run(context.Background(), "run", "--profiles", file, "--file", path)
	if r.code != exitSetup || !strings.Contains(r.stderr, "several profiles (app-cn, bot)") {
		t.Errorf("run without --profile: exit %d, %q", r.code, r.stderr)
	}
}
