package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// DefaultIntegrityInterval is how often a worker checks that Redis still
// holds the ledger's data.
const DefaultIntegrityInterval = 5 * time.Second

// knownBatchesLimit bounds the batch names a worker remembers between two
// checks: the newest ones, which a loss is found among.
const knownBatchesLimit = 1000

// knownRefreshEvery is how many checks go by between two reads of the
// known batches: a read costs an EXISTS per batch.
const knownRefreshEvery = 6

// integrityWatch notices that Redis lost its data (restarted empty, was
// flushed) and says so loudly: each batch it knew of that Redis no longer
// holds is marked lost (status shows it, /readyz fails until its input is
// enqueued again), the loss is logged as an error naming those batches,
// and coze_eraser_redis_data_losses_total counts it.
//
// Every worker runs one: a check is an INFO and a GET every few seconds.
type integrityWatch struct {
	ledger   *ledger.Ledger
	detector *ledger.LossDetector
	metrics  *Metrics
	log      *slog.Logger
	now      func() time.Time
	// known holds the batches Redis held at the last check, each with
	// whether it was open: the open ones then and the recent ones read
	// every knownRefreshEvery checks.
	known  map[string]bool
	recent []string
	checks int
}

func newIntegrityWatch(l *ledger.Ledger, m *Metrics, log *slog.Logger, now func() time.Time) *integrityWatch {
	return &integrityWatch{ledger: l, detector: l.NewLossDetector(), metrics: m, log: log, now: now,
		known: map[string]bool{}}
}

// run checks now and every interval until ctx ends.
func (w *integrityWatch) run(ctx context.Context, interval time.Duration) {
	w.check(ctx)
	every(ctx, interval, w.check)
}

// check compares Redis with the last check. Errors (Redis down) are left
// to /readyz and the task handlers, which report them already.
func (w *integrityWatch) check(ctx context.Context) {
	sign, err := w.detector.Check(ctx)
	if err != nil {
		return
	}
	switch {
	case sign.Lost:
		w.lost(ctx, sign)
	case sign.Restarted:
		w.log.Warn("Redis restarted and kept the ledger's data", "detail", sign.Reason)
	}
	w.remember(ctx, sign.Lost)
	w.checks++
}

// remember reads the batches a loss would be found among: the open ones at
// every check (one read), the newest existing ones every few checks.
func (w *integrityWatch) remember(ctx context.Context, refresh bool) {
	if refresh || w.checks%knownRefreshEvery == 0 {
		if names, err := w.ledger.RecentBatchNames(ctx, knownBatchesLimit); err == nil {
			w.recent = names
		}
	}
	open, err := w.ledger.OpenBatchNames(ctx, knownBatchesLimit)
	if err != nil {
		return
	}
	clear(w.known)
	for _, name := range w.recent {
		w.known[name] = false
	}
	for _, name := range open {
		w.known[name] = true
	}
}

// lost marks the known batches that Redis no longer holds. Those that had
// ids pending fail /readyz until their input is enqueued again; those that
// were complete lost only their proof, which status shows.
func (w *integrityWatch) lost(ctx context.Context, sign ledger.LossSign) {
	w.metrics.DataLosses.Inc()
	for name, wasOpen := range w.known {
		if sign.RolledBack && wasOpen {
			_, _ = w.ledger.MarkRolledBack(ctx, name, w.now())
		} else if !sign.RolledBack {
			_, _ = w.ledger.MarkLost(ctx, name, w.now(), wasOpen)
		}
	}
	// Name every lost batch, those that late records marked first too.
	var gone []string
	pending := 0
	lost, _ := w.ledger.LostBatches(ctx)
	for _, b := range lost {
		gone = append(gone, b.Name)
		if b.LostWhileOpen {
			pending++
		}
	}
	shown := gone[:min(len(gone), 20)]
	msg := "Redis lost the ledger's data: the batches it held are gone and their proofs with them; " +
		"enqueue each lost batch's input again (coze-eraser status lists them)"
	if sign.RolledBack {
		msg = "Redis came back with older data: the open batches lack what happened since, and will not " +
			"complete; enqueue each lost batch's input again (coze-eraser status lists them)"
	}
	w.log.Error(msg, "detail", sign.Reason, "lost_batches", len(gone), "with_ids_pending", pending, "batches", shown)
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
