package report_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// Stream a batch's proof of erasure: a summary, then one row per id with
// the log id of its final attempt, which Coze support can trace. The
// batch is read a page at a time, so a million rows take little memory.
// Here one id is queued and its outcome written by hand; in production the
// workers write it. (The example uses an embedded Redis so that it runs
// anywhere.)
func ExampleWriteProof() {
	mini, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	created := time.Date(2026, 11, 27, 18, 26, 53, 0, time.UTC)

	client := enqueue.NewClient(rdb, enqueue.WithClock(func() time.Time { return created }))
	defer client.Close()
	const id = "7379996104798151552"
	if _, err := client.Enqueue(ctx, id, enqueue.Batch("gdpr-118"), enqueue.Note("ticket GDPR-118")); err != nil {
		panic(err)
	}
	led := ledger.New(rdb)
	if _, err := led.Record(ctx, ledger.Attempt{
		ConversationID: id, Batch: "gdpr-118", Queue: enqueue.DefaultQueue,
		Outcome: ledger.Deleted, HasCode: true, LogID: "202611271826543710000000000000F9",
		At: created.Add(time.Second),
	}); err != nil {
		panic(err)
	}

	now := created.Add(time.Hour) // the report's generated_at
	if err := report.WriteProof(ctx, led, "gdpr-118", "csv", os.Stdout, now); err != nil {
		panic(err)
	}

	// A batch Redis does not hold (expired, never existed, or lost) has no
	// proof: the error wraps report.ErrNoBatch and says what may have
	// become of it.
	err = report.WriteProof(ctx, led, "gdpr-119", "csv", os.Stdout, now)
	fmt.Println(errors.Is(err, report.ErrNoBatch))
	// Output:
	// # batch: gdpr-118
	// # note: "ticket GDPR-118"
	// # profile: default
	// # state: complete
	// # created_at: 2026-11-27T18:26:53Z
	// # due_at: 2026-12-27T18:26:53Z
	// # completed_at: 2026-11-27T18:26:54Z
	// # total: 1
	// # deleted: 1
	// # not_found: 0
	// # failed: 0
	// # pending: 0
	// # invalid: 0
	// # generated_at: 2026-11-27T19:26:53Z
	// conversation_id,outcome,code,logid,attempts,finished_at
	// 7379996104798151552,deleted,0,202611271826543710000000000000F9,1,2026-11-27T18:26:54Z
	// true
}
