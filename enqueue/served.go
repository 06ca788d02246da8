package enqueue

import (
	"context"
	"fmt"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ServedQueues returns the queues that live workers serve, from asynq's
// server records: every asynq server (a `coze-eraser worker`, the worker
// inside a `run`) renews its record with a heartbeat every few seconds,
// and a record whose heartbeat stopped is not listed. Ids queued where no
// worker serves wait until one does, which a producer and a status
// reader should say rather than leave to a guess.
func ServedQueues(ctx context.Context, rdb redis.UniversalClient) (map[string]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	servers, err := asynq.NewInspectorFromRedisClient(rdb).Servers()
	if err != nil {
		return nil, fmt.Errorf("enqueue: list the live workers: %w", err)
	}
	served := map[string]bool{}
	for _, s := range servers {
		for q := range s.Queues {
			served[q] = true
		}
	}
	return served, nil
}

// UnservedQueues returns those of queues that served lacks, in their order.
func UnservedQueues(queues []string, served map[string]bool) []string {
	var out []string
	for _, q := range queues {
		if !served[q] && !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}
