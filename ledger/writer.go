package ledger

import (
	"context"
	"time"
)

// Writer records attempts from many goroutines with a group commit: the
// attempts that arrive while a write is under way go together in the next
// script call. Under load that turns a round trip per deletion into one per
// few dozen, without delaying a lone attempt. A worker process has one.
type Writer struct {
	ledger   *Ledger
	maxBatch int
	linger   time.Duration
	reqs     chan writeRequest
	stop     chan struct{}
	stopped  chan struct{}
}

type writeRequest struct {
	attempt Attempt
	result  chan writeResult
}

type writeResult struct {
	rec Recorded
	err error
}

// writeTimeout bounds one group commit; the callers retry a failed one.
const writeTimeout = 10 * time.Second

// NewWriter starts a writer that commits up to maxBatch attempts at a time
// (64 when maxBatch is not positive), waiting up to linger after the first
// one for others to join. Close it when done.
//
// A worker's tasks are fetched one at a time (asynq's design), so at a few
// thousand deletions a second only a handful finish within one write; a
// linger of a millisecond gathers more of them into each commit and costs
// each task that millisecond, which its concurrency slot easily absorbs.
func NewWriter(l *Ledger, maxBatch int, linger time.Duration) *Writer {
	if maxBatch <= 0 {
		maxBatch = 64
	}
	w := &Writer{ledger: l, maxBatch: maxBatch, linger: linger, reqs: make(chan writeRequest, maxBatch),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.loop()
	return w
}

// Record stores an attempt as [Ledger.Record] does, in the next group
// commit. If ctx ends first the attempt may still be written; recording it
// again is harmless (a terminal outcome is written once).
func (w *Writer) Record(ctx context.Context, a Attempt) (Recorded, error) {
	req := writeRequest{attempt: a, result: make(chan writeResult, 1)}
	select {
	case w.reqs <- req:
	case <-ctx.Done():
		return Recorded{}, ctx.Err()
	case <-w.stopped:
		return w.ledger.Record(ctx, a) // closed: write it directly
	}
	select {
	case r := <-req.result:
		return r.rec, r.err
	case <-ctx.Done():
		return Recorded{}, ctx.Err()
	}
}

// Close stops the writer after the requests it has taken are written.
func (w *Writer) Close() {
	close(w.stop)
	<-w.stopped
}

func (w *Writer) loop() {
	defer close(w.stopped)
	batch := make([]writeRequest, 0, w.maxBatch)
	for {
		select {
		case req := <-w.reqs:
			batch = append(batch[:0], req)
		case <-w.stop:
			return
		}
		batch = w.gather(batch)
		w.commit(batch)
	}
}

// gather adds to batch the requests that arrive within the linger, up to
// the batch size.
func (w *Writer) gather(batch []writeRequest) []writeRequest {
	var timeout <-chan time.Time
	if w.linger > 0 {
		timer := time.NewTimer(w.linger)
		defer timer.Stop()
		timeout = timer.C
	}
	for len(batch) < w.maxBatch {
		if timeout == nil {
			select {
			case req := <-w.reqs:
				batch = append(batch, req)
				continue
			default:
				return batch
			}
		}
		select {
		case req := <-w.reqs:
			batch = append(batch, req)
		case <-timeout:
			return batch
		}
	}
	return batch
}

func (w *Writer) commit(batch []writeRequest) {
	attempts := make([]Attempt, len(batch))
	for i, req := range batch {
		attempts[i] = req.attempt
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	recs, err := w.ledger.RecordMany(ctx, attempts)
	if err == nil {
		// The outcomes are written; a shortfall of replicas is counted
		// (ReplicationShortfalls), not failed: the deletions happened, and
		// a failover that lost them leaves the ids pending, for the repair
		// to queue again (their DELETE then answers not_found).
		_ = w.ledger.AwaitReplicas(ctx)
	}
	cancel()
	for i, req := range batch {
		if err != nil {
			req.result <- writeResult{err: err}
			continue
		}
		req.result <- writeResult{rec: recs[i]}
	}
}
