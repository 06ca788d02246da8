package ledger_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// verifyBatch opens a data subject's batch named name holding ids, with a
// callback URL, and seals it.
func (b bundle) verifyBatch(t *testing.T, name string, ids ...string) {
	t.Helper()
	b.open(t, ledger.BatchSpec{Name: name, Verify: true, CallbackURL: "http://127.0.0.1:1/cb", TTL: 48 * time.Hour}, ids...)
}

// requests reads the verification outbox, sorted.
func (b bundle) requests(t *testing.T) []ledger.VerifyRequest {
	t.Helper()
	got, err := b.ledger.PendingVerifications(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y ledger.VerifyRequest) int {
		return strings.Compare(x.Batch+"/"+strconv.Itoa(x.Round), y.Batch+"/"+strconv.Itoa(y.Round))
	})
	return got
}

func (b bundle) callbacks(t *testing.T) int {
	t.Helper()
	pending, err := b.outbox().PendingCallbacks(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(pending)
}

func (b bundle) isOpen(t *testing.T, name string) bool {
	t.Helper()
	names, err := b.ledger.OpenBatchNames(b.ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(names, name)
}

// TestAVerifiedBatchWaitsForItsVerification: a data subject's batch whose
// ids all have an outcome does not complete: it is verifying, still open
// (and overdue past its due time), and asks for round 1 once, however
// often the janitor looks.
func TestAVerifiedBatchWaitsForItsVerification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "s", "1", "2", "3")
	if v := b.batch(t, "s").Verification; v.State != ledger.VerificationPending || v.Round != 0 {
		t.Errorf("new batch's verification %+v, want pending, round 0", v)
	}
	b.record(t, "s", "1", ledger.Deleted, "L1")
	b.record(t, "s", "2", ledger.NotFound, "L2")
	if r := b.record(t, "s", "3", ledger.Failed, "L3"); len(r.Completed) != 0 {
		t.Errorf("completed before its verification: %+v", r)
	}
	b.record(t, "s", "1", ledger.Deleted, "dup")
	for range 2 {
		if done, err := b.ledger.CompleteIfDone(b.ctx, "s", b.now.Add(time.Minute)); done || err != nil {
			t.Fatalf("CompleteIfDone: %v %v", done, err)
		}
	}
	if got := b.requests(t); !slices.Equal(got, []ledger.VerifyRequest{{Batch: "s", Round: 1}}) {
		t.Errorf("outbox %+v, want s round 1 once", got)
	}
	bt := b.batch(t, "s")
	if s := bt.State(b.now); s != ledger.StateVerifying {
		t.Errorf("state %s, want verifying", s)
	}
	if s := bt.State(bt.DueAt.Add(time.Second)); s != ledger.StateOverdue {
		t.Errorf("state past due %s, want overdue", s)
	}
	if !b.isOpen(t, "s") || b.callbacks(t) != 0 || bt.Completions != 0 {
		t.Errorf("open %v, %d callbacks, %d completions: want open, none, none", b.isOpen(t, "s"), b.callbacks(t), bt.Completions)
	}
	if stats, _ := b.ledger.OpenStats(b.ctx, b.now); stats.Open != 1 || stats.Complete != 0 {
		t.Errorf("open stats %+v, want it open", stats)
	}

	if err := b.ledger.VerificationQueued(b.ctx, ledger.VerifyRequest{Batch: "s", Round: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ledger.CompleteIfDone(b.ctx, "s", b.now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := b.requests(t); len(got) != 0 {
		t.Errorf("outbox %+v after the round was queued: a round is asked for once", got)
	}
}

// TestAPlainBatchHasNoVerification: a batch without Verify completes as it
// always did, and its verification state is none.
func TestAPlainBatchHasNoVerification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "plain"}, "1")
	if r := b.record(t, "plain", "1", ledger.Deleted, "L"); len(r.Completed) != 1 {
		t.Errorf("not completed: %+v", r)
	}
	bt := b.batch(t, "plain")
	if bt.Verification != (ledger.Verification{}) || bt.State(b.now) != ledger.StateComplete || len(b.requests(t)) != 0 {
		t.Errorf("verification %+v, state %s, outbox %+v", bt.Verification, bt.State(b.now), b.requests(t))
	}
	if _, err := b.ledger.MarkStillListed(b.ctx, "plain", 1, []string{"1"}, "L", b.now); err == nil {
		t.Error("MarkStillListed on a batch that is not verified: no error")
	}
}

