package sweep_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/sweep"
	"github.com/coze-eraser/coze-eraser/tasks"
)

const (
	botA = "7379996104700000001"
	botB = "7379996104700000002"
)

// now is the sweeps' clock: half a second past a whole second, so that a
// cutoff not truncated to the second would show.
var now = time.Unix(1_800_000_000, 500_000_000)

// bundle is a test's Redis, fake API and sweeper.
type bundle struct {
	ctx     context.Context
	rdb     *redis.Client
	api     *cozetest.Server
	client  *coze.Client
	sweeper *sweep.Sweeper
}

func setup(t *testing.T) *bundle {
	t.Helper()
	rdb := redistest.Start(t).Client()
	api := cozetest.NewServer()
	t.Cleanup(api.Close)
	client, err := coze.NewClient(api.URL, coze.StaticToken("pat_sweep"), coze.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	enq := enqueue.NewClient(rdb)
	return &bundle{ctx: context.Background(), rdb: rdb, api: api, client: client,
		sweeper: &sweep.Sweeper{Lister: client, Enqueue: enq, Now: func() time.Time { return now }, Backoff: time.Millisecond}}
}

// id is the i-th test conversation id.
func id(i int) string { return fmt.Sprintf("73799961047%08d", i) }

// queued returns the conversation ids with a task in queue, sorted. It
// first feeds the queue all its ready ids, as a worker's feeder would: an
// enqueue (or a release) leaves ids in the ledger, and only a batch in the
// queue's feed gets tasks; a held one gets none.
func (b *bundle) queued(t *testing.T, queue string) []string {
	t.Helper()
	if _, err := enqueue.NewClient(b.rdb).Feed(b.ctx, queue, 1<<30); err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspectorFromRedisClient(b.rdb)
	var out []string
	for page := 1; ; page++ {
		ts, err := inspector.ListPendingTasks(queue, asynq.Page(page), asynq.PageSize(100))
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return nil
			}
			t.Fatal(err)
		}
		for _, task := range ts {
			p, err := tasks.ParsePayload(task.Payload)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.ConversationID)
		}
		if len(ts) < 100 {
			break
		}
	}
	slices.Sort(out)
	return out
}

func (b *bundle) deletes() int {
	n := 0
	for _, c := range b.api.Calls() {
		if c.Method == "DELETE" {
			n++
		}
	}
	return n
}

// TestSweepByCreationTime is acceptance point 4: exactly the conversations
// created before the cutoff are queued, to the second (cutoff-1s goes,
// the cutoff itself and cutoff+1s stay), the walk stops at the cutoff, and
// a dry run reports the same set and queues and deletes nothing.
func TestSweepByCreationTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	olderThan := 90 * 24 * time.Hour
	cutoff := now.Add(-olderThan).Truncate(time.Second)
	var want []string
	for i := range 120 {
		c := cozetest.Conversation{ID: id(i), BotID: botA, CreatedAt: cutoff.Add(-time.Duration(120-i) * time.Hour)}
		b.api.AddConversations(c)
		want = append(want, c.ID)
	}
	b.api.AddConversations(
		cozetest.Conversation{ID: id(200), BotID: botA, CreatedAt: cutoff.Add(-time.Second)},
		cozetest.Conversation{ID: id(201), BotID: botA, CreatedAt: cutoff},
		cozetest.Conversation{ID: id(202), BotID: botA, CreatedAt: cutoff.Add(time.Second)},
		// Not this sweep's: another bot, the Chat SDK channel.
		cozetest.Conversation{ID: id(300), BotID: botB, CreatedAt: cutoff.Add(-time.Hour)},
		cozetest.Conversation{ID: id(301), BotID: botA, ConnectorID: cozetest.ConnectorChatSDK, CreatedAt: cutoff.Add(-time.Hour)},
	)
	for i := range 60 {
		b.api.AddConversations(cozetest.Conversation{ID: id(400 + i), BotID: botA, CreatedAt: cutoff.Add(time.Duration(i+2) * time.Second)})
	}
	want = append(want, id(200))
	slices.Sort(want)
	spec := sweep.Spec{BotIDs: []string{botA}, OlderThan: olderThan}

	var dry []sweep.Match
	res, err := b.sweeper.Run(b.ctx, spec, sweep.Options{DryRun: true, Batch: "dry", OnMatch: func(m sweep.Match) { dry = append(dry, m) }})
	if err != nil {
		t.Fatal(err)
	}
	// 121 older, then the one at the cutoff: the third page stops the walk
	// (183 conversations would take four).
	if res.Matched != 121 || len(dry) != 121 || res.Listings[0].Pages != 3 || res.Listed != 150 || !res.Cutoff.Equal(cutoff) {
		t.Fatalf("dry run: %+v, %d matches", res, len(dry))
	}
	if got := lastLine(res.String()); got != "listed=150 matched=121 dry_run=true" {
		t.Errorf("dry run line %q", got)
	}
	if m := dry[120]; m.ID != id(200) || m.BotID != botA || m.ConnectorID != "1024" || !m.CreatedAt.Equal(cutoff.Add(-time.Second)) || !m.UpdatedAt.Equal(m.CreatedAt) {
		t.Errorf("last match %+v", m)
	}
	if _, ok, _ := ledger.New(b.rdb).Batch(b.ctx, "dry"); ok || b.deletes() != 0 || len(b.queued(t, "default")) != 0 {
		t.Fatalf("a dry run created a batch, queued or deleted (%d DELETE calls)", b.deletes())
	}

	res, err = b.sweeper.Run(b.ctx, spec, sweep.Options{Batch: "retention-1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.String() != "listed=150 matched=121 enqueued=121 duplicate=0 batch=retention-1" {
		t.Errorf("result %s", res)
	}
	if got := b.queued(t, "default"); !slices.Equal(got, want) {
		t.Errorf("queued %d ids, want %d: missing %v, extra %v", len(got), len(want), diff(want, got), diff(got, want))
	}
	if bt, ok, _ := ledger.New(b.rdb).Batch(b.ctx, "retention-1"); !ok || bt.Total != 121 {
		t.Errorf("batch %+v", bt)
	}
	// Again into the same batch: every match is a duplicate.
	if res, err = b.sweeper.Run(b.ctx, spec, sweep.Options{Batch: "retention-1"}); err != nil || res.Enqueued != 0 || res.Duplicate != 121 {
		t.Errorf("second run: %s, %v", res, err)
	}
	// With the Chat SDK connector too, and the other bot.
	spec.BotIDs, spec.ConnectorIDs = []string{botA, botB}, []string{"1024", "999"}
	res, err = b.sweeper.Run(b.ctx, spec, sweep.Options{DryRun: true})
	if err != nil || res.Matched != 123 || len(res.Listings) != 4 {
		t.Errorf("two bots, two connectors: %+v, %v", res, err)
	}
}

