package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// verifier handles [tasks.TypeVerify]: once a data subject's deletions
// all have an outcome, it lists the subject's conversations again, as the
// same session, on every bot and connector the discovery listed. Coze
// answers "not found" (4002, 4200) also to a caller without permission, so
// only a listing proves that a conversation is gone:
//   - an id of the batch still listed is recorded as failed, "still
//     listed", whatever its DELETE answered;
//   - a conversation the batch does not hold was created since the last
//     listing: it joins the batch, is deleted, and the next round verifies
//     it, up to tasks.MaxVerifyRounds rounds; the last round only counts
//     what it still finds (not verified).
//
// The batch completes when a round ends without new conversations.
type verifier struct {
	ledger     *ledger.Ledger
	enqueue    *enqueue.Client
	identities *identityGate
	metrics    *Metrics
	log        *slog.Logger
	now        func() time.Time
	// onComplete queues the callback and erases the session name of a
	// batch the verification completed.
	onComplete func(ctx context.Context, batches []string)
}

// errNoListing is a batch to verify whose identity cannot list.
var errNoListing = errors.New("this profile's client cannot list conversations")

// ProcessTask runs one verification round.
func (v *verifier) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.DecodeVerify(t.Payload())
	if err != nil {
		return giveUp(err)
	}
	b, ok, err := v.ledger.Batch(ctx, p.Batch)
	switch {
	case err != nil:
		return retryFailed(reasonTransient, err)
	case !ok || b.Verification.State != ledger.VerificationPending || b.Verification.Round != p.Round-1:
		return nil // gone, or this round ran already (a duplicate task)
	}
	profile, session, err := b.TaskIdentity()
	if err != nil {
		return v.finish(ctx, p, 0, "the batch's session name was erased before its verification: "+err.Error())
	}
	l, api, err := v.identities.resolve(tasks.Payload{ConversationID: "0", Batch: p.Batch}.WithIdentity(profile, session))
	if err != nil {
		v.metrics.Retries.WithLabelValues(reasonAuth).Inc()
		return retryLater(reasonAuth, unknownIdentityRetry, err)
	}
	if l.auth.isClosed() {
		v.metrics.Retries.WithLabelValues(reasonAuth).Inc()
		return retryLater(reasonAuth, l.afterProbe(), fmt.Errorf("profile %s: %w", l.profile, errProfilePaused))
	}
	lister, ok := api.(discovery.Lister)
	if !ok {
		return v.finish(ctx, p, 0, errNoListing.Error())
	}
	walker := &discovery.Walker{Lister: lister}
	if l.limiter != nil {
		walker.Budget = l.limiter
	}
	round, err := v.listAgain(ctx, b, p.Round, walker, profile, session)
	if err != nil {
		return v.failedListing(ctx, p, err)
	}
	switch {
	case round.fresh == 0:
		return v.finish(ctx, p, 0, "")
	case p.Round >= tasks.MaxVerifyRounds:
		return v.finish(ctx, p, round.fresh, "")
	}
	started, err := v.ledger.StartVerificationRound(ctx, p.Batch, p.Round)
	if err != nil || !started {
		return err
	}
	if _, err := v.enqueue.Release(ctx, p.Batch); err != nil {
		// The new ids stay pending: the janitor queues them once the batch
		// stalls, and this round's listing is recorded.
		v.log.Warn("verification: queueing the deletions of new conversations", "batch", p.Batch, "error", err)
	}
	v.log.Info("verification found conversations created since the last listing: deleting them, then verifying again",
		"batch", p.Batch, "round", p.Round, "new", round.fresh, "still_listed", round.stillListed)
	return nil
}

// roundResult is what one round's listing found.
type roundResult struct {
	// fresh counts the listed conversations the batch did not hold at
	// the round's start (held into the batch, unless it is the last round).
	fresh int
	// stillListed counts the batch's finished ids listed again.
	stillListed int
}