// TestMarkStillListed: each finished id moves its tally once; pending ids,
// ids not in the batch and ids that are not ids are skipped; a second
// round, or a retried task, changes nothing.
func TestMarkStillListed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "m", "1", "2", "3", "4")
	b.record(t, "m", "1", ledger.Deleted, "D1")
	b.record(t, "m", "2", ledger.NotFound, "D2")
	b.record(t, "m", "3", ledger.Retrying, "D3a")
	b.record(t, "m", "3", ledger.Failed, "D3")
	ids := []string{"1", "2", "3", "4", "99", "abc", "1"}
	at := b.now.Add(time.Hour)
	n, err := b.ledger.MarkStillListed(b.ctx, "m", 1, ids, "LIST|1", at)
	if err != nil || n != 3 {
		t.Fatalf("MarkStillListed = %d, %v; want 3", n, err)
	}
	check := func(when string) {
		t.Helper()
		bt := b.batch(t, "m")
		if bt.Deleted != 0 || bt.NotFound != 0 || bt.Failed != 3 || bt.Pending() != 1 || bt.Total != 4 || bt.Verification.StillListed != 3 {
			t.Errorf("%s: tallies %+v, verification %+v", when, bt, bt.Verification)
		}
		for _, id := range []string{"1", "2", "3"} {
			e, _, _ := b.ledger.Entry(b.ctx, "m", id)
			if e.Outcome != ledger.Failed || e.Code != ledger.StillListedCode || e.LogID != "LIST/1" {
				t.Errorf("%s: entry %+v", when, e)
			}
		}
		if e, _, _ := b.ledger.Entry(b.ctx, "m", "4"); e.Outcome != ledger.Pending {
			t.Errorf("%s: pending id's entry %+v", when, e)
		}
		if _, in, _ := b.ledger.Entry(b.ctx, "m", "99"); in {
			t.Errorf("%s: an id not in the batch joined it", when)
		}
	}
	check("first mark")
	f, ok, _ := b.ledger.Failure(b.ctx, "m", "2")
	if !ok || f.Outcome != ledger.Failed || f.Code != ledger.StillListedCode || f.LogID != "LIST/1" || f.Attempts != 1 ||
		f.Msg != "still listed (verification round 1; the DELETE answered not_found 4002: msg not_found)" || !f.LastAt.Equal(at) {
		t.Errorf("failure of 2: %+v", f)
	}
	if f, _, _ := b.ledger.Failure(b.ctx, "m", "3"); f.Attempts != 2 || !strings.Contains(f.Msg, "answered failed 5000: msg failed") {
		t.Errorf("failure of 3: %+v", f)
	}
	if f, ok, _ := b.ledger.Failure(b.ctx, "m", "1"); !ok || f.Queue != "default" || f.Batch != "m" ||
		f.Msg != "still listed (verification round 1; the DELETE answered deleted 0)" || !f.FirstAt.Equal(at) {
		t.Errorf("failure of the deleted id 1: %+v %v", f, ok)
	}
	if n, err := b.ledger.MarkStillListed(b.ctx, "m", 1, ids, "LIST2", at); n != 0 || err != nil {
		t.Errorf("retried mark = %d, %v; want 0", n, err)
	}
	if n, err := b.ledger.MarkStillListed(b.ctx, "m", 2, ids, "LIST3", at); n != 0 || err != nil {
		t.Errorf("round 2 mark = %d, %v; want 0", n, err)
	}
	check("marked again")
	if n, err := b.ledger.MarkStillListed(b.ctx, "m", 0, ids, "L", at); err == nil || n != 0 {
		t.Errorf("round 0: %d, %v; want an error", n, err)
	}
	if _, err := b.ledger.MarkStillListed(b.ctx, "m", 1, make([]string, 1001), "L", at); err == nil {
		t.Error("1001 ids: no error")
	}
	if n, err := b.ledger.MarkStillListed(b.ctx, "nope", 1, ids, "L", at); n != 0 || err != nil {
		t.Errorf("absent batch: %d, %v", n, err)
	}
}

