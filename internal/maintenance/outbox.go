package maintenance

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// PendingCallback is a completion in the callback outbox: the ledger put
// it there when the batch completed, and its callback is not queued yet.
type PendingCallback struct {
	ledger.Completion
	member string
}

// PendingCallbacks lists the completions whose callback still has to be
// queued. Entries it cannot read are left out (and left in the outbox).
func (s *Store) PendingCallbacks(ctx context.Context) ([]PendingCallback, error) {
	members, err := s.rdb.SMembers(ctx, s.ks.Callbacks()).Result()
	if err != nil {
		return nil, fmt.Errorf("maintenance: callback outbox: %w", err)
	}
	out := make([]PendingCallback, 0, len(members))
	for _, m := range members {
		if c, ok := parseCompletion(m); ok {
			out = append(out, PendingCallback{Completion: c, member: m})
		}
	}
	return out, nil
}

// parseCompletion reads an outbox entry as the ledger writes it (see
// tryComplete in the ledger's prelude):
// "batch/completion/total/deleted/not_found/failed/completed_ms", and
// "/cancelled" after them when a cancel ended ids.
func parseCompletion(m string) (ledger.Completion, bool) {
	f := strings.Split(m, "/")
	if len(f) != 7 && len(f) != 8 {
		return ledger.Completion{}, false
	}
	cancelled := 0
	if len(f) == 8 {
		v, err := strconv.Atoi(f[7])
		if err != nil {
			return ledger.Completion{}, false
		}
		cancelled = v
	}
	n := make([]int64, 6)
	for i := range n {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return ledger.Completion{}, false
		}
		n[i] = v
	}
	return ledger.Completion{Batch: f[0], N: int(n[0]), Total: int(n[1]), Deleted: int(n[2]), NotFound: int(n[3]),
		Failed: int(n[4]), Cancelled: cancelled, CompletedAt: time.UnixMilli(n[5]).UTC()}, true
}

// CallbackQueued removes a completion from the outbox.
func (s *Store) CallbackQueued(ctx context.Context, c PendingCallback) error {
	if err := s.rdb.SRem(ctx, s.ks.Callbacks(), c.member).Err(); err != nil {
		return fmt.Errorf("maintenance: callback outbox: %w", err)
	}
	return nil
}
