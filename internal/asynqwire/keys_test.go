package asynqwire_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
)

// TestLuaAgreesWithGo: the Lua prelude's asynqTaskKey and asynqQueuesKey
// name the keys TaskKey and QueuesKey name, which asynq's own client
// writes (checked against a real asynq task), and liveTaskQueue finds a
// live task in its queue or any other, and only a live one.
func TestLuaAgreesWithGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	client := b.asynq
	if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.TaskID("del:7"), asynq.Queue("gdpr")); err != nil {
		t.Fatal(err)
	}
	if state := b.rdb.HGet(ctx, asynqwire.TaskKey("gdpr", "del:7"), "state").Val(); state != "pending" {
		t.Fatalf("state at %s = %q: asynq's key layout changed", asynqwire.TaskKey("gdpr", "del:7"), state)
	}
	if !b.rdb.SIsMember(ctx, asynqwire.QueuesKey, "gdpr").Val() {
		t.Fatalf("%s does not list the queue asynq wrote to", asynqwire.QueuesKey)
	}

	keys := redis.NewScript(asynqwire.Lua + `return {asynqTaskKey(ARGV[1], ARGV[2]), asynqQueuesKey}`)
	for _, q := range []string{"gdpr", "default", "a b", "{q}"} {
		for _, id := range []string{"del:7", "x", ""} {
			got, err := keys.Run(ctx, b.rdb, nil, q, id).StringSlice()
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != asynqwire.TaskKey(q, id) || got[1] != asynqwire.QueuesKey {
				t.Errorf("Lua names %q, Go %q and %q", got, asynqwire.TaskKey(q, id), asynqwire.QueuesKey)
			}
		}
	}

	live := redis.NewScript(asynqwire.Lua + `
local q, state = liveTaskQueue(ARGV[1], ARGV[2])
return {q or '', state or ''}`)
	for _, tt := range []struct{ id, first, wantQ, wantState string }{
		{"del:7", "gdpr", "gdpr", "pending"},
		{"del:7", "other", "gdpr", "pending"}, // found in another queue
		{"del:8", "gdpr", "", ""},             // no task
	} {
		got, err := live.Run(ctx, b.rdb, nil, tt.id, tt.first).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != tt.wantQ || got[1] != tt.wantState {
			t.Errorf("liveTaskQueue(%q, %q) = %q, want %q %q", tt.id, tt.first, got, tt.wantQ, tt.wantState)
		}
	}
	for _, state := range append(asynqwire.LiveStates, "completed", "archived") {
		b.rdb.HSet(ctx, asynqwire.TaskKey("gdpr", "del:7"), "state", state)
		got, err := live.Run(ctx, b.rdb, nil, "del:7", "other").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		isLive := state != "completed" && state != "archived"
		if (got[0] == "gdpr") != isLive {
			t.Errorf("a task in state %s: liveTaskQueue says %q", state, got)
		}
	}
}
