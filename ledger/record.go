package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
)

// Attempt is one API call's outcome for a conversation.
type Attempt struct {
	ConversationID string
	Batch          string
	Queue          string
	// Outcome is Deleted, NotFound, Failed, or Retrying for a failed attempt
	// that will be retried.
	Outcome Outcome
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
	// Transitions counts the batches in which this attempt gave the id its
	// terminal outcome: the task's own and any that were waiting for the
	// same id. It is 0 for a duplicate run and for a retrying attempt.
	Transitions int
	// Attempts is the number of attempts recorded for the id in the task's
	// batch, this one included; 0 for a duplicate run.
	Attempts int
	// Completed lists the batches this attempt completed.
	Completed []string
	// Lost is true when the attempt's batch no longer exists and neither
	// does its task: Redis lost them while the task ran. The outcome is
	// kept in the batch's lost record (see [Ledger.LostBatch]), and the
	// batch is not created anew.
	Lost bool
}

// deleteTaskIDPrefix is the part of a deletion's asynq task id before the
// conversation id (tasks.TaskID(""), which a test holds it to).
const deleteTaskIDPrefix = "del:"

//go:embed lua/record.lua
var recordSource string

var recordScript = script(recordSource)

// Record stores an attempt. Outcomes only move forward: once the batch has a
// terminal outcome for the id, later attempts (a duplicate run) change
// nothing, and only [Ledger.Reopen] moves a failure back to pending.
func (l *Ledger) Record(ctx context.Context, a Attempt) (Recorded, error) {
	res, err := l.RecordMany(ctx, []Attempt{a})
	if err != nil {
		return Recorded{}, err
	}
	return res[0], nil
}

// RecordMany stores several attempts in one script call, in order, as if
// Record were called for each: it is the group commit of a [Writer]. The
// batches they complete are reported with the last attempt that finished
// in each.
func (l *Ledger) RecordMany(ctx context.Context, attempts []Attempt) ([]Recorded, error) {
	args := make([]any, 0, 6+10*len(attempts))
	args = append(args, ttlSeconds(l.ttl), DefaultDueIn.Milliseconds(), Buckets, deleteTaskIDPrefix)
	for _, a := range attempts {
		letter, ok := outcomeLetters[a.Outcome]
		if !ok {
			return nil, fmt.Errorf("ledger: cannot record outcome %q", a.Outcome)
		}
		code := ""
		if a.HasCode {
			code = strconv.FormatInt(a.Code, 10)
		}
		status := ""
		if a.HTTPStatus != 0 {
			status = strconv.Itoa(a.HTTPStatus)
		}
		args = append(args, a.ConversationID, a.Batch, letter, code, strings.ReplaceAll(a.LogID, "|", "/"),
			a.At.UnixMilli(), a.Queue)
		if letter != "d" { // the failure fields, which a deletion does not use (see record.lua)
			args = append(args, truncate(a.Msg, maxMsgBytes), status, string(a.Outcome))
		}
	}
	res, err := l.run(ctx, recordScript, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("ledger: record %d attempts: %w", len(attempts), err)
	}
	return decodeRecordReply(len(attempts), res)
}

// decodeRecordReply reads record.lua's reply for n attempts: it lists only
// the attempts whose result is not the common one (see record.lua), as
// groups of {attempt, transitions, attempts, completed}.
func decodeRecordReply(n int, res []any) ([]Recorded, error) {
	const script = "record.lua"
	out := make([]Recorded, n)
	for i := range out {
		out[i] = Recorded{Transitions: 1, Attempts: 1}
	}
	if len(res)%4 != 0 {
		return nil, &replyError{script, res, "groups of 4 values"}
	}
	for group := range slices.Chunk(res, 4) {
		k, err1 := replyInt(script, group[0])
		transitions, err2 := replyInt(script, group[1])
		count, err3 := replyInt(script, group[2])
		done, err4 := replyText(script, group[3])
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, err
		}
		if k < 1 || k > int64(n) {
			return nil, &replyError{script, group[0], fmt.Sprintf("an attempt from 1 to %d", n)}
		}
		r := Recorded{Transitions: int(transitions), Attempts: int(count)}
		if count < 0 {
			r = Recorded{Lost: true}
		}
		if done != "" {
			r.Completed = strings.Fields(done)
		}
		out[k-1] = r
	}
	return out, nil
}

// Entry is one id of a batch: its outcome and, once finished, the final
// attempt's code and log id.
type Entry struct {
	ConversationID string
	Outcome        Outcome
	Code           string
	LogID          string
	Attempts       int
	FinishedAt     time.Time
}

// Entry returns one id's entry in a batch; ok is false when the id is not
// in it.
func (l *Ledger) Entry(ctx context.Context, batch, id string) (e Entry, ok bool, err error) {
	b, ok, err := l.Batch(ctx, batch)
	if err != nil || !ok {
		return Entry{}, false, err
	}
	v, err := l.rdb.HGet(ctx, l.ks.BatchIDs(batch, keyspace.Bucket(id, b.buckets())), id).Result()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("ledger: %w", err)
	}
	return decodeEntry(id, v), true, nil
}

// Entries calls fn for every id of the batch, bucket by bucket, in no
// particular order. It reads a page at a time: memory does not grow with
// the batch.
func (l *Ledger) Entries(ctx context.Context, batch string, fn func(Entry) error) error {
	b, ok, err := l.Batch(ctx, batch)
	if err != nil || !ok {
		return err
	}
	for k := range b.buckets() {
		if err := l.scanEntries(ctx, l.ks.BatchIDs(batch, k), fn); err != nil {
			return err
		}
	}
	return nil
}

// scanEntries calls fn for each id -> entry field of the hash at key, a
// page at a time.
func (l *Ledger) scanEntries(ctx context.Context, key string, fn func(Entry) error) error {
	iter := l.rdb.HScan(ctx, key, 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		id := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		if err := fn(decodeEntry(id, iter.Val())); err != nil {
			return err
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// BucketCount is how many hashes the batch's ids are spread over.
func (b Batch) BucketCount() int { return b.buckets() }

func (b Batch) buckets() int {
	if b.nbuckets > 0 {
		return b.nbuckets
	}
	return Buckets
}

// decodeEntry reads "p" or "r" (pending, the latter after a failed
// attempt) or "o|code|logid|attempts|finished_unix".
func decodeEntry(id, v string) Entry {
	e := Entry{ConversationID: id, Outcome: Pending}
	if v == "" || v == "p" || v == "r" {
		return e
	}
	parts := strings.SplitN(v, "|", 5)
	e.Outcome = outcomeFromLetter(v[0])
	if len(parts) == 5 {
		e.Code, e.LogID = parts[1], parts[2]
		e.Attempts, _ = strconv.Atoi(parts[3])
		secs, _ := strconv.ParseInt(parts[4], 10, 64)
		e.FinishedAt = time.Unix(secs, 0).UTC()
	}
	return e
}
