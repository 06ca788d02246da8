package worker_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/subject"
)

// subjectBundle is a worker test bundle with an OAuth app, a subject and
// other end users whose conversations share the subject's bots.
type subjectBundle struct {
	*bundle
	app, kid, keyFile string
	bots              []string
	// mine are the subject's conversation ids, others the other users'.
	mine, others []string
}

const subjectSession = "user-4711-PERSONAL"

// setupSubject gives the subject perBot conversations on each of three
// bots, and five other sessions others conversations in all on the same
// bots, every one owned by its session.
func setupSubject(t *testing.T, perBot, others int) *subjectBundle {
	t.Helper()
	const app, kid = "1127900106117", "kid-1"
	keyFile, pub := jwtKeyFile(t)
	sb := &subjectBundle{bundle: setup(t, cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: pub})), app: app, kid: kid, keyFile: keyFile,
		bots: []string{"7300000000000000001", "7300000000000000002", "7300000000000000003"}}
	start := time.Now().Add(-24 * time.Hour)
	next := int64(7379996104700000000)
	add := func(bot, session string) string {
		next++
		id := fmt.Sprint(next)
		sb.fake.AddConversations(cozetest.Conversation{ID: id, BotID: bot, CreatedAt: start.Add(time.Duration(next%100000) * time.Second),
			Owner: cozetest.Identity{App: app, Session: session}})
		return id
	}
	for _, bot := range sb.bots {
		for range perBot {
			sb.mine = append(sb.mine, add(bot, subjectSession))
		}
	}
	for i := range others {
		sb.others = append(sb.others, add(sb.bots[i%len(sb.bots)], fmt.Sprintf("other-%d", i%5)))
	}
	return sb
}

