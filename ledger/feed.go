package ledger

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
)

// A batch's pending ids wait in the ledger, not as asynq tasks: an id
// costs its entry and its place in the batch's unfed list, a few dozen
// bytes, where a task costs over five hundred. Workers feed each queue
// from the ledger, keeping enough tasks waiting for the fleet to work on
// ([Ledger.Feed]); the rest of a batch of millions stays compact.

//go:embed lua/feed.lua
var feedSource string

var feedScript = script(feedSource)

// FeedBatch is a batch to make tasks for, with the template of its tasks:
// an id's task message is MessageHead, its payload (PayloadPrefix, the id,
// PayloadSuffix) and its task id, then MessageTail (see
// internal/asynqwire's Template and tasks.Payload.PayloadTemplate). A batch
// with no MessageHead can get no task: Feed takes it out of the feed.
type FeedBatch struct {
	Name                         string
	PayloadPrefix, PayloadSuffix []byte
	MessageHead, MessageTail     []byte
}

// FeedConflict is an id Feed took from its batch's unfed list but made no
// task for, because a task with its task id exists: the caller links the
// batch to it (or replaces an archived one). Its entry is still pending.
type FeedConflict struct{ Batch, ConversationID string }

// FeedResult is what one call of [Ledger.Feed] did.
type FeedResult struct {
	// Fed counts the tasks made.
	Fed int
	// Waiting is the length of the queue's pending list afterwards, and
	// WaitingBefore before the feed.
	Waiting, WaitingBefore int
	Conflicts              []FeedConflict
}

// FeedReady returns up to limit batches of queue's feed that may be fed
// at now, longest waiting first.
func (l *Ledger) FeedReady(ctx context.Context, queue string, now time.Time, limit int) ([]string, error) {
	names, err := l.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: l.ks.Feed(queue), ByScore: true,
		Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: feed of %s: %w", queue, err)
	}
	return names, nil
}

// Feed makes tasks in queue for the pending ids of batches (from
// [Ledger.FeedReady]) until queue's pending list holds target tasks, or
// most tasks were made, in one atomic step: an even share of the room per
// batch, oldest ids first. taskIDPrefix is what precedes an id in its task
// id (tasks.TaskID("")).
func (l *Ledger) Feed(ctx context.Context, queue string, target, most int, batches []FeedBatch, taskIDPrefix string, now time.Time) (FeedResult, error) {
	args := make([]any, 0, 6+5*len(batches))
	args = append(args, queue, target, now.UnixMilli(), now.UnixNano(), taskIDPrefix, most)
	for _, b := range batches {
		args = append(args, b.Name, b.PayloadPrefix, b.PayloadSuffix, b.MessageHead, b.MessageTail)
	}
	res, err := l.run(ctx, feedScript, args...).Slice()
	if err != nil {
		return FeedResult{}, fmt.Errorf("ledger: feed %s: %w", queue, err)
	}
	if len(res) < 3 || len(res)%2 != 1 {
		return FeedResult{}, fmt.Errorf("ledger: feed %s: a reply of %d values", queue, len(res))
	}
	fed, _ := res[0].(int64)
	waiting, _ := res[1].(int64)
	before, _ := res[2].(int64)
	r := FeedResult{Fed: int(fed), Waiting: int(waiting), WaitingBefore: int(before)}
	for i := 3; i+1 < len(res); i += 2 {
		b, _ := res[i].(string)
		id, _ := res[i+1].(string)
		r.Conflicts = append(r.Conflicts, FeedConflict{Batch: b, ConversationID: id})
	}
	return r, nil
}

// Release lets batch's held ids (added with [BatchSpec.Hold]) be fed into
// their queues from feedAt on, as tasks with asynqMaxRetry (see
// [BatchSpec.AsynqMaxRetry]). It returns how many ids wait for a task.
func (l *Ledger) Release(ctx context.Context, batch string, feedAt time.Time, asynqMaxRetry int) (int, error) {
	n, err := l.run(ctx, releaseScript, batch, feedAt.UnixMilli(), asynqMaxRetry).Int()
	if err != nil {
		return 0, fmt.Errorf("ledger: release %s: %w", batch, err)
	}
	return n, nil
}

//go:embed lua/release.lua
var releaseSource string

var releaseScript = script(releaseSource)

// EntryKey returns the hash that holds id's entry in batch b, under the
// field id (see [Adder.EntryKey]).
func (l *Ledger) EntryKey(b Batch, id string) string {
	return l.ks.BatchIDs(b.Name, keyspace.Bucket(id, b.BucketCount()))
}

// Unfed counts, per queue, the ids of the batches in its feed that wait
// for their task (held batches, in no feed yet, are not counted): the
// queue's backlog beyond the tasks it holds.
func (l *Ledger) Unfed(ctx context.Context) (map[string]int, error) {
	queues, err := l.rdb.SMembers(ctx, l.ks.Feeds()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: feeds: %w", err)
	}
	out := make(map[string]int, len(queues))
	for _, q := range queues {
		names, err := l.rdb.ZRange(ctx, l.ks.Feed(q), 0, -1).Result()
		if err != nil {
			return nil, fmt.Errorf("ledger: feed of %s: %w", q, err)
		}
		pipe := l.rdb.Pipeline()
		lens := make([]*redis.IntCmd, len(names))
		for i, name := range names {
			lens[i] = pipe.LLen(ctx, l.ks.BatchUnfed(name, q))
		}
		if _, err := pipe.Exec(ctx); err != nil && len(names) > 0 {
			return nil, fmt.Errorf("ledger: feed of %s: %w", q, err)
		}
		out[q] = 0
		for _, n := range lens {
			out[q] += int(n.Val())
		}
	}
	return out, nil
}
