package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestServeSubjectRequest: serve --profiles with the session key lists a
// subject POSTed to the API as their session, into a verified batch of
// exactly their conversations; without the key it refuses to start, like
// a worker.
func TestServeSubjectRequest(t *testing.T) {
	t.Parallel()
	_, profilesFile, mine := subjectFake(t, 30)
	srv := redistest.Start(t)
	dir := t.TempDir()
	gen := cli{}.run(context.Background(), "api-key", "new", "platform", "--scope", "read,write")
	lines := strings.Split(strings.TrimSpace(gen.stdout), "\n")
	keys, sessionKey := filepath.Join(dir, "keys.txt"), filepath.Join(dir, "session.key")
	for path, content := range map[string]string{keys: lines[1] + "\n", sessionKey: "0123456789abcdef0123456789abcdef\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"serve", "--redis-url", srv.URL, "--api-addr", "127.0.0.1:0", "--api-keys", keys, "--profiles", profilesFile}
	if r := (cli{}).run(context.Background(), args...); r.code != exitSetup || !strings.Contains(r.stderr, sessionKeyEnv) {
		t.Errorf("without the session key: exit %d %q", r.code, r.stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stderr logbuf.Buffer
	done := make(chan int)
	go func() {
		lookup := func(k string) (string, bool) { return sessionKey, k == sessionKeyEnv }
		done <- run(ctx, args, env{lookup: lookup}, strings.NewReader(""), io.Discard, &stderr)
	}()
	var addr string
	waitUntil(t, 10*time.Second, func() bool {
		_, rest, ok := strings.Cut(stderr.String(), "api: http://")
		addr, _, _ = strings.Cut(rest, " ")
		return ok && addr != ""
	})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/erasure-requests", strings.NewReader(
		`{"request_id":"dsr-api","subject":{"profile":"app-cn","session":"`+subjectSession+`","bot_ids":["`+subjectBot1+`","`+subjectBot2+`"]}}`))
	req.Header.Set("Authorization", "Bearer "+lines[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st struct {
		Total     int `json:"total"`
		Discovery struct {
			Found int `json:"found"`
		} `json:"discovery"`
	}
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != http.StatusCreated || st.Total != len(mine) || st.Discovery.Found != len(mine) {
		t.Errorf("create: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body)+stderr.String(), "PERSONAL") {
		t.Errorf("the answer or the log shows the session name: %s\n%s", body, stderr.String())
	}
	b, ok, err := ledger.New(srv.Client()).Batch(context.Background(), "dsr-api")
	if err != nil || !ok || b.Total != len(mine) || b.Profile != "app-cn" || !b.HasSession || b.Verification.State != ledger.VerificationPending {
		t.Errorf("batch %+v, %v, %v", b, ok, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d: %s", code, stderr.String())
	}
}