// eraser lists as the subject's session.
func (sb *subjectBundle) eraser(t *testing.T) *subject.Eraser {
	t.Helper()
	jwtApp, err := coze.NewJWTApp(coze.JWTConfig{BaseURL: sb.fake.URL, AppID: sb.app, KeyID: sb.kid, PrivateKeyFile: sb.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	client, err := coze.NewClient(sb.fake.URL, jwtApp.Session(subjectSession), coze.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &subject.Eraser{Enqueue: sb.enqueue, Ledger: sb.ledger, Walker: &discovery.Walker{Lister: client, Backoff: time.Millisecond}}
}

func (sb *subjectBundle) erase(t *testing.T, batch string) subject.Result {
	t.Helper()
	res, err := sb.eraser(t).Erase(sb.ctx, subject.Request{Profile: "app-cn", Session: subjectSession, BotIDs: sb.bots, Batch: batch})
	if err != nil {
		t.Fatalf("erase: %+v, %v", res, err)
	}
	return res
}

// waitComplete waits for batch to complete and returns it.
func (sb *subjectBundle) waitComplete(t *testing.T, batch string) ledger.Batch {
	t.Helper()
	var b ledger.Batch
	waitFor(t, 30*time.Second, batch+" to complete", func() bool {
		var ok bool
		var err error
		b, ok, err = sb.ledger.Batch(sb.ctx, batch)
		return err == nil && ok && b.State(time.Now()) == ledger.StateComplete
	})
	return b
}

// stillThere returns which of ids the fake still holds.
func (sb *subjectBundle) stillThere(ids []string) []string {
	held := map[string]bool{}
	for _, c := range sb.fake.Conversations() {
		held[c.ID] = true
	}
	var out []string
	for _, id := range ids {
		if held[id] {
			out = append(out, id)
		}
	}
	return out
}

// TestEraseSubjectDeletesOnlyTheirs is acceptance 1: a subject with 3 bots
// × 130 conversations, while 5 other sessions own 400 on the same bots:
// exactly the subject's 390 are deleted, the verification passes, and the
// report has 390 rows, the discovery and the verification.
func TestEraseSubjectDeletesOnlyTheirs(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 130, 400)
	sb.startWorker(t, sb.appConfig(t, sb.app, sb.kid, sb.keyFile))
	res := sb.erase(t, "dsr-4711")
	if res.Found != 390 || res.Enqueued != 390 || res.Duplicate != 0 || len(res.Listings) != 3 {
		t.Fatalf("erase: %+v, want 390 found and enqueued over 3 listings", res)
	}
	if got := res.String(); got != "found=390 enqueued=390 duplicate=0 batch=dsr-4711" {
		t.Errorf("result line %q", got)
	}
	b := sb.waitComplete(t, "dsr-4711")
	if b.Total != 390 || b.Deleted != 390 || b.Verification.State != ledger.VerificationPassed || b.Verification.StillListed != 0 {
		t.Errorf("batch: total %d deleted %d, verification %+v; want 390 deleted, passed", b.Total, b.Deleted, b.Verification)
	}
	if left := sb.stillThere(sb.mine); len(left) != 0 {
		t.Errorf("%d of the subject's conversations are still there", len(left))
	}
	if left := sb.stillThere(sb.others); len(left) != len(sb.others) {
		t.Errorf("%d of the other users' 400 conversations are gone", len(sb.others)-len(left))
	}
	rows, summary := proofJSONL(t, sb.bundle, "dsr-4711")
	if rows != 390 {
		t.Errorf("report has %d rows, want 390", rows)
	}
	for _, key := range []string{`"discovery"`, `"verification"`, `"passed"`, sb.bots[2]} {
		if !strings.Contains(summary, key) {
			t.Errorf("report summary lacks %s:\n%s", key, summary)
		}
	}
	if strings.Contains(sb.logs.String(), "PERSONAL") || strings.Contains(summary, "PERSONAL") {
		t.Error("a log line or the report holds the session name")
	}
}

// proofJSONL writes batch's JSONL proof and returns its per-id row count and
// its summary line.
func proofJSONL(t *testing.T, b *bundle, batch string) (rows int, summary string) {
	t.Helper()
	var buf bytes.Buffer
	if err := report.WriteProof(b.ctx, b.ledger, batch, "jsonl", &buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(buf.String()) {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("report line %q: %v", line, err)
		}
		if _, ok := row["conversation_id"]; ok {
			rows++
		} else {
			summary += line
		}
	}
	return rows, summary
}

// TestStillListedIsNotErased is acceptance 2: three of the subject's ids
// answer 4002 without being deleted; verification finds them listed, they
// end failed "still listed", and the batch is not verified.
func TestStillListedIsNotErased(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 20, 30)
	refused := []string{sb.mine[3], sb.mine[25], sb.mine[59]}
	sb.fake.RefuseDelete(refused...)
	sb.startWorker(t, sb.appConfig(t, sb.app, sb.kid, sb.keyFile))
	sb.erase(t, "dsr-refused")
	b := sb.waitComplete(t, "dsr-refused")
	if b.Verification.State != ledger.VerificationFailed || b.Verification.StillListed != 3 {
		t.Errorf("verification %+v, want failed with 3 still listed", b.Verification)
	}
	if b.Failed != 3 || b.Deleted != 57 || b.NotFound != 0 {
		t.Errorf("tallies deleted %d not_found %d failed %d, want 57, 0, 3", b.Deleted, b.NotFound, b.Failed)
	}
	var failed []string
	err := sb.ledger.Failures(sb.ctx, ledger.Filter{Batch: "dsr-refused"}, func(f ledger.Failure) error {
		if f.Outcome != ledger.Failed || !strings.Contains(f.Msg, "still listed") || f.LogID == "" {
			t.Errorf("failure of %s: outcome %s msg %q log id %q, want failed, still listed, the list call's log id", f.ConversationID, f.Outcome, f.Msg, f.LogID)
		}
		failed = append(failed, f.ConversationID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(failed)
	slices.Sort(refused)
	if !slices.Equal(failed, refused) {
		t.Errorf("failures %v, want %v", failed, refused)
	}
	rows, summary := proofJSONL(t, sb.bundle, "dsr-refused")
	if rows != 60 || !strings.Contains(summary, `"failed"`) || !strings.Contains(summary, "still_listed") {
		t.Errorf("report: %d rows, summary %s", rows, summary)
	}
	var buf bytes.Buffer
	if err := report.WriteProof(sb.ctx, sb.ledger, "dsr-refused", "jsonl", &buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), `"msg":"still listed`); n != 3 {
		t.Errorf("%d JSONL rows say still listed, want 3", n)
	}
}

// TestVerificationFindsNewConversations is acceptance 3: a conversation the
// subject creates while the batch's deletions run is found by the
// verification, deleted, and verified in turn.
func TestVerificationFindsNewConversations(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 10, 10)
	sb.fake.SetLatency(40 * time.Millisecond) // 30 deletions two at a time: about 600 ms to add one during them
	cfg := sb.appConfig(t, sb.app, sb.kid, sb.keyFile)
	cfg.Concurrency = 2
	sb.startWorker(t, cfg)
	sb.erase(t, "dsr-late")
	waitFor(t, 30*time.Second, "some deletions", func() bool {
		b, ok, err := sb.ledger.Batch(sb.ctx, "dsr-late")
		return err == nil && ok && b.Deleted >= 4
	})
	late := "7379996104799999999"
	sb.fake.AddConversations(cozetest.Conversation{ID: late, BotID: sb.bots[1], Owner: cozetest.Identity{App: sb.app, Session: subjectSession}})
	if b, _, _ := sb.ledger.Batch(sb.ctx, "dsr-late"); b.Pending() == 0 {
		t.Fatal("the deletions were over before the new conversation was made: the test proves nothing")
	}
	b := sb.waitComplete(t, "dsr-late")
	if b.Total != 31 || b.Deleted != 31 || b.Verification.State != ledger.VerificationPassed || b.Verification.Round != 2 {
		t.Errorf("batch: total %d deleted %d verification %+v; want 31 deleted, passed in round 2",
			b.Total, b.Deleted, b.Verification)
	}
	if len(sb.stillThere([]string{late})) != 0 {
		t.Error("the conversation created during the run is still there")
	}
	listings, err := sb.ledger.Listings(sb.ctx, "dsr-late")
	if err != nil {
		t.Fatal(err)
	}
	var verifications int
	for _, li := range listings {
		if li.Phase == ledger.ListingVerification {
			verifications++
		}
	}
	if verifications != 6 {
		t.Errorf("%d verification listings, want 6 (3 bots × 2 rounds)", verifications)
	}
}

// TestVerificationOfADiscoveryThatDied: a producer that died after its
// first page left held ids and its targets, no listing. Once the held ids
// are released (the janitor does it for a stalled batch) and deleted, the
// verification lists every target and erases the rest.
func TestVerificationOfADiscoveryThatDied(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 20, 10)
	opts := []enqueue.Option{enqueue.Batch("dsr-died"), enqueue.Profile("app-cn"), enqueue.Session(subjectSession), enqueue.Verify()}
	if _, err := sb.enqueue.EnqueueAll(sb.ctx, slices.Values(sb.mine[:5]), append(opts, enqueue.Hold())...); err != nil {
		t.Fatal(err)
	}
	var targets []ledger.Target
	for _, bot := range sb.bots {
		targets = append(targets, ledger.Target{BotID: bot, ConnectorID: coze.ConnectorAPI})
	}
	if ok, err := sb.ledger.RecordTargets(sb.ctx, "dsr-died", targets); !ok || err != nil {
		t.Fatalf("targets: %v %v", ok, err)
	}
	if _, err := sb.enqueue.Release(sb.ctx, "dsr-died"); err != nil {
		t.Fatal(err)
	}
	sb.startWorker(t, sb.appConfig(t, sb.app, sb.kid, sb.keyFile))
	b := sb.waitComplete(t, "dsr-died")
	if b.Deleted != 60 || b.Verification.State != ledger.VerificationPassed {
		t.Errorf("deleted %d, verification %+v; want the subject's 60 and passed", b.Deleted, b.Verification)
	}
	if left := sb.stillThere(sb.others); len(left) != 10 {
		t.Errorf("%d of the other users' conversations are gone", 10-len(left))
	}
}

// TestVerificationWithoutTargetsFails: a verified batch that records no
// bot to list (a producer of its own that recorded nothing) is not passed.
func TestVerificationWithoutTargetsFails(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 2, 0)
	if _, err := sb.enqueue.EnqueueAll(sb.ctx, slices.Values(sb.mine), enqueue.Batch("dsr-blind"), enqueue.Profile("app-cn"),
		enqueue.Session(subjectSession), enqueue.Verify()); err != nil {
		t.Fatal(err)
	}
	sb.startWorker(t, sb.appConfig(t, sb.app, sb.kid, sb.keyFile))
	b := sb.waitComplete(t, "dsr-blind")
	if b.Verification.State != ledger.VerificationFailed || !strings.Contains(b.Verification.Reason, "no bot to list") {
		t.Errorf("verification %+v, want failed: no bot to list", b.Verification)
	}
}

