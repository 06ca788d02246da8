package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
)

// Sweeper runs sweeps as one profile.
type Sweeper struct {
	// Lister lists as the profile of the specs it runs (its own token,
	// not a session's); required.
	Lister discovery.Lister
	// Budget, when set, is the profile's rate budget: listing spends the
	// account's budget as its deletions do.
	Budget discovery.Budget
	// Enqueue holds and releases the matches; required unless every run
	// is dry.
	Enqueue *enqueue.Client
	// Attempts, Backoff and BackoffCap tune the walks (see
	// discovery.Walker; zero takes its defaults).
	Attempts            int
	Backoff, BackoffCap time.Duration
	// Now is the clock the cutoff is taken from (default time.Now).
	Now func() time.Time
}

// Options are the settings of one run.
type Options struct {
	// Batch is the batch the matches join; required unless DryRun.
	Batch string
	// DryRun lists and filters, reports the matches to OnMatch, and
	// creates no batch and queues nothing.
	DryRun bool
	// OnMatch, when set, is called with each match, in the order listed,
	// from the calling goroutine.
	OnMatch func(Match)
	// At is the time the cutoff is counted from (default the Sweeper's
	// clock): a scheduled run counts from its tick, so that every worker
	// that runs a tick sweeps the same conversations.
	At time.Time
	// Enqueue are further options of the batch (Due, MaxRetry,
	// CallbackURL, Retention); Batch, Queue, Profile, Note and DueIn come
	// from the run and the spec.
	Enqueue []enqueue.Option
}

// Match is a conversation a sweep would delete.
type Match struct {
	ID          string
	BotID       string
	ConnectorID string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Result is what a run did.
type Result struct {
	// Batch is the batch the matches joined; it exists only when Matched
	// is more than 0 and the run was not dry.
	Batch string
	// Cutoff is the time a conversation must be older than.
	Cutoff time.Time
	DryRun bool
	// Listed counts the conversations read; Matched those that matched.
	Listed, Matched int
	// Undated counts the conversations read whose compared time
	// (created_at or updated_at, as [Spec.By] says) is missing or 0: never
	// matched, since such a conversation would count as older than any
	// cutoff.
	Undated int
	// Enqueued counts the matches new to the batch (their tasks are made
	// once the batch is released, as the queue has room); Duplicate the
	// matches already in it (an earlier, interrupted run's held ids are
	// released with this run's).
	Enqueued, Duplicate int
	// Listings are the walks, one per bot × connector, in order.
	Listings []discovery.Listing
}

// String formats the result as the CLI's last line:
// "listed=N matched=N enqueued=N duplicate=N batch=NAME", or
// "listed=N matched=N dry_run=true".
func (r Result) String() string {
	if r.DryRun {
		return fmt.Sprintf("listed=%d matched=%d dry_run=true", r.Listed, r.Matched)
	}
	return fmt.Sprintf("listed=%d matched=%d enqueued=%d duplicate=%d batch=%s", r.Listed, r.Matched, r.Enqueued, r.Duplicate, r.Batch)
}

// errCutoff stops a walk by creation time at the first conversation that
// is not old enough.
var errCutoff = errors.New("sweep: reached the cutoff")

// Run runs spec once: it walks each bot × connector, holds what matches in
// the batch page by page, and releases the batch once every walk is over
// (see the package documentation for failures). The error of walks that
// failed names each bot, connector and page (errors.As finds the
// *discovery.WalkError); what they found is released all the same.
func (s *Sweeper) Run(ctx context.Context, spec Spec, o Options) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, err
	}
	spec = spec.withDefaults()
	switch {
	case s.Lister == nil:
		return Result{}, errors.New("sweep: Sweeper.Lister is required")
	case !o.DryRun && s.Enqueue == nil:
		return Result{}, errors.New("sweep: Sweeper.Enqueue is required unless the run is dry")
	case !o.DryRun:
		if err := enqueue.ValidateBatch(o.Batch); err != nil {
			return Result{}, fmt.Errorf("sweep: batch: %w", err)
		}
	}
	at := o.At
	switch {
	case !at.IsZero():
	case s.Now != nil:
		at = s.Now()
	default:
		at = time.Now()
	}
	r := &run{s: s, spec: spec, o: o, res: Result{DryRun: o.DryRun, Cutoff: at.Add(-spec.OlderThan).Truncate(time.Second)}}
	if !o.DryRun {
		r.res.Batch = o.Batch
	}
	walker := &discovery.Walker{Lister: s.Lister, Budget: s.Budget, Attempts: s.Attempts, Backoff: s.Backoff, BackoffCap: s.BackoffCap}
	var failed []error
	for _, bot := range spec.BotIDs {
		for _, connector := range spec.ConnectorIDs {
			err := r.walk(ctx, walker, bot, connector)
			var walkErr *discovery.WalkError
			switch {
			case ctx.Err() != nil:
				// Stopped: what was held stays held (see the package doc).
				return r.res, fmt.Errorf("sweep stopped before the release: %w", ctx.Err())
			case errors.As(err, &walkErr):
				failed = append(failed, err)
			case err != nil:
				return r.res, err // Redis: what was held stays held
			}
		}
	}
	if err := r.release(ctx); err != nil {
		return r.res, err
	}
	return r.res, errors.Join(failed...)
}

