package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// ks is the ledger's keyspace, to look at its keys.
var ks = keyspace.New(ledger.DefaultPrefix)

// session is an end user's session name: what must never leave the batch
// once it completes, nor reach an error.
const session = "user-4711@example.org"

var sessionKey = []byte("a test key of the deployment")

func TestBatchIdentityIsStored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "jwt", Profile: "app-eu", Session: session}, "1")
	got := b.batch(t, "jwt")
	if got.Profile != "app-eu" || !got.HasSession || got.SessionName() != session || got.SessionHash != "" {
		t.Errorf("batch identity: profile %q has session %v hash %q", got.Profile, got.HasSession, got.SessionHash)
	}
	if profile, s, err := got.TaskIdentity(); profile != "app-eu" || s != session || err != nil {
		t.Errorf("TaskIdentity = %q, (session %v), %v", profile, s == session, err)
	}
	if text := fmt.Sprintf("%v %+v %#v", got, got, got); strings.Contains(text, session) {
		t.Errorf("printing a Batch shows its session name: %s", text)
	}
	b.open(t, ledger.BatchSpec{Name: "plain"}, "2")
	got = b.batch(t, "plain")
	if got.Profile != ledger.DefaultProfile || got.HasSession || got.SessionName() != "" {
		t.Errorf("batch without identity: profile %q has session %v", got.Profile, got.HasSession)
	}
	profile, s, err := got.TaskIdentity()
	if p := (tasks.Payload{}).WithIdentity(profile, s); p.Profile != "" || p.Session != "" || err != nil {
		t.Errorf("TaskIdentity of the default profile = %q %q %v, want the empty payload fields", p.Profile, p.Session, err)
	}
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "s", Session: session}); err == nil ||
		strings.Contains(err.Error(), session) {
		t.Errorf("a session without a profile: %v", err)
	}
}

func TestAnotherIdentityIsABatchConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "jwt", Profile: "app-eu", Session: session, Queue: "q1"}, "1")
	b.open(t, ledger.BatchSpec{Name: "plain", Queue: "q1"}, "2")
	b.open(t, ledger.BatchSpec{Name: "prof", Profile: "app-eu", Queue: "q1"}, "3")
	for _, c := range []struct {
		spec ledger.BatchSpec
		want string
	}{
		{ledger.BatchSpec{Name: "jwt"}, "acts as profile app-eu, not default"},
		{ledger.BatchSpec{Name: "jwt", Profile: "app-eu"}, "for an end user's session; give that session"},
		{ledger.BatchSpec{Name: "jwt", Profile: "app-eu", Session: "user-1"}, "for another session"},
		{ledger.BatchSpec{Name: "jwt", Profile: "app-us", Session: session}, "acts as profile app-eu, not app-us"},
		{ledger.BatchSpec{Name: "plain", Profile: "app-eu"}, "acts as profile default, not app-eu"},
		{ledger.BatchSpec{Name: "plain", Profile: "default", Session: session}, "acts as profile default without a session"},
		{ledger.BatchSpec{Name: "prof"}, "acts as profile app-eu, not default"},
		{ledger.BatchSpec{Name: "prof", Profile: "app-eu", Session: session}, "acts as profile app-eu without a session"},
	} {
		c.spec.Queue = "q2"
		_, err := b.ledger.OpenBatch(b.ctx, c.spec)
		if !errors.Is(err, ledger.ErrBatchConflict) || !strings.Contains(err.Error(), c.want) ||
			!strings.Contains(err.Error(), "batch "+c.spec.Name) || strings.Contains(err.Error(), "user-") {
			t.Errorf("open %s as %q (with a session: %v): %v; want a conflict saying %q, and no session name",
				c.spec.Name, c.spec.Profile, c.spec.Session != "", err, c.want)
		}
	}
	// A refused open changed nothing: no queue added, no adder holding
	// the batch open.
	for _, name := range []string{"jwt", "plain", "prof"} {
		if got := b.batch(t, name); strings.Join(got.Queues, " ") != "q1" || got.State(b.now) != ledger.StateOpen {
			t.Errorf("%s after refused opens: queues %q state %s", name, got.Queues, got.State(b.now))
		}
		if n, _ := b.rdb.ZCard(b.ctx, ks.BatchAdders(name)).Result(); n != 0 {
			t.Errorf("%s: a refused open left %d adders", name, n)
		}
	}
	// The same identity adds to each; "default" is the default profile.
	for _, spec := range []ledger.BatchSpec{
		{Name: "jwt", Profile: "app-eu", Session: session}, {Name: "plain"}, {Name: "plain", Profile: "default"},
		{Name: "prof", Profile: "app-eu"},
	} {
		if _, err := b.ledger.OpenBatch(b.ctx, spec); err != nil {
			t.Errorf("open %s as its own identity: %v", spec.Name, err)
		}
	}
}

