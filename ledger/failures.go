package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Failure is the record of an id that did not end deleted in a batch.
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

// failurePage is how many records Failures reads per round trip.
const failurePage = 500

// Failures calls fn for each failure record that matches filter, oldest last
// attempt first, reading a page at a time. Workers may move records while it
// reads: it pages by last-attempt time rather than by rank, so a record that
// stays is never skipped, and each record is shown once.
func (l *Ledger) Failures(ctx context.Context, filter Filter, fn func(Failure) error) error {
	seen := map[string]bool{}
	from, skip := "-inf", 0 // skip: members at score `from` already read
	for {
		page, err := l.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: l.ks.Failures(), Start: from, Stop: "+inf", ByScore: true, Offset: int64(skip), Count: failurePage,
		}).Result()
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		members := make([]string, len(page))
		for i, z := range page {
			members[i], _ = z.Member.(string) // go-redis reads members as strings
		}
		records, err := l.failures(ctx, members)
		if err != nil {
			return err
		}
		for _, r := range records {
			key := r.Batch + "/" + r.ConversationID
			if seen[key] || !filter.match(r) {
				seen[key] = true
				continue
			}
			seen[key] = true
			if err := fn(r); err != nil {
				return err
			}
		}
		last := page[len(page)-1].Score
		lastText := strconv.FormatFloat(last, 'f', -1, 64)
		if lastText == from {
			skip += len(page)
		} else {
			skip = 0
			for _, z := range page {
				if z.Score == last {
					skip++
				}
			}
			from = lastText
		}
	}
}

// Failure returns the failure record of id in batch; ok is false when there
// is none.
func (l *Ledger) Failure(ctx context.Context, batch, id string) (f Failure, ok bool, err error) {
	records, err := l.failures(ctx, []string{batch + "/" + id})
	if err != nil || len(records) == 0 {
		return Failure{}, false, err
	}
	return records[0], true, nil
}

// failures reads the records of index members "batch/id", dropping from the
// index those whose record expired.
func (l *Ledger) failures(ctx context.Context, members []string) ([]Failure, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(members))
	for i, m := range members {
		batch, id, _ := strings.Cut(m, "/")
		cmds[i] = pipe.HGetAll(ctx, l.ks.Failure(batch, id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out := make([]Failure, 0, len(members))
	for i, m := range members {
		h := cmds[i].Val()
		if len(h) == 0 {
			l.rdb.ZRem(ctx, l.ks.Failures(), m) // expired
			continue
		}
		_, id, _ := strings.Cut(m, "/")
		out = append(out, decodeFailure(id, h))
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

//go:embed lua/reopen.lua
var reopenSource string

var reopenScript = script(reopenSource)

// Reopen moves id of batch from a terminal outcome (Failed or NotFound)
// back to pending, so that a new task for it can record a new outcome, and
// marks its failure record retrying. It reports false when the id is not (or
// no longer) in that outcome. A batch whose session name was erased
// ([Ledger.ScrubSessions]) is not reopened: the error wraps
// [ErrSessionErased] and [ErrBatchConflict].
func (l *Ledger) Reopen(ctx context.Context, batch, id string, from Outcome) (bool, error) {
	letter := outcomeLetters[from]
	if from != Failed && from != NotFound {
		return false, fmt.Errorf("ledger: only failed and not_found ids can be reopened, not %s", from)
	}
	n, err := l.run(ctx, reopenScript, batch, id, letter, time.Now().UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: reopen %s: %w", id, err)
	}
	if n == -1 {
		return false, fmt.Errorf("%w: %w: batch %s is complete and its session name was erased from the ledger; "+
			"put the ids to retry in a new batch", ErrBatchConflict, ErrSessionErased, batch)
	}
	return n == 1, nil
}

// InvalidBatch is the batch under which tasks that name no valid batch are
// recorded.
const InvalidBatch = "invalid-tasks"

// InvalidTask is a task the worker refused without calling the API: its
// payload is not JSON, or its id is not a conversation id (another producer
// wrote it).
type InvalidTask struct {
	TaskID string
	Queue  string
	// Batch is the batch the payload names, if it names a valid one.
	Batch  string
	Reason string
	At     time.Time
}

// RecordInvalid keeps a failure record of a refused task, under its batch
// (or [InvalidBatch]) with the task id in place of a conversation id, so
// that `failures list` shows it with its reason.
func (l *Ledger) RecordInvalid(ctx context.Context, t InvalidTask) error {
	batch := t.Batch
	if batch == "" {
		batch = InvalidBatch
	}
	key := l.ks.Failure(batch, t.TaskID)
	ms := t.At.UnixMilli()
	pipe := l.rdb.TxPipeline()
	pipe.HSet(ctx, key, "batch", batch, "queue", t.Queue, "outcome", string(Failed), "code", "", "msg",
		truncate("invalid task: "+t.Reason, maxMsgBytes), "http_status", "", "logid", "", "attempts", 0,
		"first_at", ms, "last_at", ms)
	pipe.Expire(ctx, key, l.ttl)
	pipe.ZAdd(ctx, l.ks.Failures(), redis.Z{Score: float64(ms), Member: batch + "/" + t.TaskID})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ledger: record invalid task %s: %w", t.TaskID, err)
	}
	return nil
}
