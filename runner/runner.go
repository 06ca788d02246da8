// Package runner works one batch of ids to the end inside the calling
// process: it enqueues them, runs a worker on them, reports progress, and
// returns when every id has a terminal outcome. It is the engine of the
// demo command.
package runner

import (
	"context"
	"iter"
	"time"

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
	// Batch names the batch; default a generated name.
	Batch string
	// MaxRetry is the retry budget of each id.
	MaxRetry int
	// OnStart is called once the worker runs, with its server (for its
	// metrics handler, say).
	OnStart func(*worker.Server)
	// OnProgress is called every ProgressEvery (default 1 s) and once at the
	// end.
	OnProgress    func(Progress)
	ProgressEvery time.Duration
	// OnInvalid receives the ids that are not conversation ids.
	OnInvalid func(enqueue.Invalid)
}

// Progress is where a run stands.
type Progress struct {
	// Batch holds the batch's tallies.
	Batch   ledger.Batch
	Summary enqueue.Summary
	Elapsed time.Duration
}

// Run enqueues ids as one batch and works them until each has a terminal
// outcome, or ctx ends.
func Run(ctx context.Context, cfg Config, ids iter.Seq[string]) (Progress, error) {
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	start := time.Now()
	client := enqueue.NewClient(cfg.Redis)
	defer client.Close()
	opts := []enqueue.Option{enqueue.MaxRetry(cfg.MaxRetry)}
	if cfg.Batch != "" {
		opts = append(opts, enqueue.Batch(cfg.Batch))
	}
	if cfg.OnInvalid != nil {
		opts = append(opts, enqueue.OnInvalid(cfg.OnInvalid))
	}
	sum, err := client.EnqueueAll(ctx, ids, opts...)
	progress := Progress{Batch: ledger.Batch{Name: sum.Batch}, Summary: sum}
	if err != nil {
		return progress, err
	}

	wcfg := cfg.Worker
	wcfg.Redis = cfg.Redis
	w, err := worker.New(wcfg)
	if err != nil {
		return progress, err
	}
	if err := w.Start(); err != nil {
		return progress, err
	}
	defer w.Shutdown()
	if cfg.OnStart != nil {
		cfg.OnStart(w)
	}

	led := ledger.New(cfg.Redis)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var reported time.Time
	for {
		b, _, err := led.Batch(ctx, sum.Batch)
		if err != nil && ctx.Err() == nil {
			return progress, err
		}
		progress.Batch, progress.Elapsed = b, time.Since(start)
		finished := b.Pending() == 0 || ctx.Err() != nil
		if cfg.OnProgress != nil && (finished || time.Since(reported) >= cfg.ProgressEvery) {
			cfg.OnProgress(progress)
			reported = time.Now()
		}
		if finished {
			return progress, ctx.Err()
		}
		select {
		case <-ctx.Done():
		case <-poll.C:
		}
	}
}
