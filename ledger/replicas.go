package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis replicates asynchronously: a write the primary acknowledged may not
// have reached a replica when the primary dies, and a failover (Sentinel,
// a managed Redis) then loses it. [WithReplicas] closes that for the
// writes that matter: the ids a producer was told are queued, and the
// outcomes a worker recorded. After them, the ledger asks Redis to WAIT
// until that many replicas hold them.

// WithReplicas makes the writes that matter (see [Ledger.AwaitReplicas])
// wait until n replicas acknowledge them, at most timeout each. 0, the
// default, waits for none.
func WithReplicas(n int, timeout time.Duration) Option {
	if timeout <= 0 {
		timeout = DefaultReplicaTimeout // WAIT's 0 would block for ever
	}
	return func(l *Ledger) { l.replicas, l.replicaTimeout = n, timeout }
}

// DefaultReplicaTimeout bounds a wait for replicas when WithReplicas is
// given none.
const DefaultReplicaTimeout = time.Second

// ErrNotReplicated is wrapped by the error of [Ledger.AwaitReplicas] when
// fewer replicas than asked acknowledged the writes in time: they are on
// the primary, and a failover now could lose them.
var ErrNotReplicated = errors.New("not acknowledged by enough replicas")

// ReplicationError says how many replicas acknowledged.
type ReplicationError struct {
	Acked, Want int
	Timeout     time.Duration
}

func (e *ReplicationError) Error() string {
	if e.Timeout == 0 {
		return fmt.Sprintf("fewer than %d replicas are connected to the primary: a failover now could lose the writes", e.Want)
	}
	return fmt.Sprintf("%d of %d replicas acknowledged the writes within %v: a failover now could lose them", e.Acked, e.Want, e.Timeout)
}

// Unwrap makes the error match [ErrNotReplicated].
func (e *ReplicationError) Unwrap() error { return ErrNotReplicated }

// Replicas returns how many replicas the ledger waits for (0: none).
func (l *Ledger) Replicas() int { return l.replicas }

// AwaitReplicas returns once the configured number of replicas hold every
// write that completed before the call, from any connection, or with a
// [*ReplicationError] after the timeout. Without WithReplicas it returns
// at once.
//
// Redis's WAIT covers the writes of the connection it runs on, and a pool
// spreads a ledger's writes over many: so it writes a marker on one
// connection and WAITs there, in one pipeline. The replication stream is
// in order, so a replica that holds the marker holds every write the
// primary made before it.
func (l *Ledger) AwaitReplicas(ctx context.Context) error {
	if l.replicas <= 0 {
		return nil
	}
	now := time.Now()
	if now.UnixNano() < l.fewReplicasUntil.Load() {
		// Fewer replicas are connected than asked (a failover left the
		// new primary alone): a WAIT would only use up its timeout, on
		// every write, and slow the fleet to a crawl.
		l.shortfalls.Add(1)
		return &ReplicationError{Acked: 0, Want: l.replicas, Timeout: 0}
	}
	var wait *redis.Cmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, l.ks.Replicated(), strconv.FormatInt(time.Now().UnixMilli(), 10), 0)
		wait = p.Do(ctx, "WAIT", l.replicas, l.replicaTimeout.Milliseconds())
		return nil
	})
	if err != nil {
		l.shortfalls.Add(1)
		return fmt.Errorf("ledger: waiting for replicas: %w", err)
	}
	acked, err := wait.Int()
	if err != nil {
		l.shortfalls.Add(1)
		return fmt.Errorf("ledger: waiting for replicas: %w", err)
	}
	if acked < l.replicas {
		l.shortfalls.Add(1)
		if connected, err := l.connectedReplicas(ctx); err == nil && connected < l.replicas {
			l.fewReplicasUntil.Store(now.Add(fewReplicasRecheck).UnixNano())
		}
		return &ReplicationError{Acked: acked, Want: l.replicas, Timeout: l.replicaTimeout}
	}
	return nil
}

// fewReplicasRecheck is how long the ledger writes without waiting once it
// found fewer replicas connected than it waits for, before it tries again.
const fewReplicasRecheck = 5 * time.Second

// connectedReplicas reads how many replicas the primary has now (INFO
// replication's connected_slaves).
func (l *Ledger) connectedReplicas(ctx context.Context) (int, error) {
	info, err := l.rdb.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("no connected_slaves in INFO replication")
}

// ReplicationShortfalls counts the waits for replicas that ended short (or
// failed) since the ledger was made: writes a failover could have lost.
func (l *Ledger) ReplicationShortfalls() int64 { return l.shortfalls.Load() }