// TestVerificationListingRefused: a verification listing the API refuses
// for good fails the verification with the API's answer as its reason,
// and the batch completes, not verified.
func TestVerificationListingRefused(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 5, 0)
	sb.erase(t, "dsr-refused-list")
	sb.fake.ScriptList(cozetest.BadParameter)
	sb.startWorker(t, sb.appConfig(t, sb.app, sb.kid, sb.keyFile))
	b := sb.waitComplete(t, "dsr-refused-list")
	if b.Deleted != 15 || b.Verification.State != ledger.VerificationFailed || !strings.Contains(b.Verification.Reason, "listing failed") {
		t.Errorf("deleted %d, verification %+v; want 15 and failed: listing failed", b.Deleted, b.Verification)
	}
}

// TestVerificationBoundsItsRounds: a subject who keeps creating
// conversations is verified for tasks.MaxVerifyRounds rounds; what the last
// one finds is counted as not verified, and the batch completes, failed.
func TestVerificationBoundsItsRounds(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 2, 0)
	sb.erase(t, "dsr-busy")
	cfg := sb.appConfig(t, sb.app, sb.kid, sb.keyFile)
	sb.startWorker(t, cfg)
	// Each time a round has deleted what it found, the subject makes
	// one more.
	next := int64(7379996104790000000)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if b, ok, err := sb.ledger.Batch(sb.ctx, "dsr-busy"); err == nil && ok && b.Pending() == 0 && len(sb.stillThere(sb.mine)) == 0 {
				mine := 0
				for _, c := range sb.fake.Conversations() {
					if c.Owner.Session == subjectSession {
						mine++
					}
				}
				if mine == 0 {
					next++
					sb.fake.AddConversations(cozetest.Conversation{ID: fmt.Sprint(next), BotID: sb.bots[0],
						Owner: cozetest.Identity{App: sb.app, Session: subjectSession}})
				}
			}
		}
	}()
	b := sb.waitComplete(t, "dsr-busy")
	if b.Verification.State != ledger.VerificationFailed || b.Verification.Unverified < 1 || b.Verification.Round != 3 {
		t.Errorf("verification %+v, want failed with conversations left unverified after 3 rounds", b.Verification)
	}
}

