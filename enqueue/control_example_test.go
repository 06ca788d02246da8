package enqueue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// Steer a running batch: pause it (workers hold its tasks without calling
// the API), resume it, extend its due time by a month with the reason,
// then cancel it: its pending ids end cancelled and the tasks the workers
// had made for them are removed (none here: no worker fed the batch). Each action is kept in the batch's history. (The example uses
// an embedded Redis so that it runs anywhere; give NewClient your own.)
func ExampleClient_Cancel() {
	mini, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()

	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	client := enqueue.NewClient(rdb, enqueue.WithClock(func() time.Time { return now }))
	defer client.Close()
	ctx := context.Background()
	due := now.Add(30 * 24 * time.Hour)
	ids := []string{"7379996104798150001", "7379996104798150002"}
	if _, err := client.EnqueueAll(ctx, slices.Values(ids), enqueue.Batch("gdpr-118"), enqueue.Due(due)); err != nil {
		panic(err)
	}
	if err := client.Pause(ctx, "gdpr-118", "legal hold"); err != nil {
		panic(err)
	}
	if err := client.Resume(ctx, "gdpr-118", "hold lifted"); err != nil {
		panic(err)
	}
	if _, err := client.Extend(ctx, "gdpr-118", due.Add(90*24*time.Hour), "complex request"); errors.Is(err, ledger.ErrBadExtension) {
		fmt.Println("refused: more than two months")
	}
	if _, err := client.Extend(ctx, "gdpr-118", due.Add(30*24*time.Hour), "complex request"); err != nil {
		panic(err)
	}
	r, err := client.Cancel(ctx, "gdpr-118", "requester withdrew")
	if err != nil {
		panic(err)
	}
	fmt.Printf("cancelled=%d tasks removed=%d complete=%v\n", r.Cancelled, r.TasksRemoved, r.Completed)
	history, err := ledger.New(rdb).History(ctx, "gdpr-118")
	if err != nil {
		panic(err)
	}
	for _, a := range history {
		fmt.Println(a.Action, a.Note)
	}
	// Output:
	// refused: more than two months
	// cancelled=2 tasks removed=0 complete=true
	// pause legal hold
	// resume hold lifted
	// extend complex request
	// cancel requester withdrew
}
