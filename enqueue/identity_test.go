package enqueue_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// session is an end user's session name: personal data, which no error
// may repeat.
const session = "user-4711@example.org"

var sessionKey = []byte("a test key of the deployment")

func (b bundle) payload(t *testing.T, queue, id string) tasks.Payload {
	t.Helper()
	p, err := tasks.ParsePayload(b.task(t, queue, id).Payload)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (b bundle) ledger() *ledger.Ledger { return ledger.New(b.redis.Client()) }

func TestTheIdentityReachesTasksAndBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := []string{"7379996104798150001", "7379996104798150002"}
	sum, err := b.client.EnqueueAll(b.ctx, slices.Values(ids), enqueue.Batch("jwt"), enqueue.Profile("app-eu"), enqueue.Session(session))
	if err != nil || sum.Enqueued != 2 {
		t.Fatalf("EnqueueAll = %v, %v", sum, err)
	}
	for _, id := range ids {
		if p := b.payload(t, enqueue.DefaultQueue, id); p.Profile != "app-eu" || p.Session != session || p.Batch != "jwt" {
			t.Errorf("payload of %s: %+v", id, p)
		}
	}
	got, ok, err := b.ledger().Batch(b.ctx, "jwt")
	if err != nil || !ok || got.Profile != "app-eu" || got.SessionName() != session {
		t.Errorf("batch: ok %v err %v profile %q session held %v", ok, err, got.Profile, got.HasSession)
	}

	// The default profile, named or not, leaves the payload as it was.
	for i, opts := range [][]enqueue.Option{{enqueue.Batch("plain")}, {enqueue.Batch("plain"), enqueue.Profile("default")}} {
		id := "737999610479815010" + string(rune('1'+i))
		if _, err := b.client.Enqueue(b.ctx, id, opts...); err != nil {
			t.Fatal(err)
		}
		if raw := string(b.task(t, enqueue.DefaultQueue, id).Payload); raw != `{"id":"`+id+`","batch":"plain"}` {
			t.Errorf("payload of the default profile: %s", raw)
		}
	}

	// Another identity does not join the batch, and the error keeps the
	// session to itself.
	for _, opts := range [][]enqueue.Option{
		{enqueue.Batch("jwt")},
		{enqueue.Batch("jwt"), enqueue.Profile("app-eu"), enqueue.Session("user-1")},
		{enqueue.Batch("plain"), enqueue.Profile("app-eu"), enqueue.Session(session)},
	} {
		_, err := b.client.Enqueue(b.ctx, "7379996104798150009", opts...)
		if !errors.Is(err, ledger.ErrBatchConflict) || strings.Contains(err.Error(), "user-") {
			t.Errorf("enqueue as another identity: %v", err)
		}
	}
}

func TestRetryFailuresCarriesTheBatchIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	led := b.ledger()
	ids := []string{"7379996104798150001", "7379996104798150002"}
	if _, err := b.client.EnqueueAll(b.ctx, slices.Values(ids), enqueue.Batch("jwt"), enqueue.Profile("app-eu"),
		enqueue.Session(session)); err != nil {
		t.Fatal(err)
	}
	b.fail(t, led, "jwt", ids[0])
	sum, err := b.client.RetryFailures(b.ctx, ledger.Filter{Batch: "jwt"}, false)
	if err != nil || sum.Retried != 1 {
		t.Fatalf("RetryFailures = %v, %v", sum, err)
	}
	if p := b.payload(t, enqueue.DefaultQueue, ids[0]); p.Profile != "app-eu" || p.Session != session {
		t.Errorf("the retried task acts as profile %q (session kept: %v)", p.Profile, p.Session == session)
	}
}

// TestRetryFailuresRefusesAnErasedSession: once the batch completed and
// its session name was erased, a retry would act as nobody's session: it
// is refused, and nothing changes.
func TestRetryFailuresRefusesAnErasedSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	led := b.ledger()
	id := "7379996104798150001"
	if _, err := b.client.Enqueue(b.ctx, id, enqueue.Batch("jwt"), enqueue.Profile("app-eu"), enqueue.Session(session)); err != nil {
		t.Fatal(err)
	}
	b.fail(t, led, "jwt", id)
	if n, err := led.ScrubSessions(b.ctx, sessionKey); n != 1 || err != nil {
		t.Fatalf("ScrubSessions = %d, %v", n, err)
	}
	for _, dryRun := range []bool{true, false} {
		sum, err := b.client.RetryFailures(b.ctx, ledger.Filter{Batch: "jwt"}, dryRun)
		if !errors.Is(err, ledger.ErrSessionErased) || sum.Retried != 0 || strings.Contains(err.Error(), session) ||
			!strings.Contains(err.Error(), "batch jwt is complete and its session name was erased") {
			t.Errorf("RetryFailures (dry run %v) of a scrubbed batch = %v, %v", dryRun, sum, err)
		}
	}
	if f, _, _ := led.Failure(b.ctx, "jwt", id); f.Outcome != ledger.Failed {
		t.Errorf("the refused retry changed the failure record: %s", f.Outcome)
	}
	if _, err := b.client.Enqueue(b.ctx, "7379996104798150002", enqueue.Batch("jwt"), enqueue.Profile("app-eu"),
		enqueue.Session(session)); !errors.Is(err, ledger.ErrBatchConflict) {
		t.Errorf("enqueue into a scrubbed batch: %v", err)
	}
}

// fail records id as failed in batch, as a worker whose last attempt
// failed would, and removes its task (asynq archives it; deleting serves
// the test as well).
func (b bundle) fail(t *testing.T, led *ledger.Ledger, batch, id string) {
	t.Helper()
	b.feed(t, enqueue.DefaultQueue)
	if _, err := led.Record(b.ctx, ledger.Attempt{ConversationID: id, Batch: batch, Queue: enqueue.DefaultQueue,
		Outcome: ledger.Failed, Code: 5000, HasCode: true, Msg: "boom", HTTPStatus: 200, LogID: "L", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b.inspector.DeleteTask(enqueue.DefaultQueue, tasks.TaskID(id)); err != nil {
		t.Fatal(err)
	}
}