func lastLine(s string) string { return s[strings.LastIndexByte("\n"+s, '\n'):] }

// diff returns what a holds and b does not.
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestSweepByUpdateTimeAndMeta: by update time every page is read (the
// list is ordered by creation) and updated_at is compared, to the second;
// the meta filter keeps only exact matches of every key.
func TestSweepByUpdateTimeAndMeta(t *testing.T) {
	t.Parallel()
	b := setup(t)
	olderThan := time.Hour
	cutoff := now.Add(-olderThan).Truncate(time.Second)
	long := cutoff.Add(-100 * 24 * time.Hour)
	var want []string
	for i := range 130 {
		c := cozetest.Conversation{ID: id(i), BotID: botA, CreatedAt: long.Add(time.Duration(i) * time.Second)}
		switch i % 3 {
		case 0: // updated long ago: goes
			c.UpdatedAt = cutoff.Add(-time.Minute)
			want = append(want, c.ID)
		case 1: // updated just now: stays
			c.UpdatedAt = cutoff.Add(time.Minute)
		case 2: // updated at the cutoff: stays
			c.UpdatedAt = cutoff
		}
		b.api.AddConversations(c)
	}
	b.api.AddConversations(cozetest.Conversation{ID: id(500), BotID: botA, CreatedAt: long, UpdatedAt: cutoff.Add(-time.Second)})
	want = append(want, id(500))
	slices.Sort(want)
	spec := sweep.Spec{BotIDs: []string{botA}, OlderThan: olderThan, By: sweep.ByUpdated, Queue: "retention"}
	res, err := b.sweeper.Run(b.ctx, spec, sweep.Options{Batch: "by-updated"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Listed != 131 || res.Listings[0].Pages != 3 || b.api.ListCalls() != 3 || res.Enqueued != len(want) {
		t.Errorf("by updated: %+v, %d list calls", res, b.api.ListCalls())
	}
	if got := b.queued(t, "retention"); !slices.Equal(got, want) {
		t.Errorf("queued %d, want %d: missing %v, extra %v", len(got), len(want), diff(want, got), diff(got, want))
	}

	// The meta filter.
	m := setup(t)
	old := cutoff.Add(-time.Hour)
	m.api.AddConversations(
		cozetest.Conversation{ID: id(1), BotID: botA, CreatedAt: old, Meta: map[string]string{"tier": "free", "region": "eu"}},
		cozetest.Conversation{ID: id(2), BotID: botA, CreatedAt: old, Meta: map[string]string{"tier": "free"}},
		cozetest.Conversation{ID: id(3), BotID: botA, CreatedAt: old, Meta: map[string]string{"tier": "paid", "region": "eu"}},
		cozetest.Conversation{ID: id(4), BotID: botA, CreatedAt: old},
		cozetest.Conversation{ID: id(5), BotID: botA, CreatedAt: old, Meta: map[string]string{"tier": "Free", "region": "eu"}},
		cozetest.Conversation{ID: id(6), BotID: botA, CreatedAt: now, Meta: map[string]string{"tier": "free", "region": "eu"}},
	)
	spec = sweep.Spec{BotIDs: []string{botA}, OlderThan: olderThan, Meta: map[string]string{"tier": "free", "region": "eu"}}
	if res, err := m.sweeper.Run(m.ctx, spec, sweep.Options{Batch: "meta"}); err != nil || res.Matched != 1 || res.Listed != 6 {
		t.Fatalf("meta: %+v, %v", res, err)
	}
	if got := m.queued(t, "default"); !slices.Equal(got, []string{id(1)}) {
		t.Errorf("meta filter queued %v", got)
	}
}

// failingLister fails the list call of one bot's page, as a revoked
// token does.
type failingLister struct {
	discovery.Lister
	bot  string
	page int
}

func (f failingLister) ListConversations(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error) {
	if q.BotID == f.bot && q.Page == f.page {
		res := coze.Result{Class: coze.ClassAuth, Code: 4100, HasCode: true, LogID: "L-fail"}
		return coze.Page{}, res, &coze.Error{Op: "list", Result: res}
	}
	return f.Lister.ListConversations(ctx, q)
}

// TestSweepWalkFailure: a walk that fails stops neither the other walks
// nor the release of what was found; the error names the bot, connector
// and page.
func TestSweepWalkFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	old := now.Add(-48 * time.Hour)
	for i := range 70 {
		b.api.AddConversations(cozetest.Conversation{ID: id(i), BotID: botA, CreatedAt: old.Add(time.Duration(i) * time.Second)})
		b.api.AddConversations(cozetest.Conversation{ID: id(100 + i), BotID: botB, CreatedAt: old.Add(time.Duration(i) * time.Second)})
	}
	b.sweeper.Lister = failingLister{Lister: b.client, bot: botA, page: 2}
	spec := sweep.Spec{BotIDs: []string{botA, botB}, OlderThan: 24 * time.Hour}
	res, err := b.sweeper.Run(b.ctx, spec, sweep.Options{Batch: "half"})
	var walkErr *discovery.WalkError
	if !errors.As(err, &walkErr) || walkErr.BotID != botA || walkErr.Page != 2 ||
		!strings.Contains(err.Error(), "bot "+botA+" (connector 1024) stopped at page 2") {
		t.Fatalf("error %v", err)
	}
	if res.Matched != 120 || res.Enqueued != 120 || len(b.queued(t, "default")) != 120 {
		t.Errorf("what was found before and after the failure is released: %+v, %d queued", res, len(b.queued(t, "default")))
	}
}

// TestSweepStoppedHoldsWhatItFound: a sweep stopped by its context queues
// nothing; what it held stays pending in the batch, for the janitor (or a
// run into the same batch) to release.
func TestSweepStoppedHoldsWhatItFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 70 {
		b.api.AddConversations(cozetest.Conversation{ID: id(i), BotID: botA, CreatedAt: now.Add(-48*time.Hour + time.Duration(i)*time.Second)})
	}
	ctx, cancel := context.WithCancel(b.ctx)
	b.sweeper.Lister = cancelLister{Lister: b.client, cancel: cancel}
	_, err := b.sweeper.Run(ctx, sweep.Spec{BotIDs: []string{botA}, OlderThan: time.Hour}, sweep.Options{Batch: "stopped"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	bt, ok, _ := ledger.New(b.rdb).Batch(b.ctx, "stopped")
	if !ok || bt.Total != 50 || bt.Pending() != 50 || len(b.queued(t, "default")) != 0 {
		t.Fatalf("batch %+v, %d queued", bt, len(b.queued(t, "default")))
	}
	b.sweeper.Lister = b.client
	// The second run adds the 20 it had not reached, and releases all 70.
	if res, err := b.sweeper.Run(b.ctx, sweep.Spec{BotIDs: []string{botA}, OlderThan: time.Hour}, sweep.Options{Batch: "stopped"}); err != nil ||
		res.Enqueued != 20 || res.Duplicate != 50 {
		t.Errorf("run again: %s, %v", res, err)
	}
	if n := len(b.queued(t, "default")); n != 70 {
		t.Errorf("%d tasks after the second run, want the 70 held", n)
	}
}

// cancelLister cancels the sweep's context after its first page.
type cancelLister struct {
	discovery.Lister
	cancel func()
}

func (c cancelLister) ListConversations(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error) {
	if q.Page > 1 {
		c.cancel()
		return coze.Page{}, coze.Result{Class: coze.ClassTransient, Err: ctx.Err()}, context.Canceled
	}
	return c.Lister.ListConversations(ctx, q)
}

// TestSpecValidate: each rule's error names its field.
func TestSpecValidate(t *testing.T) {
	t.Parallel()
	good := sweep.Spec{BotIDs: []string{botA}, OlderThan: time.Hour}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		edit  func(*sweep.Spec)
		field string
	}{
		{func(s *sweep.Spec) { s.Name = "a b" }, "name"},
		{func(s *sweep.Spec) { s.Name = strings.Repeat("n", 65) }, "name"},
		{func(s *sweep.Spec) { s.Profile = "p:q" }, "profile"},
		{func(s *sweep.Spec) { s.BotIDs = nil }, "bot_ids"},
		{func(s *sweep.Spec) { s.BotIDs = []string{"bot-1"} }, "bot_ids"},
		{func(s *sweep.Spec) { s.BotIDs = []string{botA, botA} }, "bot_ids"},
		{func(s *sweep.Spec) { s.ConnectorIDs = []string{"1025"} }, "connector_ids"},
		{func(s *sweep.Spec) { s.OlderThan = 0 }, "older_than"},
		{func(s *sweep.Spec) { s.By = "deleted" }, "by"},
		{func(s *sweep.Spec) { s.Meta = map[string]string{"": "x"} }, "meta"},
		{func(s *sweep.Spec) { s.Queue = "callbacks" }, "queue"},
		{func(s *sweep.Spec) { s.Note = "two\nlines" }, "note"},
		{func(s *sweep.Spec) { s.DueIn = -time.Hour }, "due_in"},
		{func(s *sweep.Spec) { s.DueIn = 10000 * time.Hour }, "due_in"},
	} {
		s := good
		tt.edit(&s)
		var fe *sweep.FieldError
		if err := s.Validate(); !errors.As(err, &fe) || fe.Field != tt.field || !strings.HasPrefix(err.Error(), tt.field+": ") {
			t.Errorf("%+v: error %v, want one naming %s", s, err, tt.field)
		}
	}
	if got := sweep.BatchName(strings.Repeat("n", sweep.MaxNameLen), now); tasks.ValidateBatch(got) != nil || got[sweep.MaxNameLen:] != "-20270115T080000Z" {
		t.Errorf("batch name %q", got)
	}
}

// pageLister answers one fixed page, whatever the query: a double for an
// API that answers created_at or updated_at 0.
type pageLister []coze.Conversation

func (p pageLister) ListConversations(context.Context, coze.ListQuery) (coze.Page, coze.Result, error) {
	return coze.Page{Conversations: p}, coze.Result{}, nil
}

// TestSweepKeepsUndatedConversations: a conversation whose compared time
// is missing or 0 (read as 1970) is never matched, by creation or by
// update, and is counted as undated; the walk by creation goes past it.
func TestSweepKeepsUndatedConversations(t *testing.T) {
	t.Parallel()
	b := setup(t)
	epoch := time.Unix(0, 0).UTC() // what coze makes of created_at 0 or missing
	old := now.Add(-48 * time.Hour)
	b.sweeper.Lister = pageLister{
		{ID: id(1), CreatedAt: epoch, UpdatedAt: epoch},
		{ID: id(2), CreatedAt: epoch, UpdatedAt: old},
		{ID: id(3), CreatedAt: old, UpdatedAt: epoch},
		{ID: id(4), CreatedAt: old, UpdatedAt: old},
		{ID: id(5), CreatedAt: now, UpdatedAt: now},
	}
	for _, tc := range []struct {
		by   sweep.By
		want []string
	}{
		{sweep.ByCreated, []string{id(3), id(4)}},
		{sweep.ByUpdated, []string{id(2), id(4)}},
	} {
		var got []string
		res, err := b.sweeper.Run(b.ctx, sweep.Spec{BotIDs: []string{botA}, OlderThan: time.Hour, By: tc.by},
			sweep.Options{DryRun: true, OnMatch: func(m sweep.Match) { got = append(got, m.ID) }})
		if err != nil || !slices.Equal(got, tc.want) || res.Matched != 2 || res.Undated != 2 || res.Listed != 5 {
			t.Errorf("by %s: matched %v (%d), undated %d, listed %d, err %v; want %v, 2 undated",
				tc.by, got, res.Matched, res.Undated, res.Listed, err, tc.want)
		}
	}
	res, err := b.sweeper.Run(b.ctx, sweep.Spec{BotIDs: []string{botA}, OlderThan: time.Hour}, sweep.Options{Batch: "undated"})
	if got := b.queued(t, "default"); err != nil || res.Undated != 2 || !slices.Equal(got, []string{id(3), id(4)}) {
		t.Errorf("queued %v, undated %d, err %v; want only the dated old ones", got, res.Undated, err)
	}
}
