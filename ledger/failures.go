package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Failure is the record of a conversation that did not end deleted.
type Failure struct {
	ConversationID string    `json:"conversation_id"`
	Batch          string    `json:"batch"`
	Queue          string    `json:"queue"`
	Outcome        Outcome   `json:"outcome"`
	Code           string    `json:"code"` // empty when the answer had no code
	Msg            string    `json:"msg"`
	HTTPStatus     int       `json:"http_status"` // 0 when no answer arrived
	LogID          string    `json:"logid"`
	Attempts       int       `json:"attempts"`
	FirstAt        time.Time `json:"first_at"`
	LastAt         time.Time `json:"last_at"`
}

// Filter selects failures; empty fields match everything.
type Filter struct {
	Batch   string
	Outcome Outcome
}

func (f Filter) match(r Failure) bool {
	return (f.Batch == "" || r.Batch == f.Batch) && (f.Outcome == "" || r.Outcome == f.Outcome)
}

// Failures calls fn for each failure record that matches filter, oldest last
// attempt first, reading a page at a time.
func (l *Ledger) Failures(ctx context.Context, filter Filter, fn func(Failure) error) error {
	const page = 500
	seen := map[string]bool{} // records can move while we page; show each once
	for start := int64(0); ; start += page {
		ids, err := l.rdb.ZRange(ctx, l.failureIndexKey(), start, start+page-1).Result()
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		records, err := l.failures(ctx, ids)
		if err != nil {
			return err
		}
		for _, r := range records {
			if seen[r.ConversationID] || !filter.match(r) {
				continue
			}
			seen[r.ConversationID] = true
			if err := fn(r); err != nil {
				return err
			}
		}
	}
}

// Failure returns the failure record of id; ok is false when there is none.
func (l *Ledger) Failure(ctx context.Context, id string) (f Failure, ok bool, err error) {
	records, err := l.failures(ctx, []string{id})
	if err != nil || len(records) == 0 {
		return Failure{}, false, err
	}
	return records[0], true, nil
}

func (l *Ledger) failures(ctx context.Context, ids []string) ([]Failure, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, l.failureKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out := make([]Failure, 0, len(ids))
	for i, cmd := range cmds {
		h := cmd.Val()
		if len(h) == 0 {
			continue // deleted between the index read and now
		}
		out = append(out, decodeFailure(ids[i], h))
	}
	return out, nil
}

func decodeFailure(id string, h map[string]string) Failure {
	atoi := func(k string) int { n, _ := strconv.Atoi(h[k]); return n }
	ms := func(k string) time.Time {
		n, _ := strconv.ParseInt(h[k], 10, 64)
		return time.UnixMilli(n).UTC()
	}
	return Failure{
		ConversationID: id,
		Batch:          h["batch"],
		Queue:          h["queue"],
		Outcome:        Outcome(h["outcome"]),
		Code:           h["code"],
		Msg:            h["msg"],
		HTTPStatus:     atoi("http_status"),
		LogID:          h["logid"],
		Attempts:       atoi("attempts"),
		FirstAt:        ms("first_at"),
		LastAt:         ms("last_at"),
	}
}

var reopenScript = redis.NewScript(`
-- KEYS[1] failure hash, KEYS[2] the batch's outcome hash. ARGV[1] id,
-- ARGV[2] the outcome the record must have. Returns 1 when reopened.
if redis.call('HGET', KEYS[1], 'outcome') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'outcome', 'retrying')
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

// Reopen moves a conversation whose failure record has outcome from back to
// retrying and clears its terminal outcome in the record's batch, so that a
// new task for it can record a new outcome. It reports false when the record
// is not (or no longer) in that outcome.
func (l *Ledger) Reopen(ctx context.Context, f Failure, from Outcome) (bool, error) {
	keys := []string{l.failureKey(f.ConversationID), l.outcomesKey(f.Batch)}
	n, err := reopenScript.Run(ctx, l.rdb, keys, f.ConversationID, string(from)).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: reopen %s: %w", f.ConversationID, err)
	}
	return n == 1, nil
}
