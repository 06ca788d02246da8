package enqueue_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/tasks"
)

type bundle struct {
	ctx       context.Context
	client    *enqueue.Client
	inspector *asynq.Inspector
	redis     *redistest.Server
}

func setup(t *testing.T) bundle {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	c := enqueue.NewClient(rdb)
	t.Cleanup(func() { c.Close() })
	return bundle{ctx: context.Background(), client: c, inspector: asynq.NewInspectorFromRedisClient(rdb), redis: srv}
}

// task feeds queue, as a worker would, and returns id's task.
func (b bundle) task(t *testing.T, queue, id string) *asynq.TaskInfo {
	t.Helper()
	b.feed(t, queue)
	info, err := b.inspector.GetTaskInfo(queue, tasks.TaskID(id))
	if err != nil {
		t.Fatalf("task for %s in %s: %v", id, queue, err)
	}
	return info
}

// feed makes the tasks of every ready id of queue's batches.
func (b bundle) feed(t *testing.T, queue string) enqueue.Fed {
	t.Helper()
	fed, err := b.client.Feed(b.ctx, queue, 1<<30)
	if err != nil {
		t.Fatalf("feed %s: %v", queue, err)
	}
	return fed
}

func TestEnqueueOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	status, err := b.client.Enqueue(b.ctx, "7379996104798150001", enqueue.Batch("gdpr-1"), enqueue.Queue("gdpr"), enqueue.MaxRetry(3))
	if err != nil || status != enqueue.Enqueued {
		t.Fatalf("Enqueue = %s, %v", status, err)
	}
	info := b.task(t, "gdpr", "7379996104798150001")
	if info.State != asynq.TaskStatePending || info.Type != tasks.TypeDelete {
		t.Errorf("task state %s type %s", info.State, info.Type)
	}
	if tasks.RetryBudget(info.MaxRetry) != 3 {
		t.Errorf("MaxRetry %d does not carry a budget of 3", info.MaxRetry)
	}
	p, err := tasks.ParsePayload(info.Payload)
	if err != nil || p.Batch != "gdpr-1" || p.ConversationID != "7379996104798150001" {
		t.Errorf("payload %+v, %v", p, err)
	}

	status, err = b.client.Enqueue(b.ctx, "7379996104798150001", enqueue.Batch("gdpr-1"), enqueue.Queue("gdpr"))
	if err != nil || status != enqueue.Duplicate {
		t.Errorf("second Enqueue into the batch = %s, %v; want duplicate", status, err)
	}
	// Into another batch, the id is new; its feed finds the task of
	// gdpr-1 and links to it rather than calling the API twice.
	status, err = b.client.Enqueue(b.ctx, "7379996104798150001", enqueue.Queue("gdpr"))
	if err != nil || status != enqueue.Enqueued {
		t.Errorf("Enqueue into another batch = %s, %v; want enqueued", status, err)
	}
	if fed := b.feed(t, "gdpr"); fed.Tasks != 0 || fed.Linked != 1 {
		t.Errorf("feed of the second batch's id: %+v, want one link and no task", fed)
	}
	var invalid *tasks.InvalidIDError
	if _, err := b.client.Enqueue(b.ctx, "12x"); !errors.As(err, &invalid) {
		t.Errorf("invalid id: err = %v", err)
	}
}

