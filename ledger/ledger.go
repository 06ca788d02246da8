// Package ledger is the durable record of what happened to each conversation:
// one terminal outcome per batch and id, and a detailed failure record for
// every conversation that did not end deleted.
//
// asynq's own archive keeps at most 10,000 tasks for 90 days and loses
// successful tasks at once, which cannot prove anything a month later. The
// ledger keeps, in Redis:
//
//   - per batch, a hash from conversation id to its terminal outcome (deleted,
//     not_found or failed), the final attempt's code and log id, the number of
//     attempts and the finishing time. An outcome is written once: a task that
//     runs twice, as asynq's at-least-once delivery allows, cannot change it
//     or count it twice;
//   - per conversation that is failing or failed, a record with the last code,
//     msg, HTTP status, log id, attempts, and first and last attempt times,
//     indexed by last attempt time. A later deletion removes it.
//
// Every write is one Lua script, so a record is never half written.
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

// Outcome is where a conversation stands.
type Outcome string

// The outcomes. Deleted, NotFound and Failed are terminal; Retrying is the
// state of a conversation whose last attempt failed and which still has
// retries.
const (
	Deleted  Outcome = "deleted"
	NotFound Outcome = "not_found"
	Failed   Outcome = "failed"
	Retrying Outcome = "retrying"
)

// Terminal reports whether o is a final outcome.
func (o Outcome) Terminal() bool { return o == Deleted || o == NotFound || o == Failed }

// ParseOutcome reads an outcome name.
func ParseOutcome(s string) (Outcome, error) {
	switch o := Outcome(s); o {
	case Deleted, NotFound, Failed, Retrying:
		return o, nil
	}
	return "", fmt.Errorf("unknown outcome %q: use deleted, not_found, failed or retrying", s)
}

var outcomeLetters = map[Outcome]string{Deleted: "d", NotFound: "n", Failed: "f", Retrying: "r"}

func outcomeFromLetter(l string) Outcome {
	for o, letter := range outcomeLetters {
		if letter == l {
			return o
		}
	}
	return ""
}

// DefaultPrefix starts every key the ledger writes.
const DefaultPrefix = "coze-eraser:"

// maxMsgBytes bounds the msg kept per failure: a gateway can send anything.
const maxMsgBytes = 512

// Ledger reads and writes the records. It is safe for concurrent use.
type Ledger struct {
	rdb    redis.UniversalClient
	prefix string
}

// Option configures a [Ledger].
type Option func(*Ledger)

// WithPrefix changes the key prefix (default [DefaultPrefix]).
func WithPrefix(p string) Option { return func(l *Ledger) { l.prefix = p } }

// New returns a ledger stored in rdb.
func New(rdb redis.UniversalClient, opts ...Option) *Ledger {
	l := &Ledger{rdb: rdb, prefix: DefaultPrefix}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

func (l *Ledger) outcomesKey(batch string) string { return l.prefix + "outcome:" + batch }
func (l *Ledger) failureKey(id string) string     { return l.prefix + "failure:" + id }
func (l *Ledger) failureIndexKey() string         { return l.prefix + "failures" }

// Attempt is one API call's outcome for a conversation.
type Attempt struct {
	ConversationID string
	Batch          string
	Queue          string
	Outcome        Outcome
	// Code is the body code; HasCode is false when the answer had none.
	Code       int64
	HasCode    bool
	Msg        string
	HTTPStatus int
	LogID      string
	At         time.Time
}

// Recorded is what [Ledger.Record] did.
type Recorded struct {
	// Terminal is true when this attempt gave the conversation its terminal
	// outcome in the batch: exactly once per batch and id.
	Terminal bool
	// Attempts is the number of attempts recorded for the conversation,
	// this one included. It is 0 when the attempt was ignored because the
	// batch already has a terminal outcome for the id.
	Attempts int
}

//go:embed record.lua
var recordSource string

var recordScript = redis.NewScript(recordSource)

// Record stores an attempt. Outcomes only move forward: once the batch has a
// terminal outcome for the id, later attempts (a duplicate execution) are
// ignored, and only [Ledger.Reopen] moves a failure back.
func (l *Ledger) Record(ctx context.Context, a Attempt) (Recorded, error) {
	letter, ok := outcomeLetters[a.Outcome]
	if !ok {
		return Recorded{}, fmt.Errorf("ledger: cannot record outcome %q", a.Outcome)
	}
	code := ""
	if a.HasCode {
		code = strconv.FormatInt(a.Code, 10)
	}
	keys := []string{l.outcomesKey(a.Batch), l.failureKey(a.ConversationID), l.failureIndexKey()}
	res, err := recordScript.Run(ctx, l.rdb, keys,
		a.ConversationID, letter, code, truncate(a.Msg, maxMsgBytes), a.HTTPStatus, a.LogID,
		a.At.UnixMilli(), a.Batch, a.Queue, string(a.Outcome)).Int64Slice()
	if err != nil {
		return Recorded{}, fmt.Errorf("ledger: record %s: %w", a.ConversationID, err)
	}
	return Recorded{Terminal: res[0] == 1, Attempts: int(res[1])}, nil
}

// Final is a conversation's terminal outcome in a batch.
type Final struct {
	ConversationID string
	Outcome        Outcome
	Code           string
	LogID          string
	Attempts       int
	FinishedAt     time.Time
}

// Final returns the terminal outcome of id in batch; ok is false when it has
// none yet.
func (l *Ledger) Final(ctx context.Context, batch, id string) (f Final, ok bool, err error) {
	v, err := l.rdb.HGet(ctx, l.outcomesKey(batch), id).Result()
	if errors.Is(err, redis.Nil) {
		return Final{}, false, nil
	}
	if err != nil {
		return Final{}, false, fmt.Errorf("ledger: %w", err)
	}
	f, err = decodeFinal(id, v)
	return f, err == nil, err
}

// Finals calls fn for every terminal outcome of the batch, in no particular
// order, reading the batch a page at a time.
func (l *Ledger) Finals(ctx context.Context, batch string, fn func(Final) error) error {
	iter := l.rdb.HScan(ctx, l.outcomesKey(batch), 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		id := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		f, err := decodeFinal(id, iter.Val())
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// decodeFinal reads "o|code|logid|attempts|finished_ms".
func decodeFinal(id, v string) (Final, error) {
	parts := strings.Split(v, "|")
	if len(parts) != 5 {
		return Final{}, fmt.Errorf("ledger: malformed outcome for %s: %q", id, v)
	}
	attempts, _ := strconv.Atoi(parts[3])
	ms, _ := strconv.ParseInt(parts[4], 10, 64)
	return Final{
		ConversationID: id,
		Outcome:        outcomeFromLetter(parts[0]),
		Code:           parts[1],
		LogID:          parts[2],
		Attempts:       attempts,
		FinishedAt:     time.UnixMilli(ms).UTC(),
	}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		n--
	}
	return s[:n]
}

// Tally counts a batch's terminal outcomes.
type Tally struct {
	Deleted  int
	NotFound int
	Failed   int
}

// Done is the number of ids with a terminal outcome.
func (t Tally) Done() int { return t.Deleted + t.NotFound + t.Failed }

// Tally counts the terminal outcomes of batch by reading them all; its cost
// grows with the batch.
func (l *Ledger) Tally(ctx context.Context, batch string) (Tally, error) {
	var t Tally
	err := l.Finals(ctx, batch, func(f Final) error {
		switch f.Outcome {
		case Deleted:
			t.Deleted++
		case NotFound:
			t.NotFound++
		case Failed:
			t.Failed++
		}
		return nil
	})
	return t, err
}
