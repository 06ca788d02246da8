// Package subject erases a data subject: every conversation an end user's
// session has on some bots, found through the Coze list endpoint as that
// session, deleted as that session, and verified gone.
//
// [Eraser.Erase] lists the session's conversations on each bot and
// connector, page by page at the profile's rate, and holds what it finds in
// a batch (enqueue.Hold): the list endpoint pages by page number, so a
// deletion between two pages would shift the later ones and hide
// conversations from the listing. Once every page is read it records the
// listings in the batch (bots, connectors, pages, conversations found and
// each call's log id) and releases the deletions to the workers.
//
// The batch is a verified one (enqueue.Verify): when its deletions are
// done, a worker lists the session's conversations again (see package
// worker), and the batch completes only after that verification. Coze
// answers "not found" also to a caller without permission, so only the
// second listing proves the erasure.
package subject

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// MaxTargets bounds the bots × connectors of one request: each is a walk
// of the list endpoint, and a batch keeps a bounded number of listings.
const MaxTargets = 200

// Request is a data subject's erasure.
type Request struct {
	// Profile is the OAuth JWT app (a profile of the profiles file) the
	// session belongs to; Session the end user's session name (JWT
	// session_name). The session name is personal data: it reaches the
	// batch and its tasks, and the ledger erases it once the batch is
	// complete.
	Profile string
	Session string
	// BotIDs are the bots to erase the subject's conversations on; at
	// least one.
	BotIDs []string
	// ConnectorIDs are the channels to list on each bot (default
	// coze.ConnectorAPI, "1024": conversations made through the API).
	ConnectorIDs []string
	// Batch names the batch (default the enqueue client's).
	Batch string
}

// Result is what Erase found and queued.
type Result struct {
	Batch string
	// Found counts the conversations listed (a conversation listed twice,
	// on two pages, counts twice).
	Found int
	// Enqueued counts the ids that joined the batch; Duplicate those it
	// held already (an earlier run of the same request).
	Enqueued  int
	Duplicate int
	// Listings are the walks, in order; the last one has Error set when
	// discovery could not finish.
	Listings []ledger.Listing
}

// String formats the result as the erase-subject command's last line:
// "found=N enqueued=N duplicate=N batch=NAME".
func (r Result) String() string {
	return fmt.Sprintf("found=%d enqueued=%d duplicate=%d batch=%s", r.Found, r.Enqueued, r.Duplicate, r.Batch)
}

// Eraser erases data subjects.
type Eraser struct {
	// Enqueue writes the batch and its tasks; Ledger is the one it writes
	// to (enqueue.WithLedger).
	Enqueue *enqueue.Client
	Ledger  *ledger.Ledger
	// Walker lists conversations as the request's session: its Lister is
	// a coze client acting as that session (coze.Client.WithTokens over
	// the profile's JWTApp.Session), its Budget the profile's.
	Walker *discovery.Walker
	// Now is the clock of the listings' records (default time.Now).
	Now func() time.Time
}

// ErrIncomplete is wrapped by the error of an Erase whose discovery could
// not list every page: what it found is queued, the batch's verification
// lists everything again once those deletions are done, and running the
// same request again is safe.
var ErrIncomplete = errors.New("discovery incomplete")

// Erase lists the subject's conversations on every bot and connector of
// req, holds them in a verified batch as the request's identity, records
// the listings, and queues the deletions. opts are the batch's other
// options (queue, due time, note, callback URL). It returns once the
// deletions are queued: workers do the rest.
func (e *Eraser) Erase(ctx context.Context, req Request, opts ...enqueue.Option) (Result, error) {
	targets, err := req.targets()
	if err != nil {
		return Result{}, err
	}
	if req.Batch == "" {
		req.Batch = e.Enqueue.DefaultBatch()
	}
	all := append(append([]enqueue.Option{}, opts...), enqueue.Batch(req.Batch), enqueue.Profile(req.Profile),
		enqueue.Session(req.Session), enqueue.Verify())
	if err := enqueue.CheckOptions(e.now(), all...); err != nil {
		return Result{}, err
	}
	res := Result{Batch: req.Batch}
	// The batch is opened, as a verified one of this identity, and its
	// targets recorded before the first page: a batch of another
	// request is refused before anything is written to it, and the
	// verification lists every target even if this process dies mid-walk.
	seal, err := e.Enqueue.OpenEmpty(ctx, all...)
	if err != nil {
		return res, err
	}
	// What follows the walk is done even when ctx ends (Ctrl-C): what was
	// found is recorded and released, and the batch is sealed.
	after, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	defer func() { _ = seal(after) }() // an unsealed batch completes once its adder lease ends
	if _, err := e.Ledger.RecordTargets(ctx, req.Batch, ledgerTargets(targets)); err != nil {
		return res, err
	}
	var walkErr error
	sum, err := e.Enqueue.EnqueueAll(ctx, e.walk(ctx, targets, &res, &walkErr), append(all, enqueue.Hold())...)
	res.Enqueued, res.Duplicate = sum.Enqueued, sum.Duplicate
	if errors.Is(err, enqueue.ErrNoIDs) {
		err = nil // nothing found: the batch holds the listings, and its verification completes it
	}
	err = errors.Join(err, walkErr, e.recordListings(after, req.Batch, res.Listings))
	if _, relErr := e.Enqueue.Release(after, req.Batch); relErr != nil && !errors.Is(relErr, enqueue.ErrNoIDs) {
		err = errors.Join(err, relErr)
	}
	return res, err
}