// TestABatchOfOldHasTheDefaultProfile: a batch created before batches had
// identities has no profile field, and is the default profile's.
func TestABatchOfOldHasTheDefaultProfile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "old"}, "1")
	b.rdb.HDel(b.ctx, ks.Batch("old"), "profile")
	if got := b.batch(t, "old"); got.Profile != ledger.DefaultProfile {
		t.Errorf("profile %q, want default", got.Profile)
	}
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "old"}); err != nil {
		t.Errorf("add to an old batch: %v", err)
	}
	if _, err := b.ledger.OpenBatch(b.ctx, ledger.BatchSpec{Name: "old", Profile: "app"}); !errors.Is(err, ledger.ErrBatchConflict) {
		t.Errorf("add to an old batch as another profile: %v", err)
	}
}

func TestSessionHash(t *testing.T) {
	t.Parallel()
	// RFC 4231 test case 2.
	got := ledger.SessionHash([]byte("Jefe"), "what do ya want for nothing?")
	if want := "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Errorf("SessionHash = %s, want %s", got, want)
	}
}

func TestScrubSessionsOfCompleteBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "done", Profile: "app", Session: session}, "1", "2")
	b.open(t, ledger.BatchSpec{Name: "busy", Profile: "app", Session: session}, "3")
	b.open(t, ledger.BatchSpec{Name: "plain", Profile: "app"}, "4")
	b.open(t, ledger.BatchSpec{Name: "gone", Profile: "app", Session: session}, "5")
	b.rdb.Del(b.ctx, ks.Batch("gone"))
	b.record(t, "done", "1", ledger.Deleted, "L1")
	b.record(t, "done", "2", ledger.NotFound, "L2")
	b.record(t, "plain", "4", ledger.Deleted, "L4")

	if found := b.ledgerKeysHolding(t, session); len(found) != 2 { // done and busy ("gone" is gone)
		t.Fatalf("before the scrub, the batches holding the session name: %q", found)
	}
	if _, err := b.ledger.ScrubSessions(b.ctx, nil); !errors.Is(err, ledger.ErrNoSessionKey) {
		t.Errorf("ScrubSessions without a key: %v", err)
	}
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); n != 1 || err != nil {
		t.Fatalf("ScrubSessions = %d, %v; want the complete batch's", n, err)
	}
	done := b.batch(t, "done")
	if done.HasSession || done.SessionName() != "" || done.SessionHash != ledger.SessionHash(sessionKey, session) ||
		done.Profile != "app" || !done.SessionErased() {
		t.Errorf("after the scrub: has session %v, hash %q", done.HasSession, done.SessionHash)
	}
	if _, _, err := done.TaskIdentity(); !errors.Is(err, ledger.ErrSessionErased) || strings.Contains(err.Error(), session) {
		t.Errorf("TaskIdentity of a scrubbed batch: %v", err)
	}
	if busy := b.batch(t, "busy"); !busy.HasSession || busy.SessionName() != session || busy.SessionHash != "" {
		t.Error("a batch at work lost its session name")
	}
	// Idempotent: nothing more to erase, and the index holds only the
	// batch at work.
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); n != 0 || err != nil {
		t.Errorf("second ScrubSessions = %d, %v", n, err)
	}
	if got, _ := b.rdb.SMembers(b.ctx, ks.Sessions()).Result(); len(got) != 1 || got[0] != "busy" {
		t.Errorf("sessions index %q, want [busy]", got)
	}
	b.record(t, "busy", "3", ledger.Deleted, "L3")
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); n != 1 || err != nil {
		t.Errorf("ScrubSessions after the last batch completed = %d, %v", n, err)
	}
	if found := b.ledgerKeysHolding(t, session); len(found) > 0 {
		t.Errorf("the session name is still in Redis: %q", found)
	}
}

func TestAScrubbedBatchTakesNoNewIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spec := ledger.BatchSpec{Name: "done", Profile: "app", Session: session}
	b.open(t, spec, "1", "2")
	b.record(t, "done", "1", ledger.Deleted, "L1")
	b.record(t, "done", "2", ledger.Failed, "L2")
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); n != 1 || err != nil {
		t.Fatalf("ScrubSessions = %d, %v", n, err)
	}
	for _, s := range []ledger.BatchSpec{spec, {Name: "done", Profile: "app"}} {
		_, err := b.ledger.OpenBatch(b.ctx, s)
		if !errors.Is(err, ledger.ErrBatchConflict) || strings.Contains(err.Error(), session) ||
			!strings.Contains(err.Error(), "batch done is complete and its session name was erased from the ledger; put the new ids in a new batch") {
			t.Errorf("add to a scrubbed batch (with its session: %v): %v", s.Session != "", err)
		}
	}
	ok, err := b.ledger.Reopen(b.ctx, "done", "2", ledger.Failed)
	if ok || !errors.Is(err, ledger.ErrSessionErased) || !errors.Is(err, ledger.ErrBatchConflict) {
		t.Errorf("Reopen in a scrubbed batch: %v %v", ok, err)
	}
	if got := b.batch(t, "done"); got.State(b.now) != ledger.StateComplete || got.Failed != 1 {
		t.Errorf("a refused reopen changed the batch: state %s failed %d", got.State(b.now), got.Failed)
	}
}

func TestABatchReopenedBeforeTheScrubKeepsItsSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spec := ledger.BatchSpec{Name: "again", Profile: "app", Session: session}
	b.open(t, spec, "1")
	b.record(t, "again", "1", ledger.Failed, "L1")
	if ok, err := b.ledger.Reopen(b.ctx, "again", "1", ledger.Failed); !ok || err != nil {
		t.Fatalf("Reopen: %v %v", ok, err)
	}
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); n != 0 || err != nil {
		t.Errorf("ScrubSessions of a reopened batch = %d, %v", n, err)
	}
	if got := b.batch(t, "again"); got.SessionName() != session {
		t.Error("the reopened batch lost its session name")
	}
	b.open(t, spec, "7") // more ids, as the same identity
	b.record(t, "again", "1", ledger.Deleted, "L2")
	b.record(t, "again", "7", ledger.Deleted, "L3")
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); n != 1 || err != nil {
		t.Errorf("ScrubSessions once it completed again = %d, %v", n, err)
	}
}

// ledgerKeysHolding lists the keys under the ledger's prefix whose name or
// any value (a string, a hash's fields and values, a set's or a sorted
// set's members, a list's items) holds s, as redis-cli --scan and a read
// of each key by its type would find them. (asynq's tasks hold the session
// while they live: they are not the ledger's.)
func (b bundle) ledgerKeysHolding(t *testing.T, s string) []string {
	t.Helper()
	found, read, err := b.srv.KeysHolding(context.Background(), s)
	if err != nil || read == 0 {
		t.Fatalf("reading the keys: %d read, %v", read, err)
	}
	var out []string
	for _, key := range found {
		if strings.HasPrefix(key, ledger.DefaultPrefix) {
			out = append(out, key)
		}
	}
	return out
}

// TestNoScrubWhileAProducerAdds: a complete batch that a producer has
// opened again as its session keeps the name while the producer's lease
// runs, so that the ids it adds can still get tasks as the session; once
// it seals, the name goes, and an adder that opened the batch before the
// scrub can add nothing more.
func TestNoScrubWhileAProducerAdds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The adders' leases run on the real clock, which the scrub reads.
	spec := ledger.BatchSpec{Name: "rb", Profile: "app", Session: session, Created: time.Now(), Now: time.Now}
	b.open(t, spec, "1")
	b.record(t, "rb", "1", ledger.Deleted, "L1")
	a := b.adder(t, spec)
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); err != nil || n != 0 {
		t.Fatalf("scrub while a producer adds: %d, %v; want 0", n, err)
	}
	if _, err := a.Add(b.ctx, []string{"2"}); err != nil {
		t.Fatalf("add: %v", err)
	}
	if _, err := a.Seal(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.record(t, "rb", "2", ledger.Deleted, "L2")
	late := b.adder(t, spec)
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); err != nil || n != 0 {
		t.Fatalf("scrub while the late producer holds it: %d, %v", n, err)
	}
	if _, err := late.Seal(b.ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := b.ledger.ScrubSessions(b.ctx, sessionKey); err != nil || n != 1 {
		t.Fatalf("scrub once every producer sealed: %d, %v; want 1", n, err)
	}
	if _, err := late.Add(b.ctx, []string{"3"}); !errors.Is(err, ledger.ErrSessionErased) {
		t.Errorf("add after the scrub: %v, want ErrSessionErased", err)
	}
	if bt := b.batch(t, "rb"); bt.Total != 2 || bt.Pending() != 0 || bt.HasSession {
		t.Errorf("batch %+v", bt)
	}
}
