// Package maintenance keeps a ledger and its queues whole: the upkeep a
// worker fleet runs beside its work, one worker at a time, as River keeps
// its maintenance services together.
//
// A crash or a race can leave behind a completion whose callback was never
// queued (the callback outbox), a link whose task finished just before the
// link was made (an orphan), or ids added to a batch whose tasks were
// never queued (a stalled batch). The [Janitor] finds and repairs each,
// under a fleet-wide [Store.Lock]. The [Store] holds the queries it runs
// on the ledger's keys.
package maintenance

import (
	"context"
	_ "embed"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// Store runs the upkeep's reads and repairs on a ledger's keys.
type Store struct {
	rdb redis.UniversalClient
	ks  keyspace.Keyspace
}

// NewStore returns the store of the ledger whose keys are under prefix in
// rdb (ledger.Ledger.Prefix).
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, ks: keyspace.New(prefix)}
}

// pendingLua is the ledger's test of a pending entry
// ([ledger.PendingValues]), for the scripts here.
var pendingLua = func() string {
	var tests []string
	for _, v := range ledger.PendingValues() {
		tests = append(tests, "v == '"+v+"'")
	}
	return "local function isPending(v) return " + strings.Join(tests, " or ") + " end\n"
}()

// script is a maintenance script: the key layouts, the ledger's test of a
// pending entry, then body. ARGV[1] is the key prefix.
func script(body string) *redis.Script {
	return redis.NewScript(keyspace.Lua + asynqwire.Lua + pendingLua + body)
}

func (s *Store) run(ctx context.Context, sc *redis.Script, args ...any) *redis.Cmd {
	return sc.Run(ctx, s.rdb, nil, append([]any{s.ks.Prefix()}, args...)...)
}
