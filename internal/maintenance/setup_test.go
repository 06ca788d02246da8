package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
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
