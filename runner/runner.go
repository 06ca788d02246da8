// Package runner works one batch of ids to the end inside the calling
// process: it starts a worker (the same handler, retry policy and limiter
// as `coze-eraser worker`), enqueues the ids as a batch, reports progress,
// and returns when every id of the batch has a terminal outcome. It is the
// engine of `coze-eraser run` and `coze-eraser demo`.
//
// With a Redis that keeps its data, an interrupted run is resumed by running
// it again on the same batch: finished ids are not queued, and so not sent
// to the API, again.
package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"iter"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/worker"
)

// Config configures [Run].
type Config struct {
	// Redis holds the queue and the ledger.
	Redis redis.UniversalClient
	// Worker is the worker's configuration; its Redis is set to Redis.
	Worker worker.Config
	// Batch names the batch (default a generated name). Run it again with
	// the same name to resume.
	Batch string
	// Enqueue holds the other enqueue options: queue, due time, note,
	// callback, retry budget, OnInvalid.
	Enqueue []enqueue.Option
	// PrivateQueue puts the batch's tasks in a queue of its own,
	// [PrivateQueue] of the batch, and makes the run's worker serve only
	// that queue (a Queue in Enqueue and the Worker's Queues are
	// overridden): a run on a Redis that a fleet shares must never take the
	// fleet's queued work. An id that already has a live task in another
	// queue is linked to that task rather than queued twice, and the run
	// waits for the fleet to finish it.
	PrivateQueue bool
	// OnStart is called once the worker runs, with its server (for its
	// metrics handler, say).
	OnStart func(*worker.Server)
	// OnProgress is called every ProgressEvery (default 1 s) and once at the
	// end.
	OnProgress    func(Progress)
	ProgressEvery time.Duration
}

// Input is what to delete: a sequence of ids, or a reader of one id per
// line.
type Input struct {
	IDs    iter.Seq[string]
	Reader io.Reader
	// Produce, when set, adds the batch's ids itself, with the run's
	// client and enqueue options (a data subject's discovery: see
	// package subject), and returns the tally.
	Produce func(ctx context.Context, c *enqueue.Client, opts []enqueue.Option) (enqueue.Summary, error)
}

// Progress is where a run stands.
type Progress struct {
	// Batch holds the batch's tallies.
	Batch ledger.Batch
	// Summary is the enqueue's tally, once the enqueue is over.
	Summary  enqueue.Summary
	Enqueued bool
	Elapsed  time.Duration
	// HeldBack says why calls are held back now (worker.Server.HeldBack),
	// or is empty.
	HeldBack string
}

// Run works in until each id of the batch has a terminal outcome, or ctx
// ends (then in-flight calls finish, the rest stays queued, and ctx's error
// is returned with the progress so far).
func Run(ctx context.Context, cfg Config, in Input) (Progress, error) {
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	start := time.Now()
	client := enqueue.NewClient(cfg.Redis)
	defer client.Close()
	if cfg.Batch == "" {
		cfg.Batch = client.DefaultBatch()
	}
	opts := append(cfg.Enqueue[:len(cfg.Enqueue):len(cfg.Enqueue)], enqueue.Batch(cfg.Batch))
	wcfg := cfg.Worker
	wcfg.Redis = cfg.Redis
	if cfg.PrivateQueue {
		q := PrivateQueue(cfg.Batch)
		opts = append(opts, enqueue.Queue(q))
		wcfg.Queues = map[string]int{q: 1}
	}
	w, err := worker.New(wcfg)
	if err != nil {
		return Progress{}, err
	}
	if err := w.Start(); err != nil {
		return Progress{}, err
	}
	done := false
	defer func() {
		w.Shutdown() // the last tasks are acknowledged: the queue is empty
		if done && cfg.PrivateQueue {
			// Every queue asynq knows is read by each enqueue's
			// cross-queue check: a finished run's queue goes (asynq
			// refuses to delete one that still holds tasks).
			_ = asynq.NewInspectorFromRedisClient(cfg.Redis).DeleteQueue(PrivateQueue(cfg.Batch), false)
		}
	}()
	if cfg.OnStart != nil {
		cfg.OnStart(w)
	}
	var (
		mu       sync.Mutex
		progress = Progress{Batch: ledger.Batch{Name: cfg.Batch}}
		enqErr   error
		enqDone  = make(chan struct{})
	)
	go func() {
		defer close(enqDone)
		var sum enqueue.Summary
		var err error
		switch {
		case in.Produce != nil:
			sum, err = in.Produce(ctx, client, opts)
		case in.Reader != nil:
			sum, err = client.EnqueueFrom(ctx, in.Reader, opts...)
		default:
			sum, err = client.EnqueueAll(ctx, in.IDs, opts...)
		}
		mu.Lock()
		progress.Summary, progress.Enqueued, enqErr = sum, true, err
		mu.Unlock()
	}()

	led := ledger.New(cfg.Redis)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var reported time.Time
	watch := lossWatch{ledger: led, batch: cfg.Batch, detector: led.NewLossDetector()}
	for {
		mu.Lock()
		enqueued, err := progress.Enqueued, enqErr
		mu.Unlock()
		if lostErr := (*ledger.LostError)(nil); errors.As(err, &lostErr) {
			return snapshot(&mu, &progress, start), watch.lost(ctx, lostErr.Reason)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return snapshot(&mu, &progress, start), err
		}
		b, ok, berr := led.Batch(ctx, cfg.Batch)
		if berr != nil && ctx.Err() == nil {
			return snapshot(&mu, &progress, start), berr
		}
		if berr == nil {
			if lostErr := watch.check(ctx, b, ok); lostErr != nil {
				return snapshot(&mu, &progress, start), lostErr
			}
		}
		mu.Lock()
		if ok {
			progress.Batch = b
		}
		progress.HeldBack = w.HeldBack()
		mu.Unlock()
		// A verified batch (a data subject's) is finished once its
		// verification is over, which completes it.
		finished := enqueued && ok && b.Pending() == 0 &&
			(b.Verification.State == ledger.VerificationNone || b.State(time.Now()) == ledger.StateComplete)
		if cfg.OnProgress != nil && ok && (finished || ctx.Err() != nil || time.Since(reported) >= cfg.ProgressEvery) {
			cfg.OnProgress(snapshot(&mu, &progress, start))
			reported = time.Now()
		}
		switch {
		case finished:
			done = true
			return snapshot(&mu, &progress, start), nil
		case ctx.Err() != nil:
			<-enqDone
			return snapshot(&mu, &progress, start), ctx.Err()
		}
		select {
		case <-ctx.Done():
		case <-poll.C:
		}
	}
}

