package ledger_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// Read where an erasure request stands: its tallies and its state. Here a
// producer queues three ids and a worker's outcome for one is written by
// hand; in production the workers write them. (The example uses an
// embedded Redis so that it runs anywhere; give New your own.)
func ExampleLedger_Batch() {
	mini, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	created := time.Date(2026, 11, 27, 18, 26, 0, 0, time.UTC)

	client := enqueue.NewClient(rdb, enqueue.WithClock(func() time.Time { return created }))
	defer client.Close()
	ids := []string{"7379996104798150001", "7379996104798150002", "7379996104798150003"}
	for _, id := range ids {
		if _, err := client.Enqueue(ctx, id, enqueue.Batch("gdpr-118"), enqueue.DueIn(720*time.Hour)); err != nil {
			panic(err)
		}
	}

	led := ledger.New(rdb)
	if _, err := led.Record(ctx, ledger.Attempt{
		ConversationID: ids[0], Batch: "gdpr-118", Queue: enqueue.DefaultQueue,
		Outcome: ledger.Deleted, HasCode: true, LogID: "20261127182654377000000000000102",
		At: created.Add(time.Second),
	}); err != nil {
		panic(err)
	}

	b, ok, err := led.Batch(ctx, "gdpr-118")
	if err != nil {
		panic(err)
	}
	if !ok {
		fmt.Println("no such batch: it expired, never existed, or Redis lost it")
		return
	}
	now := created.Add(time.Minute)
	fmt.Printf("%s: %s, due %s\n", b.Name, b.State(now), b.DueAt.Format(time.DateOnly))
	fmt.Printf("total=%d deleted=%d not_found=%d failed=%d pending=%d\n",
		b.Total, b.Deleted, b.NotFound, b.Failed, b.Pending())
	// Output:
	// gdpr-118: open, due 2026-12-27
	// total=3 deleted=1 not_found=0 failed=0 pending=2
}
