// Package discovery turns people and policies into conversation ids: it
// lists a bot's conversations through the Coze list endpoint, as a profile
// or as an end user's session, page by page, at the profile's rate.
//
// The list endpoint pages by page number, so conversations deleted between
// two pages shift the later ones to earlier pages and a reader skips them.
// A walk therefore reads every page before any of its conversations is
// deleted: the caller keeps what a page yields somewhere that starts no
// deletion (the ledger's pending ids, a file) and queues the deletions
// once the walk is over.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// Lister reads one page of conversations; *coze.Client implements it.
type Lister interface {
	ListConversations(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error)
}

// Budget is the rate budget list calls draw on: the profile's, which its
// deletions share (*ratelimit.Limiter implements it).
type Budget interface {
	Acquire(ctx context.Context) (waited time.Duration, release func(), err error)
	Observe(ctx context.Context, res coze.Result) error
}

// Defaults of a [Walker].
const (
	// DefaultAttempts is how many times one page is tried before the walk
	// gives up on a transient error, a rate-limited answer or an answer
	// it cannot read.
	DefaultAttempts = 8
	// DefaultBackoff is the first wait between two tries of a page; it
	// doubles up to DefaultBackoffCap.
	DefaultBackoff    = 500 * time.Millisecond
	DefaultBackoffCap = 30 * time.Second
	// MaxPages bounds a walk: a bot with more than 50 million
	// conversations of one caller is a loop, not a bot.
	MaxPages = 1_000_000
)

// Walker lists conversations page by page.
type Walker struct {
	// Lister makes the calls; required.
	Lister Lister
	// Budget, when set, paces the calls and learns from their answers.
	Budget Budget
	// Attempts per page (default [DefaultAttempts]).
	Attempts int
	// Backoff is the first wait between two tries of a page, doubling up
	// to BackoffCap (defaults [DefaultBackoff], [DefaultBackoffCap]).
	Backoff, BackoffCap time.Duration
}

// Listing is what a walk read, for the record: which bot and connector,
// how many pages and conversations, and each call's log id (the proof that
// the listing happened, and what to give Coze's support).
type Listing struct {
	BotID       string
	ConnectorID string
	Pages       int
	Found       int
	LogIDs      []string
}

// WalkError is a walk that could not finish: the page it stopped at and
// the last answer. What was read before it stays read.
type WalkError struct {
	BotID       string
	ConnectorID string
	Page        int
	Result      coze.Result
	Err         error
}

func (e *WalkError) Error() string {
	return fmt.Sprintf("discovery: listing bot %s (connector %s) stopped at page %d: %v", e.BotID, e.ConnectorID, e.Page, e.Err)
}

func (e *WalkError) Unwrap() error { return e.Err }

// Walk reads every page of q's bot and connector, from q.Page (default 1)
// on, in q.Order (default ascending creation time), and calls each with
// every page's conversations, in order. It stops at the first error of
// each or of the API, after retrying a page that got a transient or
// rate-limited answer; an auth or permanent answer is not retried (the
// caller's identity cannot list this bot). The listing says what was read
// either way.
func (w *Walker) Walk(ctx context.Context, q coze.ListQuery, each func([]coze.Conversation) error) (Listing, error) {
	return w.WalkPages(ctx, q, func(p PageRead) error { return each(p.Conversations) })
}

// PageRead is one page a walk read: its number, its conversations and the
// log id of the call that read it (what proves that a conversation was
// listed, and when).
type PageRead struct {
	Number        int
	Conversations []coze.Conversation
	LogID         string
}

// WalkPages is [Walker.Walk] with each page's number and log id.
func (w *Walker) WalkPages(ctx context.Context, q coze.ListQuery, each func(PageRead) error) (Listing, error) {
	if w.Lister == nil {
		return Listing{}, errors.New("discovery: Walker.Lister is required")
	}
	if q.Page == 0 {
		q.Page = 1
	}
	listing := Listing{BotID: q.BotID, ConnectorID: q.ConnectorID}
	if listing.ConnectorID == "" {
		listing.ConnectorID = coze.ConnectorAPI
	}
	for pages := 0; ; pages++ {
		if pages >= MaxPages {
			return listing, &WalkError{BotID: q.BotID, ConnectorID: listing.ConnectorID, Page: q.Page,
				Err: fmt.Errorf("more than %d pages: the list does not end", MaxPages)}
		}
		page, res, err := w.page(ctx, q)
		if res.LogID != "" {
			listing.LogIDs = append(listing.LogIDs, res.LogID)
		}
		if err != nil {
			return listing, &WalkError{BotID: q.BotID, ConnectorID: listing.ConnectorID, Page: q.Page, Result: res, Err: err}
		}
		listing.Pages++
		listing.Found += len(page.Conversations)
		if len(page.Conversations) > 0 {
			if err := each(PageRead{Number: q.Page, Conversations: page.Conversations, LogID: res.LogID}); err != nil {
				return listing, err
			}
		}
		if !page.HasMore || len(page.Conversations) == 0 {
			return listing, nil
		}
		q.Page++
	}
}

// page reads one page, retrying what is worth retrying.
func (w *Walker) page(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error) {
	attempts := w.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	var (
		page coze.Page
		res  coze.Result
		err  error
	)
	for n := range attempts {
		page, res, err = w.call(ctx, q)
		if err == nil || !retryable(res.Class) || n == attempts-1 {
			return page, res, err
		}
		if err := sleep(ctx, w.wait(n, res)); err != nil {
			return page, res, err
		}
	}
	return page, res, err
}

// call makes one list call within the budget.
func (w *Walker) call(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error) {
	if w.Budget == nil {
		return w.Lister.ListConversations(ctx, q)
	}
	_, release, err := w.Budget.Acquire(ctx)
	if err != nil {
		return coze.Page{}, coze.Result{Class: coze.ClassTransient, Err: err}, err
	}
	page, res, err := w.Lister.ListConversations(ctx, q)
	release()
	_ = w.Budget.Observe(context.WithoutCancel(ctx), res) // the budget learns what it can; a Redis error costs only that
	return page, res, err
}

// retryable reports whether a page that got class is worth trying again.
func retryable(class coze.Class) bool {
	switch class {
	case coze.ClassTransient, coze.ClassRateLimited, coze.ClassUnknown:
		return true
	}
	return false
}

// wait is the pause before try n+1: Retry-After when the API gave one,
// else full jitter on an exponential backoff.
func (w *Walker) wait(n int, res coze.Result) time.Duration {
	if res.RetryAfter > 0 {
		return res.RetryAfter
	}
	base, ceiling := w.Backoff, w.BackoffCap
	if base <= 0 {
		base = DefaultBackoff
	}
	if ceiling < base {
		ceiling = max(DefaultBackoffCap, base)
	}
	d := base << min(n, 20)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	return rand.N(d) + 1
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
