package subject_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/subject"
)

// Erase a data subject: list their conversations on a bot, hold them in a
// verified batch, and release the deletions to the workers. In production
// the lister is a coze.Client acting as the subject's session
// (client.WithTokens(app.Session("user-4711"))); here the fake API holds
// three conversations anyone may list, and Redis is embedded.
func ExampleEraser_Erase() {
	fake := cozetest.NewServer()
	defer fake.Close()
	const bot = "7379996104798000001"
	for _, id := range []string{"7379996104798150001", "7379996104798150002", "7379996104798150003"} {
		fake.AddConversations(cozetest.Conversation{ID: id, BotID: bot})
	}
	mini, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()

	session, err := coze.NewClient(fake.URL, coze.StaticToken("pat_example"), coze.WithTimeout(time.Second))
	if err != nil {
		panic(err)
	}
	eraser := &subject.Eraser{
		Enqueue: enqueue.NewClient(rdb),
		Ledger:  ledger.New(rdb),
		Walker:  &discovery.Walker{Lister: session},
	}
	ctx := context.Background()
	res, err := eraser.Erase(ctx, subject.Request{Profile: "app-cn", Session: "user-4711", BotIDs: []string{bot}, Batch: "dsr-4711"},
		enqueue.Queue("gdpr"), enqueue.Note("DSR-4711"))
	if err != nil {
		panic(err) // subject.ErrIncomplete: what was found is queued; running it again is safe
	}
	fmt.Println(res)
	b, _, err := eraser.Ledger.Batch(ctx, "dsr-4711")
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Total, "pending, verification", b.Verification.State)
	// Output:
	// found=3 enqueued=3 duplicate=0 batch=dsr-4711
	// 3 pending, verification pending
}
