package enqueue_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
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

func (b bundle) task(t *testing.T, queue, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := b.inspector.GetTaskInfo(queue, tasks.TaskID(id))
	if err != nil {
		t.Fatalf("task for %s in %s: %v", id, queue, err)
	}
	return info
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

	status, err = b.client.Enqueue(b.ctx, "7379996104798150001", enqueue.Queue("gdpr"))
	if err != nil || status != enqueue.Duplicate {
		t.Errorf("second Enqueue = %s, %v; want duplicate", status, err)
	}
	var invalid *tasks.InvalidIDError
	if _, err := b.client.Enqueue(b.ctx, "12x"); !errors.As(err, &invalid) {
		t.Errorf("invalid id: err = %v", err)
	}
}

func TestEnqueueScheduled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.Enqueue(b.ctx, "1", enqueue.In(time.Hour)); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	if _, err := b.client.Enqueue(b.ctx, "2", enqueue.At(at)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		if info := b.task(t, enqueue.DefaultQueue, id); info.State != asynq.TaskStateScheduled {
			t.Errorf("id %s: state %s, want scheduled", id, info.State)
		}
	}
	if got := b.task(t, enqueue.DefaultQueue, "2").NextProcessAt; !got.Equal(at) {
		t.Errorf("next process at %v, want %v", got, at)
	}
	if _, err := b.client.Enqueue(b.ctx, "3", enqueue.At(at), enqueue.In(time.Hour)); err == nil {
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
