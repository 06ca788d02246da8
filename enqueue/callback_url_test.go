package enqueue_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
)

// TestEnqueueRefusesBadCallbackURL: the library checks the callback URL as
// the command line does, before anything reaches Redis.
func TestEnqueueRefusesBadCallbackURL(t *testing.T) {
	t.Parallel()
	c := enqueue.NewClient(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}))
	t.Cleanup(func() { c.Close() })
	for _, u := range []string{"http://alice:hunter2@example.com/", "http://example.com:0/", "http://:80/", "ftp://example.com/"} {
		_, err := c.Enqueue(context.Background(), "7379996104798150001", enqueue.CallbackURL(u))
		if err == nil || !strings.Contains(err.Error(), "callback URL") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v, want an error about the callback URL without its password", u, err)
		}
	}
}
