//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTokenFileFIFOFailsFast is issue 11, point 8: a FIFO as the token
// file hung the worker before its first log line, deaf to SIGTERM.
func TestTokenFileFIFOFailsFast(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	t.Cleanup(func() { // unblock a reader stuck in open, should the test fail
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = w.Close() // opened only to wake the reader
		}
	})
	env := map[string]string{"COZE_API_TOKEN_FILE": path, "REDIS_URL": deadRedisURL(t), "COZE_ERASER_REDIS_WAIT": "0"}
	done := make(chan result, 1)
	go func() { done <- cli{env: env}.run(context.Background(), "worker", "--metrics-addr", "") }()
	select {
	case res := <-done:
		if res.code != exitSetup || !strings.Contains(res.stderr, "COZE_API_TOKEN_FILE: token file "+path+": not a regular file but a named pipe") {
			t.Errorf("exit %d, stderr %q; want exit 2 saying the token file is a named pipe", res.code, res.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker still starting after 10s with a FIFO as token file")
	}
}