// TestAFailingMsgIsCutWhole: the still-listed msg, with the DELETE's msg in
// it, stays within the msg bound and cuts no UTF-8 sequence.
func TestAFailingMsgIsCutWhole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "u", "1")
	if _, err := b.ledger.Record(b.ctx, ledger.Attempt{ConversationID: "1", Batch: "u", Queue: "default", Outcome: ledger.Failed,
		Code: 5000, HasCode: true, Msg: strings.Repeat("é", 300), LogID: "L", At: b.now}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ledger.MarkStillListed(b.ctx, "u", 1, []string{"1"}, "L", b.now); err != nil {
		t.Fatal(err)
	}
	f, _, _ := b.ledger.Failure(b.ctx, "u", "1")
	if len(f.Msg) > 512 || !strings.HasSuffix(f.Msg, "é)") || !strings.HasPrefix(f.Msg, "still listed (") {
		t.Errorf("msg of %d bytes: %q", len(f.Msg), f.Msg)
	}
}

// TestStartVerificationRoundRefusesDuplicates: only the next round starts,
// once.
func TestStartVerificationRoundRefusesDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "r", "1")
	b.record(t, "r", "1", ledger.Deleted, "L")
	for _, c := range []struct {
		round int
		want  bool
	}{{2, false}, {0, false}, {1, true}, {1, false}, {3, false}} {
		if got, err := b.ledger.StartVerificationRound(b.ctx, "r", c.round); got != c.want || err != nil {
			t.Errorf("start round %d = %v, %v; want %v", c.round, got, err, c.want)
		}
	}
	if v := b.batch(t, "r").Verification; v.Round != 1 || v.State != ledger.VerificationPending {
		t.Errorf("verification %+v, want round 1 pending", v)
	}
	b.open(t, ledger.BatchSpec{Name: "plain"}, "1")
	if ok, err := b.ledger.StartVerificationRound(b.ctx, "plain", 1); ok || err != nil {
		t.Errorf("a plain batch started a round: %v %v", ok, err)
	}
	if ok, err := b.ledger.StartVerificationRound(b.ctx, "nope", 1); ok || err != nil {
		t.Errorf("an absent batch started a round: %v %v", ok, err)
	}
}

// TestFinishVerificationCompletes: a round that finds nothing passes the
// batch and completes it (callback queued, open index left); a second
// finish changes nothing. Ids still listed, unverified conversations or a
// reason fail it, and it completes all the same.
func TestFinishVerificationCompletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	finishAt := b.now.Add(2 * time.Hour)
	for _, c := range []struct {
		name       string
		still      []string
		unverified int
		reason     string
		want       ledger.VerificationState
	}{
		{"pass", nil, 0, "", ledger.VerificationPassed},
		{"still", []string{"1"}, 0, "", ledger.VerificationFailed},
		{"unverified", nil, 2, "", ledger.VerificationFailed},
		{"reason", nil, 0, "listing failed: 500", ledger.VerificationFailed},
	} {
		b.verifyBatch(t, c.name, "1", "2")
		b.record(t, c.name, "1", ledger.Deleted, "L1")
		b.record(t, c.name, "2", ledger.NotFound, "L2")
		if len(c.still) > 0 {
			if _, err := b.ledger.MarkStillListed(b.ctx, c.name, 1, c.still, "LL", b.now); err != nil {
				t.Fatal(err)
			}
		}
		if done, err := b.ledger.FinishVerification(b.ctx, c.name, 2, 0, "", finishAt); done || err != nil {
			t.Errorf("%s: finish round 2 before round 1 = %v, %v", c.name, done, err)
		}
		done, err := b.ledger.FinishVerification(b.ctx, c.name, 1, c.unverified, c.reason, finishAt)
		if !done || err != nil {
			t.Fatalf("%s: finish = %v, %v; want completed", c.name, done, err)
		}
		bt := b.batch(t, c.name)
		v := bt.Verification
		if v.State != c.want || v.Round != 1 || v.Unverified != c.unverified || v.Reason != c.reason ||
			v.StillListed != len(c.still) || !v.At.Equal(finishAt) {
			t.Errorf("%s: verification %+v", c.name, v)
		}
		if bt.State(b.now) != ledger.StateComplete || bt.Completions != 1 || !bt.CompletedAt.Equal(finishAt) || b.isOpen(t, c.name) {
			t.Errorf("%s: state %s, completions %d, completed %v, open %v", c.name, bt.State(b.now), bt.Completions,
				bt.CompletedAt, b.isOpen(t, c.name))
		}
		if done, err := b.ledger.FinishVerification(b.ctx, c.name, 1, 0, "", finishAt); done || err != nil {
			t.Errorf("%s: second finish = %v, %v", c.name, done, err)
		}
		if got := b.batch(t, c.name); got.Verification != v || got.Completions != 1 {
			t.Errorf("%s: the second finish changed %+v into %+v", c.name, v, got.Verification)
		}
	}
	pending, err := b.outbox().PendingCallbacks(b.ctx)
	if err != nil || len(pending) != 4 {
		t.Fatalf("callbacks %+v, %v; want one per batch", pending, err)
	}
	for _, p := range pending {
		if p.N != 1 || !p.CompletedAt.Equal(finishAt) {
			t.Errorf("callback %+v", p)
		}
	}
	if got := b.requests(t); len(got) != 0 {
		t.Errorf("outbox %+v: a round that ended is no longer asked for", got)
	}
}