// TestEraseSubjectWithNothing: a subject with no conversation on the bots
// gets a batch that holds the listings and completes, verified.
func TestEraseSubjectWithNothing(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 0, 20)
	sb.startWorker(t, sb.appConfig(t, sb.app, sb.kid, sb.keyFile))
	res := sb.erase(t, "dsr-none")
	if res.Found != 0 || res.Enqueued != 0 {
		t.Fatalf("erase: %+v", res)
	}
	b := sb.waitComplete(t, "dsr-none")
	if b.Total != 0 || b.Verification.State != ledger.VerificationPassed {
		t.Errorf("batch total %d verification %+v, want 0 and passed", b.Total, b.Verification)
	}
	if left := sb.stillThere(sb.others); len(left) != 20 {
		t.Errorf("%d other conversations gone", 20-len(left))
	}
}

// TestEraseSubjectDiscoveryStops: a listing the API refuses part-way ends
// Erase with ErrIncomplete; what was found is queued, and the
// verification, listing every bot again, finds and deletes the rest.
func TestEraseSubjectDiscoveryStops(t *testing.T) {
	t.Parallel()
	sb := setupSubject(t, 60, 0)
	// Bot 2's first page is refused once, as a bad parameter: bot 3 is
	// never listed by the discovery.
	eraser := sb.eraser(t)
	eraser.Walker.Lister = &refuseOnce{Lister: eraser.Walker.Lister, bot: sb.bots[1]}
	res, err := eraser.Erase(sb.ctx, subject.Request{Profile: "app-cn", Session: subjectSession, BotIDs: sb.bots, Batch: "dsr-stop"})
	if !errors.Is(err, subject.ErrIncomplete) {
		t.Fatalf("erase: %v, want ErrIncomplete", err)
	}
	if res.Found != 60 || res.Enqueued != 60 || len(res.Listings) != 3 || res.Listings[1].Error == "" || res.Listings[2].Error == "" {
		t.Fatalf("erase: %+v, want bot 1's 60, a failed listing of bot 2 and bot 3 not listed", res)
	}
	sb.startWorker(t, sb.appConfig(t, sb.app, sb.kid, sb.keyFile))
	b := sb.waitComplete(t, "dsr-stop")
	if b.Deleted != 180 || b.Verification.State != ledger.VerificationPassed {
		t.Errorf("batch deleted %d verification %+v, want 180 and passed (the verification found bots 2 and 3)", b.Deleted, b.Verification)
	}
	if left := sb.stillThere(sb.mine); len(left) != 0 {
		t.Errorf("%d of the subject's conversations are still there", len(left))
	}
}

// refuseOnce answers the first list call for bot as Coze answers a bad
// parameter, and passes the others on.
type refuseOnce struct {
	discovery.Lister
	bot     string
	refused bool
}

func (r *refuseOnce) ListConversations(ctx context.Context, q coze.ListQuery) (coze.Page, coze.Result, error) {
	if q.BotID == r.bot && !r.refused {
		r.refused = true
		res := coze.Result{Class: coze.ClassPermanent, HTTPStatus: 200, Code: 4000, HasCode: true, LogID: "20261204refused"}
		return coze.Page{}, res, errors.New("code 4000: invalid parameter")
	}
	return r.Lister.ListConversations(ctx, q)
}