// finishTimeout bounds what Erase does after its walks (record the
// listings, release, seal), which it does even when its context ended.
const finishTimeout = 30 * time.Second

func ledgerTargets(ts []target) []ledger.Target {
	out := make([]ledger.Target, len(ts))
	for i, t := range ts {
		out[i] = ledger.Target{BotID: t.bot, ConnectorID: t.connector}
	}
	return out
}

// walk yields the id of every conversation of every target, walking them
// one after the other, and records each walk in res. A walk that fails
// ends the sequence with *walkErr set (wrapping ErrIncomplete).
func (e *Eraser) walk(ctx context.Context, targets []target, res *Result, walkErr *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i, t := range targets {
			stopped := false
			listing, err := e.Walker.Walk(ctx, coze.ListQuery{BotID: t.bot, ConnectorID: t.connector, PageSize: coze.MaxPageSize},
				func(page []coze.Conversation) error {
					for _, c := range page {
						if !yield(c.ID) {
							stopped = true
							return errStopped
						}
					}
					return nil
				})
			res.Found += listing.Found
			rec := ledger.Listing{Phase: ledger.ListingDiscovery, BotID: listing.BotID, ConnectorID: listing.ConnectorID,
				Pages: listing.Pages, Found: listing.Found, LogIDs: listing.LogIDs, At: e.now()}
			switch {
			case stopped:
				rec.Error = "stopped: the conversations found could not be queued"
			case err != nil:
				rec.Error = err.Error()
				*walkErr = fmt.Errorf("%w: %w", ErrIncomplete, err)
			}
			res.Listings = append(res.Listings, rec)
			if err != nil {
				res.Listings = append(res.Listings, notListed(targets[i+1:], t, e.now())...)
				return
			}
		}
	}
}

// notListed records the targets a stopped discovery did not reach, so that
// the verification lists them too.
func notListed(targets []target, stoppedAt target, now time.Time) []ledger.Listing {
	out := make([]ledger.Listing, 0, len(targets))
	for _, t := range targets {
		out = append(out, ledger.Listing{Phase: ledger.ListingDiscovery, BotID: t.bot, ConnectorID: t.connector, At: now,
			Error: fmt.Sprintf("not listed: the discovery stopped at bot %s (connector %s)", stoppedAt.bot, stoppedAt.connector)})
	}
	return out
}

// errStopped ends a walk whose consumer stopped reading.
var errStopped = errors.New("subject: stopped")

// recordListings keeps the walks in the batch, for its report.
func (e *Eraser) recordListings(ctx context.Context, batch string, listings []ledger.Listing) error {
	for _, li := range listings {
		if err := e.Ledger.RecordListing(ctx, batch, li); err != nil {
			return fmt.Errorf("subject: recording the listing of bot %s: %w", li.BotID, err)
		}
	}
	return nil
}

func (e *Eraser) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// target is a bot and a connector to list.
type target struct{ bot, connector string }

// targets checks the request and returns every bot × connector to list.
func (r Request) targets() ([]target, error) {
	if err := tasks.ValidateProfile(r.Profile); err != nil {
		return nil, fmt.Errorf("subject: profile: %w", err)
	}
	if err := tasks.ValidateSession(r.Session); err != nil {
		return nil, fmt.Errorf("subject: session: %w", err)
	}
	if r.Batch != "" {
		if err := tasks.ValidateBatch(r.Batch); err != nil {
			return nil, fmt.Errorf("subject: batch: %w", err)
		}
	}
	if len(r.BotIDs) == 0 {
		return nil, errors.New("subject: bot ids: give at least one")
	}
	connectors := r.ConnectorIDs
	if len(connectors) == 0 {
		connectors = []string{coze.ConnectorAPI}
	}
	var out []target
	for i, bot := range r.BotIDs {
		if err := coze.ValidateBotID(bot); err != nil {
			return nil, fmt.Errorf("subject: bot id %d: %w", i+1, err)
		}
		for j, c := range connectors {
			if err := coze.ValidateConnectorID(c); err != nil {
				return nil, fmt.Errorf("subject: connector id %d: %w", j+1, err)
			}
			t := target{bot, c}
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	if len(out) > MaxTargets {
		return nil, fmt.Errorf("subject: %d bots × connectors: at most %d per request", len(out), MaxTargets)
	}
	return out, nil
}
