package worker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
)

// TestHeldBackSaysWhy: while calls are held back, the worker says why in
// words a progress line shows: the API's rate limit, a rejected token,
// Redis not answering; and nothing once they flow again.
func TestHeldBackSaysWhy(t *testing.T) {
	t.Parallel()
	b := setup(t, cozetest.WithRateLimit(5, 1), cozetest.WithLatency(2*time.Millisecond))
	if _, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(ids(200, 7940000000000000001)), enqueue.Batch("held")); err != nil {
		t.Fatal(err)
	}
	w := b.startWorker(t, b.fastConfig(t, nil))
	says := func(what string, want string) {
		t.Helper()
		waitFor(t, 10*time.Second, what, func() bool { return strings.HasPrefix(w.HeldBack(), want) })
	}
	says("the rate limit to show", "waiting: API rate limit")
	b.fake.SetAuthDown(true)
	says("the auth pause to show", "paused: token rejected")
	b.redis.Stop()
	says("the Redis outage to show", "waiting: Redis is not answering")
	b.redis.Continue()
	b.fake.SetAuthDown(false)
	b.fake.SetRateLimit(0, 0)
	waitFor(t, 20*time.Second, "nothing held back", func() bool { return w.HeldBack() == "" })
}
