package redistest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestSentinelFailover: a key written through the sentinels survives the
// primary's crash, and the replica takes over.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	s := redistest.StartSentinel(t)
	t.Logf("topology up in %v", time.Since(begin))
	if want := "redis-sentinel://" + strings.Join(s.SentinelAddrs(), ",") + "/0?master=" + s.MasterName(); s.URL() != want {
		t.Errorf("URL %s, want %s", s.URL(), want)
	}
	ctx := context.Background()
	c := s.FailoverClient()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The replica must hold the key before the primary dies: the write is
	// acknowledged by the primary alone.
	if n, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT: %d replicas, %v", n, err)
	}
	old := s.Primary()
	s.KillPrimary()
	primary, took := s.WaitFailover(t, 30*time.Second)
	t.Logf("failover from %s to %s took %v", old, primary, took)
	if primary == old {
		t.Fatalf("primary still %s", old)
	}

	// The client reconnects on its own; the first commands after the switch
	// may still fail on the dead primary's connections.
	var got string
	var err error
	for range 20 {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		got, err = c.Get(rctx, "k").Result()
		cancel()
		if err == nil {
			break
		}
		t.Logf("read after failover: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || got != "v" {
		t.Fatalf("read after failover: %q, %v", got, err)
	}
}

// TestSentinelPassword: with a password the replica, the sentinels and the
// failover client all authenticate to the data nodes.
func TestSentinelPassword(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, redistest.WithPassword("s3cret"))
	if err := s.FailoverClient().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping through the sentinels: %v", err)
	}
	if want := "redis-sentinel://:s3cret@"; !strings.HasPrefix(s.URL(), want) {
		t.Errorf("URL %s", s.URL())
	}
}
