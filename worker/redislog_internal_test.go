package worker

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/logbuf"
)

// TestRedisWatchRemindsAtABoundedInterval: an outage is logged once when it
// starts, reminded every 30 s with its duration while it lasts, and its end
// is logged once.
func TestRedisWatchRemindsAtABoundedInterval(t *testing.T) {
	t.Parallel()
	var logs logbuf.Buffer
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	w := newRedisWatch(nil, slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time { return now }, time.Second)
	down := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	count := func(s string) int { return strings.Count(logs.String(), s) }

	w.observe(nil)
	for range 29 {
		w.observe(down)
		now = now.Add(time.Second)
	}
	if n := count("Redis is not answering"); n != 1 {
		t.Fatalf("first 29 s of an outage logged %d times; want once:\n%s", n, logs.String())
	}
	for range 2 {
		w.observe(down)
		now = now.Add(time.Second)
	}
	if n := count("Redis is not answering"); n != 2 || !strings.Contains(logs.String(), "down_for=30s") {
		t.Fatalf("after 31 s: %d lines, want a reminder with down_for=30s:\n%s", n, logs.String())
	}
	w.observe(nil)
	w.observe(nil)
	if n := count("Redis answers again"); n != 1 || !strings.Contains(logs.String(), "down_for=31s") {
		t.Errorf("recovery logged %d times; want once with down_for=31s:\n%s", n, logs.String())
	}
}
