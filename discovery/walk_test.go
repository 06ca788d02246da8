package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/ratelimit"
)

const bot = "7379996104700000001"

// setup returns a fake holding n conversations of bot (and a few of
// another bot and of the Chat SDK connector), and a client of it.
func setup(t *testing.T, n int, opts ...cozetest.Option) (*cozetest.Server, *coze.Client) {
	t.Helper()
	api := cozetest.NewServer(opts...)
	t.Cleanup(api.Close)
	base := time.Unix(1_700_000_000, 0)
	for i := range n {
		api.AddConversations(cozetest.Conversation{ID: fmt.Sprintf("7379996104%09d", i), BotID: bot, CreatedAt: base.Add(time.Duration(i) * time.Second)})
	}
	api.AddConversations(
		cozetest.Conversation{ID: "7379996109000000001", BotID: "7379996104700000002", CreatedAt: base},
		cozetest.Conversation{ID: "7379996109000000002", BotID: bot, ConnectorID: cozetest.ConnectorChatSDK, CreatedAt: base},
	)
	c, err := coze.NewClient(api.URL, coze.StaticToken("pat_walk"), coze.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return api, c
}

// collect walks q and returns every id, in order.
func collect(t *testing.T, w *discovery.Walker, q coze.ListQuery) ([]string, discovery.Listing, error) {
	t.Helper()
	var ids []string
	listing, err := w.Walk(context.Background(), q, func(cs []coze.Conversation) error {
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		return nil
	})
	return ids, listing, err
}

func TestWalkReadsEveryPage(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 50, 51, 130} {
		api, c := setup(t, n)
		ids, listing, err := collect(t, &discovery.Walker{Lister: c}, coze.ListQuery{BotID: bot})
		if err != nil {
			t.Fatal(err)
		}
		wantPages := max(1, (n+49)/50)
		if n > 0 && n%50 == 0 {
			wantPages = n/50 + 1 // has_more until a page comes back short or empty
		}
		if len(ids) != n || listing.Found != n || listing.Pages < (n+49)/50 || listing.Pages > wantPages ||
			len(listing.LogIDs) != listing.Pages || listing.ConnectorID != "1024" {
			t.Errorf("n=%d: %d ids, listing %+v", n, len(ids), listing)
		}
		for i, id := range ids {
			if id != fmt.Sprintf("7379996104%09d", i) {
				t.Errorf("n=%d: id %d is %s: not in creation order", n, i, id)
				break
			}
		}
		if api.ListCalls() != listing.Pages {
			t.Errorf("n=%d: %d list calls for %d pages", n, api.ListCalls(), listing.Pages)
		}
	}
}

// TestWalkRetriesWhatIsWorthIt: transient and rate-limited answers are
// tried again (Retry-After honoured) and the walk finishes with every id;
// an auth answer stops it at once with a WalkError naming the page, and
// what was read before stays read.
func TestWalkRetriesWhatIsWorthIt(t *testing.T) {
	t.Parallel()
	api, c := setup(t, 120)
	api.ScriptList(cozetest.BadGateway, cozetest.InternalError, cozetest.SystemLimit)
	w := &discovery.Walker{Lister: c, Backoff: time.Millisecond, BackoffCap: 5 * time.Millisecond}
	ids, listing, err := collect(t, w, coze.ListQuery{BotID: bot})
	if err != nil || len(ids) != 120 {
		t.Fatalf("%d ids, %v", len(ids), err)
	}
	if len(listing.LogIDs) < listing.Pages {
		t.Errorf("log ids %d for %d pages", len(listing.LogIDs), listing.Pages)
	}

	ids = nil
	listing, err = w.Walk(context.Background(), coze.ListQuery{BotID: bot}, func(cs []coze.Conversation) error {
		for _, conv := range cs {
			ids = append(ids, conv.ID)
		}
		api.ScriptList(cozetest.AuthInvalid) // the token is revoked after page 1
		return nil
	})
	var we *discovery.WalkError
	if !errors.As(err, &we) || we.Page != 2 || we.Result.Class != coze.ClassAuth || len(ids) != 50 || listing.Pages != 1 {
		t.Errorf("auth on page 2: err %v, %d ids, listing %+v", err, len(ids), listing)
	}
}

