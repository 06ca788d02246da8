package systemtest

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// TestTokenNeverLeaks runs a batch with a distinctive token, some of it
// with the token rejected, then greps everything the processes left behind
// for it: Redis keys and values, log lines, /metrics, the report, the
// failure listing, status, error messages and ps output.
func TestTokenNeverLeaks(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cozetest.WithFaults(map[cozetest.Fault]float64{cozetest.InternalError: 0.1, cozetest.BadParameter: 0.02}))
	b.fake.SetToken(b.token)
	all := ids(300, 8000000000000000001)
	env := b.env()

	// The token from a file, rotated mid-run from a wrong one to the right
	// one: the auth errors go through the logs too.
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(b.token+"-WRONG\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fileEnv := map[string]string{"REDIS_URL": b.redis.URL, "COZE_BASE_URL": b.fake.URL, "COZE_API_TOKEN_FILE": tokenFile}
	w := startWorker(t, fileEnv, "--auth-probe-interval", "200ms", "--retry-base", "10ms", "--retry-cap", "50ms", "--log-level", "debug")
	p := exec.Command(binary, "enqueue", "--batch", "secret", "--redis-url", b.redis.URL)
	p.Args = append(p.Args, all...)
	p.Env = []string{"PATH=" + os.Getenv("PATH")}
	if out, err := p.CombinedOutput(); err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "the token to be rejected", func() bool { return w.get("/readyz") == 503 })
	if err := os.WriteFile(tokenFile, []byte(b.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the batch", func() bool { return b.batch("secret").Pending() == 0 && b.batch("secret").Total == len(all) })

	// ps, while the worker runs.
	ps, err := exec.Command("ps", "-eo", "pid,args").CombinedOutput()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(w.cmd.Process.Pid) + "/cmdline")

	outputs := map[string]string{
		"ps output":         string(ps),
		"worker cmdline":    string(cmdline),
		"worker log":        w.out.String(),
		"/metrics":          httpGet(t, "http://"+w.metrics+"/metrics"),
		"report":            run(t, env, "report", "secret", "--format", "jsonl"),
		"failures list":     run(t, env, "failures", "list", "--format", "csv"),
		"status":            run(t, env, "status", "--format", "json"),
		"bad token error":   run(t, map[string]string{"COZE_API_TOKEN": b.token + "\nX"}, "worker"),
		"both tokens error": run(t, map[string]string{"COZE_API_TOKEN": b.token, "COZE_API_TOKEN_FILE": tokenFile}, "worker"),
	}
	if !strings.Contains(outputs["worker log"], "the API rejects the profile's token") {
		t.Fatal("the worker never logged the rejected token: the test proves nothing")
	}
	sent := false
	for _, c := range b.fake.Calls() {
		sent = sent || c.Token == b.token
	}
	if !sent {
		t.Fatal("the token never reached the fake: the test proves nothing")
	}
	for name, text := range outputs {
		if text == "" && name != "worker cmdline" {
			t.Errorf("%s is empty: nothing was checked", name)
		}
		if strings.Contains(text, b.token) {
			t.Errorf("the token is in the %s", name)
		}
	}
	found, read, err := b.redis.KeysHolding(context.Background(), b.token)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("the token is in Redis keys %q", found)
	}
	if read < 10 {
		t.Errorf("only %d Redis keys read: nothing was checked", read)
	}
}

// run runs the binary to completion and returns its output.
func run(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, _ := cmd.CombinedOutput()
	return string(out)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