// TestFinishingWaitsForPendingIDs: a round that ends while ids of the
// batch are pending (a failures retry, a producer adding behind its
// listing, the new ids of another run of the round) proves nothing of
// them: it counts as run, and the next round, asked for once they finish,
// ends the verification.
func TestFinishingWaitsForPendingIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "w", "1")
	b.record(t, "w", "1", ledger.Deleted, "L")
	b.open(t, ledger.BatchSpec{Name: "w"}, "2")
	if done, err := b.ledger.FinishVerification(b.ctx, "w", 1, 0, "", b.now); done || err != nil {
		t.Fatalf("finish = %v, %v; want not completed (2 is pending)", done, err)
	}
	if bt := b.batch(t, "w"); bt.Verification.State != ledger.VerificationPending || bt.Verification.Round != 1 {
		t.Errorf("verification %+v, want pending after round 1", bt.Verification)
	}
	if r := b.record(t, "w", "2", ledger.Deleted, "L2"); len(r.Completed) != 0 {
		t.Errorf("completed by the last id without its verification: %+v", r)
	}
	if got := b.requests(t); !slices.Equal(got, []ledger.VerifyRequest{{Batch: "w", Round: 2}}) {
		t.Errorf("outbox %+v, want w round 2", got)
	}
	if done, err := b.ledger.FinishVerification(b.ctx, "w", 2, 0, "", b.now); !done || err != nil {
		t.Fatalf("round 2: %v, %v", done, err)
	}
	if bt := b.batch(t, "w"); bt.Verification.State != ledger.VerificationPassed || bt.State(b.now) != ledger.StateComplete {
		t.Errorf("verification %+v, state %s", bt.Verification, bt.State(b.now))
	}
}

// TestRetryDuringARoundIsVerified: an id found still listed, retried
// (reopened) while the next round runs, is not passed by that round.
func TestRetryDuringARoundIsVerified(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "x", "1", "2")
	b.record(t, "x", "1", ledger.Deleted, "L1")
	b.record(t, "x", "2", ledger.NotFound, "L2")
	if n, err := b.ledger.MarkStillListed(b.ctx, "x", 1, []string{"2"}, "LIST1", b.now); n != 1 || err != nil {
		t.Fatalf("mark: %d, %v", n, err)
	}
	if reopened, err := b.ledger.Reopen(b.ctx, "x", "2", ledger.Failed); !reopened || err != nil {
		t.Fatalf("reopen: %v, %v", reopened, err)
	}
	if done, _ := b.ledger.FinishVerification(b.ctx, "x", 1, 0, "", b.now); done {
		t.Fatal("round 1 passed the batch while the retried id was pending")
	}
	if bt := b.batch(t, "x"); bt.Verification.State != ledger.VerificationPending {
		t.Errorf("verification %+v, want pending", bt.Verification)
	}
}

