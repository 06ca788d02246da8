package enqueue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// Queue the deletion of one conversation into a named batch on a named
// queue. Enqueueing it again is not an error: the id is a duplicate, and
// the API is called once. An id that is not a conversation id is a
// *tasks.InvalidIDError, and nothing is queued.
func ExampleClient_Enqueue() {
	mini, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()

	client := enqueue.NewClient(rdb)
	defer client.Close()
	ctx := context.Background()
	for _, id := range []string{"7379996104798150001", "7379996104798150001", "73799961047981500x1"} {
		status, err := client.Enqueue(ctx, id,
			enqueue.Batch("gdpr-118"),
			enqueue.Queue("gdpr"),
			enqueue.Note("ticket GDPR-118"))
		var invalid *tasks.InvalidIDError
		switch {
		case errors.As(err, &invalid):
			fmt.Println("refused:", err)
		case err != nil:
			panic(err) // Redis failed: enqueueing the same id again is safe
		default:
			fmt.Println(id, status)
		}
	}
	// Output:
	// 7379996104798150001 enqueued
	// 7379996104798150001 duplicate
	// refused: invalid conversation id "73799961047981500x1": has 'x' at byte 18; only ASCII digits 0-9 are allowed
}

// Queue ids from a stream; invalid lines are reported with their line
// number and the rest are still queued. (The example uses an embedded Redis
// so that it runs anywhere; give NewClient your own.)
func ExampleClient_EnqueueFrom() {
	mini, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()

	client := enqueue.NewClient(rdb)
	defer client.Close()
	input := strings.NewReader("7379996104798150001\n\nnot-an-id\n7379996104798150002\n7379996104798150001\n")
	sum, err := client.EnqueueFrom(context.Background(), input,
		enqueue.Batch("gdpr-118"),
		enqueue.ExpectedIDs(5), // sizes the batch's ledger; leave it out when the size is unknown
		enqueue.OnInvalid(func(inv enqueue.Invalid) { fmt.Printf("line %d: %v\n", inv.Line, inv.Err) }))
	if err != nil {
		panic(err)
	}
	fmt.Println(sum)
	// Output:
	// line 3: invalid conversation id "not-an-id": has 'n' at byte 1; only ASCII digits 0-9 are allowed
	// enqueued=2 duplicate=1 invalid=1 batch=gdpr-118 finished=0
}