// PrivateQueue is the queue of a run's batch with Config.PrivateQueue:
// "run." and a hash of the name, bounded to what tasks.ValidateQueue
// allows whatever the batch is called (a batch name may be 128 bytes). The
// same batch gets the same queue, so running it again resumes its tasks.
func PrivateQueue(batch string) string {
	sum := sha256.Sum256([]byte(batch))
	return "run." + hex.EncodeToString(sum[:8])
}

func snapshot(mu *sync.Mutex, p *Progress, start time.Time) Progress {
	mu.Lock()
	defer mu.Unlock()
	out := *p
	out.Elapsed = time.Since(start)
	return out
}

// lossWatch notices that Redis lost the run's batch: the batch it saw
// vanished, or was replaced by another of the same name (a different
// instance), or Redis itself says it lost its data. A run never reports
// what is left after a loss as its result.
type lossWatch struct {
	ledger   *ledger.Ledger
	batch    string
	detector *ledger.LossDetector
	seen     bool
	instance string // of the batch as first seen
	checked  time.Time
	reason   string
}

// lossCheckEvery spaces the checks of Redis's restart signs; the batch
// itself is checked on every progress read.
const lossCheckEvery = time.Second

// check returns a *ledger.LostError once the batch is lost.
func (w *lossWatch) check(ctx context.Context, b ledger.Batch, ok bool) error {
	if time.Since(w.checked) >= lossCheckEvery {
		w.checked = time.Now()
		if sign, err := w.detector.Check(ctx); err == nil && sign.Lost {
			w.reason = sign.Reason
			if sign.RolledBack && ok {
				// Redis holds the batch, but older data of it.
				_, _ = w.ledger.MarkRolledBack(context.WithoutCancel(ctx), w.batch, time.Now())
				return w.lost(ctx, "Redis holds an older copy of it")
			}
		}
	}
	switch {
	case ok && !w.seen:
		w.seen, w.instance = true, b.Instance
	case ok && b.Instance != w.instance:
		return w.lost(ctx, "a batch of the same name replaced it")
	case !ok && w.seen:
		return w.lost(ctx, "it vanished")
	}
	return nil
}

// lost marks the batch lost, so that status and the workers' /readyz show
// it, and returns the error that says so.
func (w *lossWatch) lost(ctx context.Context, how string) error {
	ctx = context.WithoutCancel(ctx)
	_, _ = w.ledger.MarkLost(ctx, w.batch, time.Now(), true)
	if w.reason == "" {
		if sign, err := w.detector.Check(ctx); err == nil && sign.Lost {
			w.reason = sign.Reason
		}
	}
	if w.reason != "" {
		how += "; " + w.reason
	}
	return &ledger.LostError{Batch: w.batch, Reason: how}
}