// TestVerificationRounds: round 1 finds new conversations; they join the
// batch (an adder, as enqueue's Hold does) and are deleted; then the ledger
// asks for round 2, which ends it.
func TestVerificationRounds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "v", "1")
	b.record(t, "v", "1", ledger.Deleted, "L1")
	a := b.adder(t, ledger.BatchSpec{Name: "v"})
	if _, err := a.Add(b.ctx, []string{"7", "8"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.ledger.StartVerificationRound(b.ctx, "v", 1); !ok || err != nil {
		t.Fatalf("start round 1: %v %v", ok, err)
	}
	if _, err := a.Seal(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.ledger.VerificationQueued(b.ctx, ledger.VerifyRequest{Batch: "v", Round: 1}); err != nil {
		t.Fatal(err)
	}
	if s := b.batch(t, "v").State(b.now); s != ledger.StateOpen {
		t.Errorf("state with new ids pending: %s, want open", s)
	}
	b.record(t, "v", "7", ledger.Deleted, "L7")
	if got := b.requests(t); len(got) != 0 {
		t.Errorf("outbox %+v with 8 pending", got)
	}
	b.record(t, "v", "8", ledger.NotFound, "L8")
	if got := b.requests(t); !slices.Equal(got, []ledger.VerifyRequest{{Batch: "v", Round: 2}}) {
		t.Errorf("outbox %+v, want v round 2", got)
	}
	if done, _ := b.ledger.FinishVerification(b.ctx, "v", 1, 0, "", b.now); done {
		t.Error("round 1 finished after round 2 was asked for")
	}
	if done, err := b.ledger.FinishVerification(b.ctx, "v", 2, 0, "", b.now); !done || err != nil {
		t.Fatalf("finish round 2: %v %v", done, err)
	}
	if bt := b.batch(t, "v"); bt.Verification.Round != 2 || bt.Verification.State != ledger.VerificationPassed || bt.Total != 3 {
		t.Errorf("batch %+v", bt)
	}
}

// TestReopenVerifiesAgain: failures retry of a verified batch's id puts its
// verification back to pending, keeping the rounds: the batch asks for the
// next round once the id finishes, and completes again only after it.
func TestReopenVerifiesAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "o", "1", "2")
	b.record(t, "o", "1", ledger.Deleted, "L1")
	b.record(t, "o", "2", ledger.Deleted, "L2")
	if _, err := b.ledger.MarkStillListed(b.ctx, "o", 1, []string{"2"}, "LL", b.now); err != nil {
		t.Fatal(err)
	}
	if done, _ := b.ledger.FinishVerification(b.ctx, "o", 1, 0, "", b.now); !done {
		t.Fatal("not completed")
	}
	_ = b.ledger.VerificationQueued(b.ctx, ledger.VerifyRequest{Batch: "o", Round: 1})
	if err := b.ledger.RecordListing(b.ctx, "o", ledger.Listing{Phase: ledger.ListingDiscovery, At: b.now}); err != nil {
		t.Fatal(err)
	}
	listings := keyspace.New(ledger.DefaultPrefix).BatchListings("o")
	b.rdb.Expire(b.ctx, listings, time.Hour)
	if ok, err := b.ledger.Reopen(b.ctx, "o", "2", ledger.Failed); !ok || err != nil {
		t.Fatalf("reopen: %v %v", ok, err)
	}
	if ttl := b.rdb.TTL(b.ctx, listings).Val(); ttl < 47*time.Hour {
		t.Errorf("listings TTL %v after reopen, want the batch's retention", ttl)
	}
	v := b.batch(t, "o").Verification
	if v.State != ledger.VerificationPending || v.Round != 1 || v.StillListed != 0 || !v.At.IsZero() {
		t.Errorf("after reopen: %+v, want pending, round 1, nothing still listed", v)
	}
	if done, _ := b.ledger.FinishVerification(b.ctx, "o", 1, 0, "", b.now); done {
		t.Error("a duplicate of the finished round 1 completed the reopened batch")
	}
	if r := b.record(t, "o", "2", ledger.Deleted, "L2b"); len(r.Completed) != 0 {
		t.Errorf("completed without verifying again: %+v", r)
	}
	if got := b.requests(t); !slices.Equal(got, []ledger.VerifyRequest{{Batch: "o", Round: 2}}) {
		t.Errorf("outbox %+v, want o round 2", got)
	}
	if done, _ := b.ledger.FinishVerification(b.ctx, "o", 2, 0, "", b.now); !done {
		t.Error("round 2 did not complete it")
	}
	if bt := b.batch(t, "o"); bt.Verification.State != ledger.VerificationPassed || bt.Completions != 2 {
		t.Errorf("batch %+v", bt)
	}
}