// listAgain walks every bot and connector the discovery listed, records
// each walk, marks the still listed ids and holds the new ones.
func (v *verifier) listAgain(ctx context.Context, b ledger.Batch, round int, w *discovery.Walker, profile, session string) (roundResult, error) {
	listings, err := v.ledger.Listings(ctx, b.Name)
	if err != nil {
		return roundResult{}, err
	}
	var res roundResult
	targets := verifyTargets(b, listings)
	if len(targets) == 0 {
		return res, errNoTargets
	}
	last := round >= tasks.MaxVerifyRounds
	hold := []enqueue.Option{enqueue.Batch(b.Name), enqueue.Hold(), enqueue.Profile(profile), enqueue.Session(session)}
	for _, target := range targets {
		q := coze.ListQuery{BotID: target.BotID, ConnectorID: target.ConnectorID, PageSize: coze.MaxPageSize}
		listing, walkErr := w.WalkPages(ctx, q, func(page discovery.PageRead) error {
			ids := make([]string, len(page.Conversations))
			for i, c := range page.Conversations {
				ids[i] = c.ID
			}
			entries, err := v.ledger.Lookup(ctx, b.Name, ids)
			if err != nil {
				return err
			}
			var again, fresh []string
			for _, id := range ids {
				e, in := entries[id]
				switch {
				case !in:
					fresh = append(fresh, id)
				case e.Outcome.Terminal():
					again = append(again, id)
				default:
					// Pending: held by an earlier try of this round
					// that died before it released them.
					fresh = append(fresh, id)
				}
			}
			if len(again) > 0 {
				n, err := v.ledger.MarkStillListed(ctx, b.Name, round, again, page.LogID, v.now())
				if err != nil {
					return err
				}
				res.stillListed += n
			}
			res.fresh += len(fresh)
			if len(fresh) > 0 && !last {
				if _, err := v.enqueue.EnqueueAll(ctx, slices.Values(fresh), hold...); err != nil {
					return err
				}
			}
			return nil
		})
		rec := ledger.Listing{Phase: ledger.ListingVerification, Round: round, BotID: listing.BotID, ConnectorID: listing.ConnectorID,
			Pages: listing.Pages, Found: listing.Found, LogIDs: listing.LogIDs, At: v.now()}
		if walkErr != nil {
			rec.Error = walkErr.Error()
		}
		if err := v.ledger.RecordListing(ctx, b.Name, rec); err != nil && walkErr == nil {
			walkErr = err
		}
		if walkErr != nil {
			return res, walkErr
		}
	}
	return res, nil
}

// target is a bot and connector the discovery listed.
type target struct{ BotID, ConnectorID string }

// errNoTargets is a batch to verify that names no bot: its discovery
// recorded neither its targets nor a listing. Verifying nothing would
// prove too much.
var errNoTargets = errors.New("the batch records no bot to list: its discovery did not record what it set out to list")

// verifyTargets is each bot and connector the batch's discovery set out to
// list or listed, once, in that order.
func verifyTargets(b ledger.Batch, listings []ledger.Listing) []target {
	var out []target
	for _, t := range b.Targets {
		if t := (target{t.BotID, t.ConnectorID}); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, li := range listings {
		t := target{li.BotID, li.ConnectorID}
		if li.Phase == ledger.ListingDiscovery && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// finish ends the verification at round p.Round: passed unless an id was
// still listed, unverified conversations remain or reason says why not.
// The batch then completes.
func (v *verifier) finish(ctx context.Context, p tasks.VerifyPayload, unverified int, reason string) error {
	completed, err := v.ledger.FinishVerification(ctx, p.Batch, p.Round, unverified, reason, v.now())
	if err != nil {
		return retryFailed(reasonTransient, err)
	}
	if !completed {
		// A duplicate round, or ids pending that the next round verifies.
		return nil
	}
	if b, ok, err := v.ledger.Batch(ctx, p.Batch); err == nil && ok {
		v.metrics.Verifications.WithLabelValues(string(b.Verification.State)).Inc()
		v.log.Info("verification done", "batch", p.Batch, "round", p.Round, "state", b.Verification.State,
			"still_listed", b.Verification.StillListed, "unverified", b.Verification.Unverified, "reason", b.Verification.Reason)
	}
	v.onComplete(ctx, []string{p.Batch})
	return nil
}

// failedListing retries a round whose listing failed, and once its
// retries are spent records the verification as failed: the batch then
// completes without the proof it wanted, and says so.
func (v *verifier) failedListing(ctx context.Context, p tasks.VerifyPayload, err error) error {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	var walkErr *discovery.WalkError
	class := coze.ClassTransient
	if errors.As(err, &walkErr) {
		class = walkErr.Result.Class
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The round outlived tasks.VerifyTimeout: a counted failure, not
		// a wait, or a round always too long would run forever.
		return retryFailed(reasonTransient, err)
	case ctx.Err() != nil:
		return retryLater(reasonWaiting, 0, err) // shutdown: the round runs again elsewhere
	case class == coze.ClassAuth:
		// A rejected key is waited out, as deletions wait it out: the
		// verification is not failed by an outage of the key.
		v.metrics.Retries.WithLabelValues(reasonAuth).Inc()
		return retryLater(reasonAuth, unknownIdentityRetry, err)
	case errors.Is(err, errNoTargets):
	case retried < maxRetry && class != coze.ClassPermanent:
		v.log.Warn("verification: listing failed; trying again", "batch", p.Batch, "round", p.Round, "error", err)
		return retryFailed(reasonTransient, err)
	}
	return v.finish(ctx, p, 0, "listing failed: "+err.Error())
}
