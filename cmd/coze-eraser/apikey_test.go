package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestAPIKeyNew: the secret printed is admitted by the line printed, with
// the scopes asked for; a bad name or scope is one line, exit 2.
func TestAPIKeyNew(t *testing.T) {
	t.Parallel()
	r := cli{}.run(context.Background(), "api-key", "new", "dsr-platform", "--scope", "read,write")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	keys, err := httpapi.ParseKeys(strings.NewReader(lines[1]), "printed")
	if err != nil {
		t.Fatal(err)
	}
	req := newBearerRequest(lines[0])
	if k, err := keys.Authenticate(req); err != nil || k.Name != "dsr-platform" || !k.Can(httpapi.ScopeWrite) {
		t.Errorf("the printed secret: key %+v, %v", k, err)
	}
	for _, args := range [][]string{{"api-key", "new", "a b"}, {"api-key", "new", "x", "--scope", "admin"}, {"api-key", "new"}} {
		if r := (cli{}).run(context.Background(), args...); r.code != exitSetup || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func newBearerRequest(secret string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v1/failures", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	return r
}

// TestServe: serve answers 401 without a key and creates a request with
// one; a missing or bad keys file is one line, exit 2.
func TestServe(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	gen := cli{}.run(context.Background(), "api-key", "new", "platform", "--scope", "read,write")
	lines := strings.Split(strings.TrimSpace(gen.stdout), "\n")
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte(lines[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr logbuf.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--redis-url", srv.URL, "--api-addr", "127.0.0.1:0", "--api-keys", keys},
			env{lookup: func(string) (string, bool) { return "", false }}, strings.NewReader(""), io.Discard, &stderr)
	}()
	var addr string
	waitUntil(t, 10*time.Second, func() bool {
		_, rest, ok := strings.Cut(stderr.String(), "api: http://")
		addr, _, _ = strings.Cut(rest, " ")
		return ok && addr != ""
	})
	if strings.Contains(stderr.String(), lines[0]) {
		t.Error("serve printed the secret")
	}
	resp, err := http.Get("http://" + addr + "/v1/failures")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no key: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/erasure-requests",
		strings.NewReader(`{"request_id":"api-1","ids":["7379996104798150001"]}`))
	req.Header.Set("Authorization", "Bearer "+lines[0])
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Errorf("create: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d: %s", code, stderr.String())
	}
	for _, tc := range [][]string{{"serve", "--redis-url", deadRedisURL(t)}, {"serve", "--redis-url", srv.URL, "--api-keys", filepath.Join(t.TempDir(), "none")}} {
		if r := (cli{}).run(context.Background(), tc...); r.code != exitSetup || !strings.Contains(r.stderr, "--api-keys") {
			t.Errorf("%v: exit %d %q", tc, r.code, r.stderr)
		}
	}
}
