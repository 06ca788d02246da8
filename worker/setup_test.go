package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/worker"
)

// bundle is what a worker test needs: a real redis-server of its own, a
// fake API, and the clients around them.
type bundle struct {
	ctx       context.Context
	redis     *redistest.Server
	rdb       *redis.Client
	fake      *cozetest.Server
	enqueue   *enqueue.Client
	ledger    *ledger.Ledger
	inspector *asynq.Inspector
	logs      *logbuf.Buffer
	token     string
}

func setup(t testing.TB, fakeOpts ...cozetest.Option) *bundle {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	fake := cozetest.NewServer(fakeOpts...)
	t.Cleanup(fake.Close)
	enq := enqueue.NewClient(rdb)
	t.Cleanup(func() { enq.Close() })
	return &bundle{
		ctx:       context.Background(),
		redis:     srv,
		rdb:       rdb,
		fake:      fake,
		enqueue:   enq,
		ledger:    ledger.New(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		logs:      &logbuf.Buffer{},
		token:     "pat_TEST_" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_DO_NOT_LEAK",
	}
}

// fastConfig is a worker configuration with every interval cut down so that
// a test of retries and pauses takes seconds.
func (b *bundle) fastConfig(t *testing.T, tokens coze.TokenSource) worker.Config {
	t.Helper()
	if tokens == nil {
		tokens = coze.StaticToken(b.token)
	}
	// The timeout is well above what a loaded -race run needs: an answer
	// the client gives up on is lost without the fake knowing, and the
	// tests hold outcomes against the fake's record of lost answers.
	api, err := coze.NewClient(b.fake.URL, tokens, coze.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return worker.Config{
		Redis:            b.rdb,
		API:              api,
		Concurrency:      20,
		RetryBackoff:     worker.Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond},
		RateLimitBackoff: worker.Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond},
		AuthProbe:        worker.Backoff{Base: 20 * time.Millisecond, Cap: 100 * time.Millisecond},
		CallbackBackoff:  worker.Backoff{Base: 20 * time.Millisecond, Cap: 100 * time.Millisecond},
		ShutdownTimeout:  2 * time.Second,
		PollInterval:     20 * time.Millisecond,
		ForwardInterval:  50 * time.Millisecond,
		Logger:           slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func (b *bundle) startWorker(t *testing.T, cfg worker.Config) *worker.Server {
	t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// waitDrained waits until no id waits to be fed and no task is pending,
// active, scheduled or retrying in any queue.
func (b *bundle) waitDrained(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := b.unfinished(t)
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still unfinished after %v", left, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unfinished counts the ids waiting to be fed and the tasks not done. The
// ids waiting are read first: a feed between the two reads moves ids from
// the ledger into tasks, which the second read then sees (read the other
// way round, they would be counted in neither).
func (b *bundle) unfinished(t *testing.T) int {
	t.Helper()
	unfed, err := b.ledger.Unfed(b.ctx) // ids waiting for their task
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range unfed {
		n += u
	}
	queues, err := b.inspector.Queues()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		info, err := b.inspector.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		n += info.Pending + info.Active + info.Scheduled + info.Retry
	}
	return n
}

func (b *bundle) archived(t *testing.T) int {
	t.Helper()
	info, err := b.inspector.GetQueueInfo(enqueue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	return info.Archived
}

// finals returns the batch's terminal outcomes by id.
func (b *bundle) finals(t *testing.T, batch string) map[string]ledger.Entry {
	t.Helper()
	out := map[string]ledger.Entry{}
	err := b.ledger.Entries(b.ctx, batch, func(e ledger.Entry) error {
		if _, dup := out[e.ConversationID]; dup {
			t.Errorf("id %s listed twice", e.ConversationID)
		}
		if e.Outcome.Terminal() {
			out[e.ConversationID] = e
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func readyz(w *worker.Server) int {
	rec := httptest.NewRecorder()
	w.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code
}

func counter(w *worker.Server, outcome string) int {
	return int(testutil.ToFloat64(w.Metrics().Deletions.WithLabelValues(outcome)))
}

func ids(n int, base int64) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.FormatInt(base+int64(i)*7919, 10)
	}
	return out
}
