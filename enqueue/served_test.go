package enqueue_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestServedQueuesAreTheLiveServersQueues: the queues of a running asynq
// server are served; once it stops, they are not.
func TestServedQueuesAreTheLiveServersQueues(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	served, err := enqueue.ServedQueues(context.Background(), rdb)
	if err != nil || len(served) != 0 {
		t.Fatalf("no server: served %v, %v", served, err)
	}
	server := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{"gdpr": 1, "bulk": 2},
		LogLevel: asynq.FatalLevel})
	if err := server.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		served, err = enqueue.ServedQueues(context.Background(), rdb)
		if err != nil {
			t.Fatal(err)
		}
		if len(served) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := enqueue.UnservedQueues([]string{"gdpr", "default", "bulk"}, served); !slices.Equal(got, []string{"default"}) {
		t.Errorf("unserved %v of served %v: want [default]", got, served)
	}
	server.Shutdown()
	if served, err = enqueue.ServedQueues(context.Background(), rdb); err != nil || len(served) != 0 {
		t.Errorf("after shutdown: served %v, %v", served, err)
	}
}