// TestNewIDsVerifyAgain: ids added to a verified batch, or joining it by a
// record, are verified too.
func TestNewIDsVerifyAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "n", "1")
	b.record(t, "n", "1", ledger.Deleted, "L1")
	if done, _ := b.ledger.FinishVerification(b.ctx, "n", 1, 0, "", b.now); !done {
		t.Fatal("not completed")
	}
	b.open(t, ledger.BatchSpec{Name: "n"}, "2")
	if v := b.batch(t, "n").Verification; v.State != ledger.VerificationPending || v.Round != 1 {
		t.Errorf("after an addition: %+v", v)
	}
	b.record(t, "n", "2", ledger.Deleted, "L2")
	if done, _ := b.ledger.FinishVerification(b.ctx, "n", 2, 0, "", b.now); !done {
		t.Fatal("round 2 did not complete it")
	}
	// An id that joins by its task's record (a producer that wrote the
	// task without adding the id) is verified too.
	if r := b.record(t, "n", "3", ledger.Deleted, "L3"); len(r.Completed) != 0 {
		t.Errorf("completed without verifying the joined id: %+v", r)
	}
	if got := b.requests(t); !slices.Equal(got, []ledger.VerifyRequest{{Batch: "n", Round: 3}}) {
		t.Errorf("outbox %+v, want n round 3", got)
	}
}

// TestAnEmptySubjectIsVerified: a subject whose discovery found nothing is
// verified (its conversations may come later) and then completes.
func TestAnEmptySubjectIsVerified(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.adder(t, ledger.BatchSpec{Name: "e", Verify: true})
	if s := b.batch(t, "e").State(b.now); s != ledger.StateOpen {
		t.Errorf("state while the discovery runs: %s, want open", s)
	}
	if _, err := a.Seal(b.ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.requests(t); !slices.Equal(got, []ledger.VerifyRequest{{Batch: "e", Round: 1}}) {
		t.Errorf("outbox %+v", got)
	}
	if s := b.batch(t, "e").State(b.now); s != ledger.StateVerifying {
		t.Errorf("state %s, want verifying", s)
	}
	if done, _ := b.ledger.FinishVerification(b.ctx, "e", 1, 0, "", b.now); !done {
		t.Error("not completed")
	}
	if bt := b.batch(t, "e"); bt.State(b.now) != ledger.StateComplete || bt.CompletedAt.IsZero() {
		t.Errorf("state %s, completed at %v", bt.State(b.now), bt.CompletedAt)
	}
}

// TestVerifyIsABatchSetting: asking for verification of a batch made
// without it is a conflict; adding to a verified batch without asking is
// not.
func TestVerifyIsABatchSetting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "plain"}, "1")
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "plain", Verify: true}); !errors.Is(err, ledger.ErrBatchConflict) {
		t.Errorf("Verify on a plain batch: %v, want ErrBatchConflict", err)
	}
	b.verifyBatch(t, "s", "1")
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "s"}); err != nil {
		t.Errorf("adding to a verified batch: %v", err)
	}
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "s", Verify: true}); err != nil {
		t.Errorf("Verify again: %v", err)
	}
}

