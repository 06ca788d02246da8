package worker_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/worker"
)

// TestClusterClientRefused: a worker on a Redis Cluster client would
// delete conversations and fail to record them; it is refused.
func TestClusterClientRefused(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer func() { _ = rdb.Close() }()
	_, err := worker.New(worker.Config{Redis: rdb})
	if err == nil || !strings.Contains(err.Error(), "Redis Cluster is not supported") {
		t.Errorf("worker.New on a cluster client: %v", err)
	}
}
