package worker

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Persistence says how a Redis keeps its data across a restart.
type Persistence struct {
	// AOF is true when the append-only file is on.
	AOF bool
	// AOFFsync is its fsync policy: always, everysec or no.
	AOFFsync string
	// RDB is true when snapshots are configured (a non-empty save).
	RDB bool
}

// Durable reports whether the Redis keeps anything across a restart.
func (p Persistence) Durable() bool { return p.AOF || p.RDB }

// Risk says, in a sentence for an operator, what this persistence loses.
func (p Persistence) Risk() string {
	switch {
	case !p.Durable():
		return "Redis has neither AOF nor RDB snapshots: a Redis restart loses every queued deletion and the ledger " +
			"(outcomes, failure records, batches). Turn on appendonly yes with appendfsync everysec."
	case !p.AOF:
		return "Redis keeps only RDB snapshots: a crash loses the writes since the last snapshot, and tasks finished " +
			"since then run again. Turn on appendonly yes with appendfsync everysec."
	case p.AOFFsync == "no":
		return "Redis's AOF is not fsynced (appendfsync no): a host crash can lose recent writes."
	}
	return ""
}

// CheckPersistence reads the Redis's persistence settings (CONFIG GET). A
// managed Redis may refuse CONFIG; the error then says so.
func CheckPersistence(ctx context.Context, rdb redis.UniversalClient) (Persistence, error) {
	cfg, err := rdb.ConfigGet(ctx, "*").Result()
	if err != nil {
		return Persistence{}, fmt.Errorf("cannot read the Redis configuration to check persistence (CONFIG GET: %w)", err)
	}
	return Persistence{
		AOF:      cfg["appendonly"] == "yes",
		AOFFsync: cfg["appendfsync"],
		RDB:      strings.TrimSpace(cfg["save"]) != "",
	}, nil
}
