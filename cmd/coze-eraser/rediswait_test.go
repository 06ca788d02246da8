package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRedisWaitIsABound: --redis-wait gives up after about the wait, also
// when Redis accepts connections and never answers (a hung server), and
// keeps trying for the wait when nothing listens.
func TestRedisWaitIsABound(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		addr string
		wait time.Duration
	}{
		"hung":    {hungListener(t), time.Second},
		"refused": {deadAddr(t), 2 * time.Second}, // go-redis spends about 1.7 s on a refused dial's retries
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := redisFlags{url: "redis://" + c.addr + "/0", wait: c.wait}
			start := time.Now()
			rdb, err := f.connect(context.Background())
			took := time.Since(start)
			t.Logf("--redis-wait %v against a %s Redis gave up after %v", c.wait, name, took)
			if err == nil {
				_ = rdb.Close()
				t.Fatal("connect succeeded")
			}
			if !strings.Contains(err.Error(), "cannot reach Redis at redis://"+c.addr) {
				t.Errorf("error %q does not name the URL", err)
			}
			if name == "refused" && !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error %q does not say the connection was refused", err)
			}
			if took < c.wait*9/10 || took > c.wait+800*time.Millisecond {
				t.Errorf("--redis-wait %v gave up after %v; want about %v", c.wait, took, c.wait)
			}
		})
	}
}

// hungListener accepts connections and never answers, as a stopped Redis.
func hungListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