// TestEnqueueScheduled: the ids of a scheduled batch become tasks at their
// time, not before.
func TestEnqueueScheduled(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	b := bundle{ctx: context.Background(), client: enqueue.NewClient(srv.Client(), enqueue.WithClock(clock)),
		inspector: asynq.NewInspectorFromRedisClient(srv.Client()), redis: srv}
	if _, err := b.client.Enqueue(b.ctx, "1", enqueue.Batch("in-1h"), enqueue.In(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Enqueue(b.ctx, "2", enqueue.Batch("at-48h"), enqueue.At(clock().Add(48*time.Hour))); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		fed     int
	}{{0, 0}, {59 * time.Minute, 0}, {time.Minute, 1}, {46 * time.Hour, 0}, {time.Hour, 1}} {
		advance(step.advance)
		if fed := b.feed(t, enqueue.DefaultQueue); fed.Tasks != step.fed {
			t.Fatalf("%v on: fed %d tasks, want %d", clock().Sub(now), fed.Tasks, step.fed)
		}
	}
	for _, id := range []string{"1", "2"} {
		if info := b.task(t, enqueue.DefaultQueue, id); info.State != asynq.TaskStatePending {
			t.Errorf("id %s: state %s, want pending", id, info.State)
		}
	}
	if _, err := b.client.Enqueue(b.ctx, "3", enqueue.At(clock()), enqueue.In(time.Hour)); err == nil {
		t.Error("At and In together accepted")
	}
}

func TestEnqueueFrom(t *testing.T) {
	t.Parallel()
	b := setup(t)
	input := "\xEF\xBB\xBF7379996104798150001\r\n" + // BOM and CRLF
		"\n" +
		"   7379996104798150002  \r\n" +
		"abc\n" +
		"7379996104798150001\n" + // duplicate
		"\t\n" +
		strings.Repeat("9", 5000) + "\n" + // too long
		"0042\n" +
		"7379996104798150003" // no final newline
	var invalid []int
	var messages []string
	sum, err := b.client.EnqueueFrom(b.ctx, strings.NewReader(input), enqueue.Batch("file-1"),
		enqueue.OnInvalid(func(inv enqueue.Invalid) {
			invalid = append(invalid, inv.Line)
			messages = append(messages, inv.Err.Error())
		}))
	if err != nil {
		t.Fatal(err)
	}
	want := enqueue.Summary{Batch: "file-1", Enqueued: 3, Duplicate: 1, Invalid: 3}
	if sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
	if !slices.Equal(invalid, []int{4, 7, 8}) {
		t.Errorf("invalid lines = %v, want [4 7 8]", invalid)
	}
	if want := `invalid conversation id "` + strings.Repeat("9", 64) + `": the line is longer than 4096 bytes`; len(messages) < 2 || messages[1] != want {
		t.Errorf("long line message = %q, want %q", messages, want)
	}
	if sum.String() != "enqueued=3 duplicate=1 invalid=3 batch=file-1 finished=0" {
		t.Errorf("String() = %q", sum.String())
	}
	for _, id := range []string{"7379996104798150001", "7379996104798150002", "7379996104798150003"} {
		b.task(t, enqueue.DefaultQueue, id)
	}
}

func TestEnqueueAllPositions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var got []enqueue.Invalid
	sum, err := b.client.EnqueueAll(b.ctx, slices.Values([]string{"1", "-5", "2"}),
		enqueue.OnInvalid(func(inv enqueue.Invalid) { got = append(got, inv) }))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Enqueued != 2 || sum.Invalid != 1 || sum.Batch != b.client.DefaultBatch() {
		t.Errorf("summary %+v", sum)
	}
	if len(got) != 1 || got[0].Line != 2 || !strings.Contains(got[0].Err.Error(), `invalid conversation id "-5"`) {
		t.Errorf("invalid = %+v", got)
	}
}

// TestEnqueueFromIsStreaming feeds more lines than fit in any buffer, from a
// reader that never holds more than one line.
func TestEnqueueFromIsStreaming(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sum, err := b.client.EnqueueFrom(b.ctx, &generatedIDs{n: 20_000})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Enqueued != 20_000 {
		t.Errorf("enqueued %d, want 20000", sum.Enqueued)
	}
	// The ids wait in the ledger; a feed makes only the window's tasks.
	fed, err := b.client.Feed(b.ctx, enqueue.DefaultQueue, 100)
	if err != nil || fed.Tasks != 100 || fed.Waiting != 100 {
		t.Fatalf("feed of a window of 100: %+v, %v", fed, err)
	}
	if fed, err = b.client.Feed(b.ctx, enqueue.DefaultQueue, 100); err != nil || fed.Tasks != 0 {
		t.Errorf("feed of a full window: %+v, %v", fed, err)
	}
	if fed := b.feed(t, enqueue.DefaultQueue); fed.Tasks != 20_000-100 {
		t.Errorf("fed %d tasks after the window, want %d", fed.Tasks, 20_000-100)
	}
	info, err := b.inspector.GetQueueInfo(enqueue.DefaultQueue)
	if err != nil || info.Pending != 20_000 {
		t.Errorf("pending = %v, %v", info, err)
	}
}

func TestEnqueueStopsOnRedisError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.redis.Kill()
	sum, err := b.client.EnqueueFrom(b.ctx, strings.NewReader("1\n2\n3\n"))
	if err == nil {
		t.Fatal("want an error when Redis is gone")
	}
	if sum.Enqueued != 0 {
		t.Errorf("summary %+v", sum)
	}
}

func TestEnqueueRejectsBadOptions(t *testing.T) {
	t.Parallel()
	c := enqueue.NewClient(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}))
	if _, err := c.Enqueue(context.Background(), "1", enqueue.Batch("has space")); !errors.Is(err, tasks.ErrInvalidBatch) {
		t.Errorf("bad batch: %v", err)
	}
	if _, err := c.Enqueue(context.Background(), "1", enqueue.MaxRetry(-1)); err == nil {
		t.Error("negative max retry accepted")
	}
}

// generatedIDs yields "1\n2\n..." without ever holding the whole text.
type generatedIDs struct {
	n, next int
	pending []byte
}

func (g *generatedIDs) Read(p []byte) (int, error) {
	for len(g.pending) == 0 {
		if g.next >= g.n {
			return 0, io.EOF
		}
		g.next++
		g.pending = []byte(strconv.Itoa(g.next) + "\n")
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}
