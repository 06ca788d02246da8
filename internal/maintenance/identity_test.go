package maintenance_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/maintenance"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// session is an end user's session name: personal data, which no log
// line may hold.
const session = "user-4711@example.org"

var sessionKey = []byte("a test key of the deployment")

// sweep runs one sweep of a janitor at now (the lock of an earlier sweep
// is dropped first) and returns what it logged.
func (b bundle) sweep(t *testing.T, now time.Time, key []byte) string {
	t.Helper()
	b.rdb.Del(b.ctx, keyspace.New(ledger.DefaultPrefix).Lock("janitor"), keyspace.New(ledger.DefaultPrefix).Lock("sessions"))
	var logs bytes.Buffer
	j := maintenance.NewJanitor(maintenance.JanitorConfig{Redis: b.rdb, Ledger: b.ledger, SessionKey: key,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }})
	j.Sweep(b.ctx)
	if strings.Contains(logs.String(), session) {
		t.Errorf("the janitor logged a session name: %s", logs.String())
	}
	return logs.String()
}

// payload reads the payload of id's task in queue; ok is false when there
// is no task.
func (b bundle) payload(t *testing.T, queue, id string) (p tasks.Payload, ok bool) {
	t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(b.rdb).GetTaskInfo(queue, tasks.TaskID(id))
	if err != nil {
		return p, false
	}
	if p, err = tasks.ParsePayload(info.Payload); err != nil {
		t.Fatal(err)
	}
	return p, true
}

// TestStalledIDsAreQueuedAsTheBatchIdentity: the tasks the janitor queues
// for a stalled batch's ids act as the batch's profile and session.
func TestStalledIDsAreQueuedAsTheBatchIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.openFedLost(t, ledger.BatchSpec{Name: "jwt", Profile: "app-eu", Session: session}, "101")
	b.openFedLost(t, ledger.BatchSpec{Name: "prof", Profile: "app-eu"}, "102")
	b.openFedLost(t, ledger.BatchSpec{Name: "plain"}, "103")
	b.sweep(t, b.now.Add(time.Hour), nil)
	for id, want := range map[string]tasks.Payload{
		"101": {ConversationID: "101", Batch: "jwt", Profile: "app-eu", Session: session},
		"102": {ConversationID: "102", Batch: "prof", Profile: "app-eu"},
		"103": {ConversationID: "103", Batch: "plain"},
	} {
		if got, ok := b.payload(t, "default", id); !ok || got != want {
			t.Errorf("requeued task of %s: %v %+v, want %+v", id, ok, got, want)
		}
	}
}

// TestOrphansAreQueuedAsTheirBatchIdentity: the new task of a linked id
// acts as the linked batch's identity, not as the task it was linked to.
func TestOrphansAreQueuedAsTheirBatchIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "A"}, "55")
	b.open(t, ledger.BatchSpec{Name: "B", Profile: "app-eu", Session: session}, "55")
	key := asynqwire.TaskKey("default", "del:55")
	b.rdb.HSet(b.ctx, key, "state", "active")
	if _, err := b.ledger.Link(b.ctx, "B", "55", "default", "del:55"); err != nil {
		t.Fatal(err)
	}
	b.rdb.Del(b.ctx, key) // it finished in A without seeing the link
	b.sweep(t, b.now, nil)
	want := tasks.Payload{ConversationID: "55", Batch: "B", Profile: "app-eu", Session: session}
	if got, ok := b.payload(t, "default", "55"); !ok || got != want {
		t.Errorf("the orphan's task: %v %+v, want %+v", ok, got, want)
	}
}

// TestNoTaskForAnErasedSession: pending ids of a batch whose session name
// was erased (a scrub that raced a reopen) get no task: one acting as
// another identity would record a deletion that did not happen.
func TestNoTaskForAnErasedSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.openFedLost(t, ledger.BatchSpec{Name: "jwt", Profile: "app-eu", Session: session}, "101")
	meta := keyspace.New(ledger.DefaultPrefix).Batch("jwt")
	b.rdb.HSet(b.ctx, meta, "session_hash", ledger.SessionHash(sessionKey, session))
	b.rdb.HDel(b.ctx, meta, "session")
	logs := b.sweep(t, b.now.Add(time.Hour), nil)
	if _, ok := b.payload(t, "default", "101"); ok {
		t.Error("a task was queued for a batch whose session name was erased")
	}
	if !strings.Contains(logs, "session name was erased") || !strings.Contains(logs, "batch=jwt") {
		t.Errorf("no warning naming the batch: %s", logs)
	}
}

// TestSweepErasesSessionNames: with a key, a sweep replaces the session
// names of complete batches by their hash (those a producer's seal
// completed included); without one it leaves them.
func TestSweepErasesSessionNames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "done", Profile: "app-eu", Session: session}, "1")
	b.open(t, ledger.BatchSpec{Name: "busy", Profile: "app-eu", Session: session}, "2")
	b.record(t, "done", "1", ledger.Deleted, "L")
	b.sweep(t, b.now, nil)
	if got, _, _ := b.ledger.Batch(b.ctx, "done"); !got.HasSession {
		t.Error("a sweep without a key erased a session name")
	}
	b.sweep(t, b.now, sessionKey)
	if got, _, _ := b.ledger.Batch(b.ctx, "done"); got.HasSession || got.SessionHash != ledger.SessionHash(sessionKey, session) {
		t.Errorf("after a sweep with the key: session held %v, hash %q", got.HasSession, got.SessionHash)
	}
	if got, _, _ := b.ledger.Batch(b.ctx, "busy"); !got.HasSession {
		t.Error("a sweep erased the session name of a batch at work")
	}
	b.record(t, "busy", "2", ledger.Deleted, "L")
	b.sweep(t, b.now, sessionKey)
	if found := b.ledgerKeysHolding(t, session); len(found) > 0 {
		t.Errorf("the session name is still under the ledger's prefix: %q", found)
	}
}

// TestKeylessWorkerDoesNotBlockTheScrub: a worker without the session key
// that holds the janitor's lock does not keep one with the key from
// erasing session names (the scrub has a lock of its own).
func TestKeylessWorkerDoesNotBlockTheScrub(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, ledger.BatchSpec{Name: "done", Profile: "app-eu", Session: session}, "1")
	b.record(t, "done", "1", ledger.Deleted, "L")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keyless := maintenance.NewJanitor(maintenance.JanitorConfig{Redis: b.rdb, Ledger: b.ledger, Logger: quiet, Interval: time.Minute})
	keyless.Sweep(b.ctx) // takes the janitor's lock for a minute
	keyed := maintenance.NewJanitor(maintenance.JanitorConfig{Redis: b.rdb, Ledger: b.ledger, Logger: quiet, Interval: time.Minute,
		SessionKey: sessionKey})
	keyed.Sweep(b.ctx)
	if got, _, _ := b.ledger.Batch(b.ctx, "done"); got.HasSession {
		t.Error("the keyed worker's sweep left the session name while a keyless worker held the janitor's lock")
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