// run is one run's state.
type run struct {
	s    *Sweeper
	spec Spec
	o    Options
	res  Result
}

// walk lists one bot and connector and holds its matches.
func (r *run) walk(ctx context.Context, w *discovery.Walker, bot, connector string) error {
	q := coze.ListQuery{BotID: bot, ConnectorID: connector, Order: coze.Ascending}
	listing, err := w.Walk(ctx, q, func(page []coze.Conversation) error {
		return r.page(ctx, bot, connector, page)
	})
	r.res.Listings = append(r.res.Listings, listing)
	r.res.Listed += listing.Found
	if errors.Is(err, errCutoff) {
		return nil
	}
	return err
}

// page filters one page and holds its matches; by creation time it stops
// the walk at the first conversation not older than the cutoff.
func (r *run) page(ctx context.Context, bot, connector string, page []coze.Conversation) error {
	var ids []string
	stop := false
	for _, c := range page {
		at := c.CreatedAt
		if r.spec.By == ByUpdated {
			at = c.UpdatedAt
		}
		if at.Unix() <= 0 {
			// Missing or 0 reads as 1970: not proof of age, so kept.
			r.res.Undated++
			continue
		}
		if !at.Before(r.res.Cutoff) {
			if r.spec.By == ByCreated {
				stop = true // ascending: every later one is as young
				break
			}
			continue
		}
		if !metaMatches(c.Meta, r.spec.Meta) {
			continue
		}
		r.res.Matched++
		if r.o.OnMatch != nil {
			r.o.OnMatch(Match{ID: c.ID, BotID: bot, ConnectorID: connector, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt})
		}
		ids = append(ids, c.ID)
	}
	if err := r.hold(ctx, ids); err != nil {
		return err
	}
	if stop {
		return errCutoff
	}
	return nil
}

// metaMatches reports whether meta holds every key of want with its value.
func metaMatches(meta, want map[string]string) bool {
	for k, v := range want {
		if got, ok := meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// batchOptions are the options that hold and release the run's batch.
func (r *run) batchOptions() []enqueue.Option {
	opts := append(slices.Clone(r.o.Enqueue), enqueue.Batch(r.o.Batch), enqueue.Queue(r.spec.Queue))
	if r.spec.Profile != "" {
		opts = append(opts, enqueue.Profile(r.spec.Profile))
	}
	if r.spec.Note != "" {
		opts = append(opts, enqueue.Note(r.spec.Note))
	}
	if r.spec.DueIn > 0 {
		opts = append(opts, enqueue.DueIn(r.spec.DueIn))
	}
	return opts
}

// hold adds a page's matches to the batch, with no task.
func (r *run) hold(ctx context.Context, ids []string) error {
	if r.o.DryRun || len(ids) == 0 {
		return nil
	}
	sum, err := r.s.Enqueue.EnqueueAll(ctx, slices.Values(ids), append(r.batchOptions(), enqueue.Hold())...)
	r.res.Enqueued += sum.Enqueued
	r.res.Duplicate += sum.Duplicate
	if err != nil {
		return fmt.Errorf("sweep: holding the matches in batch %s: %w", r.o.Batch, err)
	}
	return nil
}

// release queues the batch's held ids once every walk is over.
func (r *run) release(ctx context.Context) error {
	if r.o.DryRun || r.res.Matched == 0 {
		return nil
	}
	if _, err := r.s.Enqueue.Release(ctx, r.o.Batch, r.o.Enqueue...); err != nil {
		return fmt.Errorf("sweep: releasing batch %s: %w", r.o.Batch, err)
	}
	return nil
}
