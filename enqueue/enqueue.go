// Package enqueue is the producer side: it turns conversation ids into
// conversation:delete tasks in Redis, one at a time or from a stream of
// millions, and says what it did with each.
//
// An id that is not a conversation id is reported (with its line number when
// it came from a stream) and skipped; the valid ones are still enqueued. An id
// that already has a task waiting (pending, scheduled, retrying, running or
// archived) is counted as a duplicate, not an error: enqueueing the same file
// twice is safe.
package enqueue

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// DefaultQueue is the asynq queue used when none is named.
const DefaultQueue = "default"

// DefaultConcurrency is how many enqueue calls a stream keeps in flight.
const DefaultConcurrency = 16

// Status says what happened to one id.
type Status string

// The statuses of an enqueued id.
const (
	Enqueued  Status = "enqueued"
	Duplicate Status = "duplicate"
)

// Client enqueues deletions. It is safe for concurrent use.
type Client struct {
	rdb          redis.UniversalClient
	asynq        *asynq.Client
	defaultBatch string
	now          func() time.Time
}

// NewClient returns a client that writes tasks through rdb. The client does
// not close rdb.
func NewClient(rdb redis.UniversalClient) *Client {
	now := time.Now
	return &Client{
		rdb:          rdb,
		asynq:        asynq.NewClientFromRedisClient(rdb),
		defaultBatch: tasks.NewBatchName(now(), uint16(rand.Uint32())),
		now:          now,
	}
}

// Close releases the client. It does not close the Redis client.
func (c *Client) Close() error { return c.asynq.Close() }

// DefaultBatch is the batch name used when a call names none: generated once
// per client, so that one run of a producer is one batch.
func (c *Client) DefaultBatch() string { return c.defaultBatch }

type options struct {
	queue       string
	batch       string
	maxRetry    int
	processAt   time.Time
	processIn   time.Duration
	concurrency int
	onInvalid   func(Invalid)
}

// Option configures an enqueue call.
type Option func(*options)

// Queue names the asynq queue (default [DefaultQueue]).
func Queue(name string) Option { return func(o *options) { o.queue = name } }

// Batch names the batch the deletions belong to (default the client's
// [Client.DefaultBatch]).
func Batch(name string) Option { return func(o *options) { o.batch = name } }

// MaxRetry sets how many failed attempts are retried before a conversation
// is recorded as failed (default tasks.DefaultMaxRetry).
func MaxRetry(n int) Option { return func(o *options) { o.maxRetry = n } }

// At schedules the deletions for t instead of now.
func At(t time.Time) Option { return func(o *options) { o.processAt = t } }

// In schedules the deletions d from now.
func In(d time.Duration) Option { return func(o *options) { o.processIn = d } }

// Concurrency sets how many enqueue calls a stream keeps in flight (default
// [DefaultConcurrency]).
func Concurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// OnInvalid is called, in input order and from the calling goroutine, for
// each input that is not a conversation id.
func OnInvalid(fn func(Invalid)) Option { return func(o *options) { o.onInvalid = fn } }

// Invalid is one rejected input.
type Invalid struct {
	// Line is the input's 1-based line number (or position in a sequence).
	Line int
	// Err says why; it is a *tasks.InvalidIDError or a line-level problem.
	Err error
}

func (c *Client) options(opts []Option) (options, error) {
	o := options{queue: DefaultQueue, batch: c.defaultBatch, maxRetry: tasks.DefaultMaxRetry, concurrency: DefaultConcurrency}
	for _, opt := range opts {
		opt(&o)
	}
	if err := tasks.ValidateBatch(o.batch); err != nil {
		return o, err
	}
	if o.maxRetry < 0 {
		return o, fmt.Errorf("max retry %d: must be 0 or more", o.maxRetry)
	}
	if !o.processAt.IsZero() && o.processIn != 0 {
		return o, errors.New("give a time (At) or a delay (In), not both")
	}
	if o.concurrency < 1 {
		o.concurrency = 1
	}
	return o, nil
}

func (o options) asynqOptions() []asynq.Option {
	opts := []asynq.Option{asynq.Queue(o.queue), asynq.MaxRetry(tasks.AsynqMaxRetry(o.maxRetry))}
	if !o.processAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(o.processAt))
	}
	if o.processIn != 0 {
		opts = append(opts, asynq.ProcessIn(o.processIn))
	}
	return opts
}

// Enqueue enqueues the deletion of one conversation. An invalid id is a
// *tasks.InvalidIDError; an id that already has a task is [Duplicate] with a
// nil error.
func (c *Client) Enqueue(ctx context.Context, conversationID string, opts ...Option) (Status, error) {
	o, err := c.options(opts)
	if err != nil {
		return "", err
	}
	if err := tasks.ValidateID(conversationID); err != nil {
		return "", err
	}
	return c.enqueue(ctx, conversationID, o, o.asynqOptions())
}

func (c *Client) enqueue(ctx context.Context, id string, o options, asynqOpts []asynq.Option) (Status, error) {
	task, err := tasks.NewTask(tasks.Payload{ConversationID: id, Batch: o.batch, EnqueuedAt: c.now().Unix()}, asynqOpts...)
	if err != nil {
		return "", err
	}
	_, err = c.asynq.EnqueueContext(ctx, task)
	switch {
	case err == nil:
		return Enqueued, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return Duplicate, nil
	default:
		return "", fmt.Errorf("enqueue %s: %w", id, err)
	}
}

// EnqueueAll enqueues every id of the sequence, several at a time, and
// returns the tally. Invalid ids go to the OnInvalid callback with their
// 1-based position. It stops at the first Redis error, returning the tally so
// far: enqueueing the same ids again is safe, as those already enqueued are
// duplicates.
func (c *Client) EnqueueAll(ctx context.Context, ids iter.Seq[string], opts ...Option) (Summary, error) {
	return c.enqueueLines(ctx, func(yield func(line, error) bool) {
		n := 0
		for id := range ids {
			n++
			if !yield(line{number: n, text: id}, nil) {
				return
			}
		}
	}, opts)
}
