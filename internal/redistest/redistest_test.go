package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

func TestStartRestartKeepsPort(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
	ctx := context.Background()
	c := srv.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr
	srv.Restart()
	if srv.Addr != addr {
		t.Errorf("address changed from %s to %s", addr, srv.Addr)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("after restart with AOF: %q, %v", got, err)
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithPassword("s3cret"))
	if err := srv.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping with the URL's password: %v", err)
	}
}

func TestTLSAndACLUser(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithTLS(redistest.NewTLSFiles(t)), redistest.WithUser("eraser", "s3cret-pw"))
	if err := srv.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping over TLS as an ACL user: %v", err)
	}
	if want := "rediss://eraser:s3cret-pw@"; len(srv.URL) < len(want) || srv.URL[:len(want)] != want {
		t.Errorf("URL %s", srv.URL)
	}
}

// TestStopContinue: a stopped server answers nothing until it continues.
func TestStopContinue(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := srv.Client()
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Ping(ctx).Err() }()
	select {
	case err := <-done:
		t.Fatalf("a stopped server answered the ping: %v", err)
	case <-time.After(150 * time.Millisecond):
	}
	srv.Continue()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping after Continue: %v", err)
	}
}