// TestWalkGivesUpAfterItsAttempts: a page that keeps failing ends the walk
// after Attempts tries, with the last answer.
func TestWalkGivesUpAfterItsAttempts(t *testing.T) {
	t.Parallel()
	api, c := setup(t, 10)
	api.ScriptList(cozetest.BadGateway, cozetest.BadGateway, cozetest.BadGateway)
	w := &discovery.Walker{Lister: c, Attempts: 3, Backoff: time.Millisecond}
	_, _, err := collect(t, w, coze.ListQuery{BotID: bot})
	var we *discovery.WalkError
	if !errors.As(err, &we) || we.Result.HTTPStatus != 502 || api.ListCalls() != 3 {
		t.Errorf("err %v after %d calls; want a WalkError after 3", err, api.ListCalls())
	}
}

// TestWalkSeesEveryIDWhenNothingIsDeletedMeanwhile: the reason to list
// first. Deleting each page's ids as it comes skips some (pages shift); a
// walk that only records them finds all.
func TestWalkSeesEveryIDWhenNothingIsDeletedMeanwhile(t *testing.T) {
	t.Parallel()
	_, c := setup(t, 200)
	w := &discovery.Walker{Lister: c}
	deleted := 0
	_, err := w.Walk(context.Background(), coze.ListQuery{BotID: bot}, func(cs []coze.Conversation) error {
		for _, conv := range cs {
			if _, err := c.DeleteConversation(context.Background(), conv.ID); err == nil {
				deleted++
			}
		}
		return nil
	})
	if err != nil || deleted >= 200 {
		t.Fatalf("deleting while paging deleted %d of 200 (%v): the fake's pages do not shift, so this test proves nothing", deleted, err)
	}
	api2, c2 := setup(t, 200)
	ids, _, err := collect(t, &discovery.Walker{Lister: c2}, coze.ListQuery{BotID: bot})
	if err != nil || len(ids) != 200 || api2.ListCalls() != 4 {
		t.Errorf("listing first: %d ids in %d calls (%v)", len(ids), api2.ListCalls(), err)
	}
}

// budget counts acquires and observed classes.
type budget struct {
	acquired int
	observed []coze.Class
}

func (b *budget) Acquire(context.Context) (time.Duration, func(), error) {
	b.acquired++
	return 0, func() {}, nil
}

func (b *budget) Observe(_ context.Context, res coze.Result) error {
	b.observed = append(b.observed, res.Class)
	return nil
}

// TestWalkDrawsOnTheBudget: every list call takes a slot of the profile's
// budget and reports its answer (a 429 included, which cuts the rate).
func TestWalkDrawsOnTheBudget(t *testing.T) {
	t.Parallel()
	api, c := setup(t, 60)
	api.ScriptList(cozetest.RateLimited)
	b := &budget{}
	if _, _, err := collect(t, &discovery.Walker{Lister: c, Budget: b, Backoff: time.Millisecond}, coze.ListQuery{BotID: bot}); err != nil {
		t.Fatal(err)
	}
	if b.acquired != api.ListCalls() || len(b.observed) != b.acquired || b.observed[0] != coze.ClassRateLimited {
		t.Errorf("acquired %d, observed %v, calls %d", b.acquired, b.observed, api.ListCalls())
	}
}

func TestWalkStopsWhenEachFails(t *testing.T) {
	t.Parallel()
	_, c := setup(t, 120)
	boom := errors.New("disk full")
	listing, err := (&discovery.Walker{Lister: c}).Walk(context.Background(), coze.ListQuery{BotID: bot},
		func([]coze.Conversation) error { return boom })
	if !errors.Is(err, boom) || listing.Pages != 1 {
		t.Errorf("err %v, listing %+v", err, listing)
	}
}

// The project's client and rate budget are what a Walker takes.
var (
	_ discovery.Lister = (*coze.Client)(nil)
	_ discovery.Budget = (*ratelimit.Limiter)(nil)
)