// TestLookup reads the entries of the ids that are in the batch.
func TestLookup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "l"}, "1", "2", "7379996104798012345")
	b.record(t, "l", "1", ledger.Deleted, "L1")
	got, err := b.ledger.Lookup(b.ctx, "l", []string{"1", "2", "3", "x|y", "", "7379996104798012345"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["1"].Outcome != ledger.Deleted || got["1"].LogID != "L1" || got["2"].Outcome != ledger.Pending ||
		got["7379996104798012345"].ConversationID != "7379996104798012345" {
		t.Errorf("lookup %+v", got)
	}
	if got, err := b.ledger.Lookup(b.ctx, "nope", []string{"1"}); len(got) != 0 || err != nil {
		t.Errorf("absent batch: %+v %v", got, err)
	}
	if got, err := b.ledger.Lookup(b.ctx, "l", nil); len(got) != 0 || err != nil {
		t.Errorf("no ids: %+v %v", got, err)
	}
	if _, err := b.ledger.Lookup(b.ctx, "l", make([]string, 1001)); err == nil {
		t.Error("1001 ids: no error")
	}
}

// TestListings: listings come back in order, exact, and expire with the
// batch; a batch keeps a bounded number.
func TestListings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.verifyBatch(t, "li", "1")
	want := []ledger.Listing{
		{Phase: ledger.ListingDiscovery, BotID: "b1", ConnectorID: "1024", Pages: 2, Found: 1, LogIDs: []string{"A", "B"}, At: b.now},
		{Phase: ledger.ListingVerification, Round: 1, BotID: "b1", ConnectorID: "1024", Pages: 1, LogIDs: []string{"=C"},
			At: b.now.Add(time.Hour), Error: "\x1b[2Jboom"},
	}
	for _, li := range want {
		if err := b.ledger.RecordListing(b.ctx, "li", li); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.ledger.Listings(b.ctx, "li")
	if err != nil || len(got) != 2 {
		t.Fatalf("listings %+v, %v", got, err)
	}
	for i := range want {
		if got[i].Phase != want[i].Phase || got[i].Round != want[i].Round || got[i].Error != want[i].Error ||
			!slices.Equal(got[i].LogIDs, want[i].LogIDs) || !got[i].At.Equal(want[i].At) || got[i].Pages != want[i].Pages {
			t.Errorf("listing %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	key := keyspace.New(ledger.DefaultPrefix).BatchListings("li")
	if ttl := b.rdb.TTL(b.ctx, key).Val(); ttl < 47*time.Hour || ttl > 48*time.Hour {
		t.Errorf("listings TTL %v, want the batch's 48h", ttl)
	}
	b.rdb.Expire(b.ctx, key, time.Hour)
	b.record(t, "li", "1", ledger.Deleted, "L")
	if done, _ := b.ledger.FinishVerification(b.ctx, "li", 1, 0, "", b.now); !done {
		t.Fatal("not completed")
	}
	if ttl := b.rdb.TTL(b.ctx, key).Val(); ttl < 47*time.Hour {
		t.Errorf("listings TTL %v after completion, want the batch's retention again", ttl)
	}

	for _, bad := range []ledger.Listing{{Phase: "other"}, {Phase: ledger.ListingDiscovery, Round: 1}, {Phase: ledger.ListingVerification}} {
		if err := b.ledger.RecordListing(b.ctx, "li", bad); err == nil {
			t.Errorf("listing %+v recorded", bad)
		}
	}
	if err := b.ledger.RecordListing(b.ctx, "nope", want[0]); err == nil {
		t.Error("a listing of an absent batch was recorded")
	}
	if n, _ := b.rdb.Exists(b.ctx, keyspace.New(ledger.DefaultPrefix).BatchListings("nope")).Result(); n != 0 {
		t.Error("a listing of an absent batch made a key")
	}
	fill := make([]any, ledger.MaxListings-2)
	for i := range fill {
		fill[i] = "{}"
	}
	b.rdb.RPush(b.ctx, key, fill...)
	if err := b.ledger.RecordListing(b.ctx, "li", want[0]); err == nil || !strings.Contains(err.Error(), "10000") {
		t.Errorf("listing %d: %v, want refused", ledger.MaxListings+1, err)
	}
	if n := b.rdb.LLen(b.ctx, key).Val(); n != ledger.MaxListings {
		t.Errorf("%d listings kept, want %d", n, ledger.MaxListings)
	}
}
