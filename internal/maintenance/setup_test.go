package maintenance_test

import (
	"cmp"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/maintenance"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

type bundle struct {
	ctx    context.Context
	srv    *redistest.Server
	rdb    *redis.Client
	ledger *ledger.Ledger
	store  *maintenance.Store
	now    time.Time
}

func setup(t *testing.T) bundle {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	return bundle{ctx: context.Background(), srv: srv, rdb: rdb, ledger: ledger.New(rdb),
		store: maintenance.NewStore(rdb, ledger.DefaultPrefix), now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

// open creates a batch holding ids, and seals it.
func (b bundle) open(t *testing.T, spec ledger.BatchSpec, ids ...string) {
	t.Helper()
	spec.Created = b.now
	spec.Now = func() time.Time { return b.now }
	a, err := b.ledger.OpenBatch(b.ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) > 0 {
		if _, err := a.Add(b.ctx, ids); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Seal(b.ctx); err != nil {
		t.Fatal(err)
	}
}

// openFedLost opens a batch of ids as open does, then leaves them as a feed
// that made their tasks and a Redis that lost those tasks would: entries
// 'q', no unfed list, no task.
func (b bundle) openFedLost(t *testing.T, spec ledger.BatchSpec, ids ...string) {
	t.Helper()
	b.open(t, spec, ids...)
	bt, ok, err := b.ledger.Batch(b.ctx, spec.Name)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	queue := cmp.Or(spec.Queue, "default")
	ks := keyspace.New(ledger.DefaultPrefix)
	for _, id := range ids {
		b.rdb.HSet(b.ctx, b.ledger.EntryKey(bt, id), id, "q")
	}
	b.rdb.Del(b.ctx, ks.BatchUnfed(spec.Name, queue))
	b.rdb.ZRem(b.ctx, ks.Feed(queue), spec.Name)
}

// record records one attempt's outcome.
func (b bundle) record(t *testing.T, batch, id string, o ledger.Outcome, logID string) ledger.Recorded {
	t.Helper()
	r, err := b.ledger.Record(b.ctx, ledger.Attempt{ConversationID: id, Batch: batch, Queue: "default", Outcome: o,
		HasCode: true, HTTPStatus: 200, LogID: logID, At: b.now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	asynqTaskKey = asynqwire.TaskKey
	asynqQueues  = asynqwire.QueuesKey
)
