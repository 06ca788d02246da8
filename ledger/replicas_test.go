package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestAwaitReplicas: with a replica connected, the wait returns once it
// holds the writes; without one, the first wait uses up its timeout and
// the next ones fail at once (no WAIT that cannot succeed slows every
// write), each counted as a shortfall.
func TestAwaitReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := redistest.StartSentinel(t)
	replicated := ledger.New(s.FailoverClient(), ledger.WithReplicas(1, time.Second))
	if err := replicated.AwaitReplicas(ctx); err != nil || replicated.ReplicationShortfalls() != 0 {
		t.Errorf("with a replica: %v, %d shortfalls", err, replicated.ReplicationShortfalls())
	}

	alone := ledger.New(redistest.Start(t).Client(), ledger.WithReplicas(1, 50*time.Millisecond))
	err := alone.AwaitReplicas(ctx)
	var re *ledger.ReplicationError
	if !errors.As(err, &re) || !errors.Is(err, ledger.ErrNotReplicated) || re.Acked != 0 || re.Want != 1 {
		t.Fatalf("without a replica: %v", err)
	}
	// The second does not WAIT: the primary has no replica connected.
	err = alone.AwaitReplicas(ctx)
	if !errors.As(err, &re) || re.Timeout != 0 {
		t.Errorf("the second wait without a replica: %v, want the no-WAIT answer", err)
	}
	if n := alone.ReplicationShortfalls(); n != 2 {
		t.Errorf("%d shortfalls, want 2", n)
	}
	if err := ledger.New(redistest.Start(t).Client()).AwaitReplicas(ctx); err != nil {
		t.Errorf("without WithReplicas: %v", err)
	}
}
