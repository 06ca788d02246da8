package worker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestEndToEndWithEveryFault sends 2,000 ids through a real asynq server and
// redis-server to a fake API that injects every fault class at random, then
// holds the ledger, the metrics and the queues against the fake's own record.
func TestEndToEndWithEveryFault(t *testing.T) {
	t.Parallel()
	b := setup(t,
		cozetest.WithSeed(42),
		cozetest.WithSlowDelay(3*time.Second),
		cozetest.WithFaults(map[cozetest.Fault]float64{
			cozetest.RateLimited:           0.02,
			cozetest.RateLimitedRetryAfter: 0.002,
			cozetest.BadGateway:            0.03,
			cozetest.InternalError:         0.03,
			cozetest.SystemLimit:           0.02,
			cozetest.NotFound:              0.01,
			cozetest.AuthInvalid:           0.003,
			cozetest.ConnReset:             0.02,
			cozetest.LostAnswer:            0.03,
			cozetest.Slow:                  0.005,
		}))
	all := ids(2000, 7379996104798150001)
	permanent, exhausted := all[:15], all[15:25]
	for _, id := range permanent {
		b.fake.ScriptForever(id, cozetest.BadParameter)
	}
	for _, id := range exhausted {
		b.fake.ScriptForever(id, cozetest.InternalError)
	}
	const budget = 8
	sum, err := b.enqueue.EnqueueAll(b.ctx, slices.Values(all), enqueue.Batch("e2e"), enqueue.MaxRetry(budget))
	if err != nil || sum.Enqueued != len(all) {
		t.Fatalf("enqueue: %+v, %v", sum, err)
	}

	w := b.startWorker(t, b.fastConfig(t, nil))
	b.waitDrained(t, 3*time.Minute)

	finals := b.finals(t, "e2e")
	deletions := b.fake.Deletions()
	tally := map[ledger.Outcome]int{}
	for _, id := range all {
		f, ok := finals[id]
		if !ok {
			t.Errorf("id %s has no terminal outcome", id)
			continue
		}
		tally[f.Outcome]++
		d, deleted := deletions[id]
		switch f.Outcome {
		case ledger.Deleted:
			if !deleted {
				t.Errorf("id %s recorded deleted, but the fake never deleted it", id)
			} else if f.LogID != d.LogID && !d.AnswerLost {
				t.Errorf("id %s: recorded log id %s, the deleting call's was %s", id, f.LogID, d.LogID)
			}
		case ledger.NotFound:
			if deleted && !d.AnswerLost {
				t.Errorf("id %s: not_found, but the fake deleted it and its answer arrived", id)
			}
		case ledger.Failed:
			if deleted {
				t.Errorf("id %s recorded failed, but the fake deleted it", id)
			}
		}
	}
	if len(finals) != len(all) {
		t.Errorf("%d terminal outcomes for %d ids", len(finals), len(all))
	}
	for id := range deletions {
		if o := finals[id].Outcome; o != ledger.Deleted && o != ledger.NotFound {
			t.Errorf("the fake deleted %s but the ledger says %q", id, o)
		}
	}
	for _, id := range permanent {
		if f := finals[id]; f.Outcome != ledger.Failed || f.Code != "4000" || f.Attempts != 1 {
			t.Errorf("permanent id %s: %+v, want failed on code 4000 after 1 attempt", id, f)
		}
	}
	for _, id := range exhausted {
		if f := finals[id]; f.Outcome != ledger.Failed || f.Code != "5000" || f.Attempts < budget+1 {
			t.Errorf("always-5000 id %s: %+v, want failed on code 5000 after at least %d attempts", id, f, budget+1)
		}
	}

	for _, o := range []ledger.Outcome{ledger.Deleted, ledger.NotFound, ledger.Failed} {
		if got := counter(w, string(o)); got != tally[o] {
			t.Errorf("coze_eraser_deletions_total{outcome=%q} = %d, the ledger has %d", o, got, tally[o])
		}
	}
	if got := b.archived(t); got != tally[ledger.Failed] {
		t.Errorf("%d archived tasks, %d failed ids", got, tally[ledger.Failed])
	}
	if n := b.unfinished(t); n != 0 {
		t.Errorf("%d tasks left in the queues", n)
	}

	// Every id that did not end deleted has a failure record with the
	// details of its last attempt.
	var failures int
	err = b.ledger.Failures(b.ctx, ledger.Filter{Batch: "e2e"}, func(f ledger.Failure) error {
		failures++
		if f.Outcome != finals[f.ConversationID].Outcome {
			t.Errorf("failure record of %s says %s, the batch says %s", f.ConversationID, f.Outcome, finals[f.ConversationID].Outcome)
		}
		if f.Attempts < 1 || f.FirstAt.IsZero() || f.LastAt.Before(f.FirstAt) {
			t.Errorf("failure record %+v is incomplete", f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if failures != tally[ledger.NotFound]+tally[ledger.Failed] {
		t.Errorf("%d failure records, want %d", failures, tally[ledger.NotFound]+tally[ledger.Failed])
	}

	counts := b.fake.Counts()
	t.Logf("outcomes %v; fake answers %v", tally, counts)
	for _, fault := range cozetest.Faults {
		if fault == cozetest.BadParameter {
			continue
		}
		if counts[string(fault)] == 0 {
			t.Errorf("fault %s was never injected: the test did not cover it", fault)
		}
	}
	if tally[ledger.Deleted] < len(all)*8/10 {
		t.Errorf("only %d deleted", tally[ledger.Deleted])
	}

	t.Run("the token is nowhere", func(t *testing.T) {
		assertNoSecret(t, b)
	})
}

// assertNoSecret greps every Redis key and value and every log line for
// the token, after checking that the token was really sent.
func assertNoSecret(t *testing.T, b *bundle) {
	t.Helper()
	sent := false
	for _, c := range b.fake.Calls() {
		if c.Token == b.token {
			sent = true
			break
		}
	}
	if !sent {
		t.Fatal("the fake never received the token: the check below would prove nothing")
	}
	found, read, err := b.redis.KeysHolding(context.Background(), b.token)
	if err != nil {
		t.Fatal(err)
	}
	if read == 0 {
		t.Fatal("Redis is empty")
	}
	if len(found) > 0 {
		t.Errorf("the token is in Redis keys %q", found)
	}
	logs := b.logs.String()
	if !strings.Contains(logs, `"msg":"attempt"`) {
		t.Fatal("no attempt log lines were captured")
	}
	if strings.Contains(logs, b.token) {
		t.Error("a log line holds the token")
	}
}
