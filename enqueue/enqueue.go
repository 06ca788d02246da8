// Package enqueue is the producer side: it turns conversation ids into
// conversation:delete tasks in Redis, one at a time or from a stream of
// millions, as members of a batch, and says what it did with each.
//
// A batch is an erasure request: a name, a due time, a note, the ids in it.
// Enqueueing into an existing batch adds to it. An id that is not a
// conversation id is reported (with its line number when it came from a
// stream) and skipped; the valid ones are still enqueued. An id already in the
// batch, or that already has a task waiting, is counted as a duplicate, not an
// error: enqueueing the same file twice is safe, and an id already finished in
// the batch is not sent to the API again.
package enqueue

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/ledger"
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
	// Enqueued: a task was queued for the id.
	Enqueued Status = "enqueued"
	// Duplicate: the id was in the batch already, or a task for it was
	// already queued (it will record its outcome in this batch too).
	Duplicate Status = "duplicate"
	// Finished: the id already has its outcome in the batch; nothing was
	// queued.
	Finished Status = "finished"
	// Held: the id joined the batch, its task to come from Release (the
	// Hold option).
	Held Status = "held"
)

// Client enqueues deletions. It is safe for concurrent use.
type Client struct {
	rdb          redis.UniversalClient
	wire         *asynqwire.Writer
	inspector    *asynq.Inspector
	ledger       *ledger.Ledger
	defaultBatch string
	now          func() time.Time
	templates    feedTemplates
}

// ClientOption configures a [Client].
type ClientOption func(*Client)

// WithClock sets the clock that stamps batches and tasks (default time.Now).
func WithClock(now func() time.Time) ClientOption { return func(c *Client) { c.now = now } }

// WithLedger sets the ledger the client's batches live in (default
// ledger.New over the client's Redis, under the default prefix): a worker
// whose ledger has another prefix passes its own.
func WithLedger(l *ledger.Ledger) ClientOption { return func(c *Client) { c.ledger = l } }

// NewClient returns a client that writes tasks and batches through rdb. The
// client does not close rdb.
func NewClient(rdb redis.UniversalClient, opts ...ClientOption) *Client {
	c := &Client{
		rdb:       rdb,
		wire:      asynqwire.NewWriter(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		ledger:    ledger.New(rdb),
		now:       time.Now,
	}
	for _, opt := range opts {
		opt(c)
	}
	c.defaultBatch = tasks.NewBatchName(c.now(), uint16(rand.Uint32()))
	return c
}

// Close releases the client. It does not close the Redis client, and a
// client holds nothing else today: Close is there so that callers need not
// change when it does.
func (c *Client) Close() error { return nil }

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
	due         time.Time
	dueIn       time.Duration
	note        string
	callbackURL string
	retention   time.Duration
	expectedIDs int
	profile     string
	session     string
	// held adds the ids to the batch and queues no task (Hold).
	held bool
	// verify makes a new batch complete only after a verification
	// listing (Verify).
	verify bool
}

// Option configures an enqueue call.
type Option func(*options)

// Queue names the asynq queue (default [DefaultQueue]); see
// tasks.ValidateQueue for the names allowed.
func Queue(name string) Option { return func(o *options) { o.queue = name } }

// Batch names the batch the deletions belong to (default the client's
// [Client.DefaultBatch]); see [ValidateBatch] for the names allowed.
func Batch(name string) Option { return func(o *options) { o.batch = name } }

// MaxRetry sets how many failed attempts are retried before a conversation
// is recorded as failed: 0 to [MaxRetryLimit] (default
// tasks.DefaultMaxRetry).
func MaxRetry(n int) Option { return func(o *options) { o.maxRetry = n } }

// At schedules the deletions for t instead of now; a time in the past runs
// them now. Give At or [In], not both.
func At(t time.Time) Option { return func(o *options) { o.processAt = t } }

// In schedules the deletions d from now; d must not be negative. Give [At]
// or In, not both.
func In(d time.Duration) Option { return func(o *options) { o.processIn = d } }

// Concurrency sets how many enqueue calls a stream keeps in flight: 1 to
// [MaxConcurrency] (default [DefaultConcurrency]).
func Concurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// OnInvalid is called, in input order and from the calling goroutine, for
// each input that is not a conversation id.
func OnInvalid(fn func(Invalid)) Option { return func(o *options) { o.onInvalid = fn } }

// Due sets the batch's due time when the call creates the batch (default
// ledger.DefaultDueIn after creation); it must not be in the past. Give Due
// or [DueIn], not both.
func Due(t time.Time) Option { return func(o *options) { o.due = t } }

// DueIn sets the batch's due time relative to its creation; d must not be
// negative. Give [Due] or DueIn, not both.
func DueIn(d time.Duration) Option { return func(o *options) { o.dueIn = d } }

// Note sets the batch's free-text note (a ticket, a data subject
// reference): one line of printable UTF-8, at most [MaxNoteBytes]; see
// [CheckNote].
func Note(s string) Option { return func(o *options) { o.note = s } }

// CallbackURL makes the batch POST its summary to url when it completes.
// The URL must pass callback.ValidateURL: http or https, a host, no
// user name or password.
func CallbackURL(url string) Option { return func(o *options) { o.callbackURL = url } }

// Retention sets how long the batch's records are kept after its last
// activity: [MinRetention] to [MaxRetention] (default ledger.DefaultTTL).
// The records must outlive the wait for the tasks to run by at least
// [MinRetention], and the wait for the batch's due time.
func Retention(d time.Duration) Option { return func(o *options) { o.retention = d } }

// Hold adds the ids to the batch as pending and queues no task for them:
// their deletions wait for [Client.Release]. A discovery that is still
// reading the list endpoint's pages holds what it found, since a deletion
// between two pages would shift the later ones and hide conversations from
// it. Ids already in the batch are left as they are. Should the producer
// die before it releases them, the janitor of a worker queues them once the
// batch has made no progress for its stall time (15 minutes by default).
func Hold() Option { return func(o *options) { o.held = true } }

// Verify makes a new batch complete only once a worker has listed its
// identity's conversations again and found none of its ids still there (a
// data subject's erasure: see package subject). It needs a session
// ([Session]): only a session's listing shows what that end user still
// has. It has no effect on a batch that exists.
func Verify() Option { return func(o *options) { o.verify = true } }

// ExpectedIDs tells a new batch about how many ids it will hold (from the
// size of a file, say), so that it sizes its ledger to them: a small batch
// then costs Redis less per id. A wrong guess costs only memory; more ids
// than expected still fit.
func ExpectedIDs(n int) Option { return func(o *options) { o.expectedIDs = n } }

// Profile names the identity the batch's deletions act as: a profile of
// the workers' profiles file (default the workers' default profile,
// "default"). See tasks.ValidateProfile for the names allowed. A batch has
// one identity: ids for another go in another batch.
func Profile(name string) Option { return func(o *options) { o.profile = name } }

// Session makes the deletions act as an end user's session (the JWT
// session_name the conversations were created under); it needs [Profile],
// a JWT profile. See tasks.ValidateSession. The name is personal data: the
// tasks carry it, and the ledger keeps it until the batch completes, then
// only its hash (ledger.Ledger.ScrubSessions). No error repeats it.
func Session(name string) Option { return func(o *options) { o.session = name } }

// ValidateBatch checks the name of a batch a producer writes to: the rule
// of tasks.ValidateBatch, and not ledger.InvalidBatch, under which the
// worker keeps the records of tasks it refused. The error wraps
// tasks.ErrInvalidBatch.
func ValidateBatch(name string) error {
	if err := tasks.ValidateBatch(name); err != nil {
		return err
	}
	if name == ledger.InvalidBatch {
		return fmt.Errorf("%w %q: reserved for the records of refused tasks; choose another name", tasks.ErrInvalidBatch, name)
	}
	return nil
}

// Invalid is one rejected input.
type Invalid struct {
	// Line is the input's 1-based line number (or position in a sequence).
	Line int
	// Err says why; it is a *tasks.InvalidIDError or a *LineTooLongError.
	Err error
}

// options applies opts to the client's defaults and checks them (an
// *OptionError or a *BoundsError), before a call writes anything.
func (c *Client) options(opts []Option) (options, error) {
	o := defaultOptions(c.defaultBatch)
	for _, opt := range opts {
		opt(&o)
	}
	return o, o.check(c.now())
}

// Bounds of the options.
const (
	// MaxRetryLimit is the largest retry budget. asynq keeps the budget plus
	// tasks.RetryReserve in an int32, and 2147483647 wrapped around to no
	// retry at all; 1000 retries at the default backoff keep an id retrying
	// for days, far more than any transient outage needs.
	MaxRetryLimit = 1000
	// MaxNoteBytes bounds a note: a ticket and a subject reference fit, and
	// every status and report carries the note.
	MaxNoteBytes = 1024
	// MinRetention is the shortest retention, and the least time the
	// records must outlive the wait for the tasks to run.
	MinRetention = time.Hour
	// MaxRetention is the longest retention, ten years: any longer is a
	// typo, not a policy.
	MaxRetention = 87600 * time.Hour
)

// CheckMaxRetry reports whether n is a retry budget [MaxRetry] takes. The
// error wraps [ErrOutOfRange] and gives the allowed range; callers name
// the value.
func CheckMaxRetry(n int) error {
	if n < 0 || n > MaxRetryLimit {
		return outOfRange(fmt.Sprintf("must be 0 to %d", MaxRetryLimit))
	}
	return nil
}

// CheckNote reports whether s is a note [Note] takes: valid UTF-8, at most
// [MaxNoteBytes], and no control characters (newlines and escape sequences
// included), so that a note prints as one inert line wherever it is shown.
// The error says what is wrong and where (a note too long wraps
// [ErrOutOfRange]); callers name the value.
func CheckNote(s string) error {
	if len(s) > MaxNoteBytes {
		return outOfRange(fmt.Sprintf("%d bytes long; at most %d bytes are allowed", len(s), MaxNoteBytes))
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"): // not a real U+FFFD
			return fmt.Errorf("not valid UTF-8 (byte %d)", i+1)
		case unicode.IsControl(r):
			return fmt.Errorf("has the control character %U at byte %d; a note is one line of printable text", r, i+1)
		}
	}
	return nil
}

// CheckRetention reports whether d is a retention [Retention] takes, on its
// own; the client also checks it against the schedule and the due time.
// The error wraps [ErrOutOfRange] and gives the allowed range.
func CheckRetention(d time.Duration) error {
	if d < MinRetention || d > MaxRetention {
		return outOfRange(fmt.Sprintf("must be %v to %v", MinRetention, MaxRetention))
	}
	return nil
}

// The problems a [BoundsError] names.
const (
	DueInThePast     = "is in the past"
	ExpiresBeforeRun = "records would expire before the tasks run"
	ExpiresBeforeDue = "records would expire before the batch is due"
)

// BoundsError is a batch setting that the others make impossible: a due
// time in the past, or records (the retention) that would expire before
// the tasks run or before the batch is due. A command reports it in its
// own flags' words.
type BoundsError struct {
	// Problem is DueInThePast, ExpiresBeforeRun or ExpiresBeforeDue.
	Problem string
	Due     time.Time
	// Retention is the records' retention; Until the wait it must outlive
	// (until the tasks run, or until the batch is due).
	Retention, Until time.Duration
}

// Error says what is wrong in the library's words.
func (e *BoundsError) Error() string {
	switch e.Problem {
	case DueInThePast:
		return fmt.Sprintf("due %s: %s", e.Due.Format(time.RFC3339), e.Problem)
	case ExpiresBeforeRun:
		return fmt.Sprintf("retention %v: %s in %v; keep them at least %v longer than that", e.Retention, e.Problem, e.Until, MinRetention)
	}
	return fmt.Sprintf("retention %v: %s in %v; keep them longer, or give an earlier due time", e.Retention, e.Problem, e.Until)
}

// checkBounds checks the due time, the schedule and the retention against
// each other and now (a *BoundsError): records that expire before the
// tasks run, or before the batch is due, lose the proof. Each was checked
// on its own first.
func checkBounds(o options, now time.Time) error {
	retention := o.retention
	if !o.due.IsZero() && o.due.Before(now) {
		return &BoundsError{Problem: DueInThePast, Due: o.due, Retention: retention}
	}
	untilRun := o.processIn
	if !o.processAt.IsZero() {
		untilRun = max(o.processAt.Sub(now), 0) // a past time runs now
	}
	if retention < untilRun+MinRetention {
		return &BoundsError{Problem: ExpiresBeforeRun, Retention: retention, Until: untilRun}
	}
	untilDue := ledger.DefaultDueIn
	switch {
	case !o.due.IsZero():
		untilDue = o.due.Sub(now)
	case o.dueIn > 0:
		untilDue = o.dueIn
	}
	if retention <= untilDue {
		return &BoundsError{Problem: ExpiresBeforeDue, Due: o.due, Retention: retention, Until: untilDue}
	}
	return nil
}

// wireTask is the task of id, as asynq's Client would write it with the
// options' queue, retry budget and time.
func (o options) wireTask(id string, now time.Time) (asynqwire.Task, error) {
	payload, err := tasks.Payload{ConversationID: id, Batch: o.batch}.WithIdentity(o.profile, o.session).Encode()
	if err != nil {
		return asynqwire.Task{}, err
	}
	t := asynqwire.Task{ID: tasks.TaskID(id), Type: tasks.TypeDelete, Payload: payload, Queue: o.queue,
		MaxRetry: tasks.AsynqMaxRetry(o.maxRetry), ProcessAt: o.processAt}
	if o.processIn != 0 {
		t.ProcessAt = now.Add(o.processIn)
	}
	return t, nil
}

// openBatch creates the batch of o unless it exists, and returns the adder
// that holds it open while ids are added.
func (c *Client) openBatch(ctx context.Context, o options) (*ledger.Adder, error) {
	now := c.now()
	spec := ledger.BatchSpec{Name: o.batch, Created: now, Due: o.due, Note: o.note, CallbackURL: o.callbackURL,
		TTL: o.retention, Queue: o.queue, Now: c.now, ExpectedIDs: o.expectedIDs, Profile: o.profile, Session: o.session, Verify: o.verify,
		Hold: o.held, FeedAt: o.feedAt(now), AsynqMaxRetry: tasks.AsynqMaxRetry(o.maxRetry)}
	if o.dueIn > 0 {
		spec.Due = now.Add(o.dueIn)
	}
	return c.ledger.OpenBatch(ctx, spec)
}

// feedAt is when the options' ids may become tasks: their schedule (At,
// In), or zero for as soon as their queue has room.
func (o options) feedAt(now time.Time) time.Time {
	switch {
	case o.processIn != 0:
		return now.Add(o.processIn)
	case o.processAt.After(now):
		return o.processAt
	}
	return time.Time{}
}

// Enqueue enqueues the deletion of one conversation. An invalid id is a
// *tasks.InvalidIDError.
func (c *Client) Enqueue(ctx context.Context, conversationID string, opts ...Option) (Status, error) {
	if err := tasks.ValidateID(conversationID); err != nil {
		return "", err
	}
	var status Status
	_, err := c.enqueueLines(ctx, func(yield func(line, error) bool) {
		yield(line{number: 1, text: conversationID}, nil)
	}, opts, func(s Status) { status = s })
	return status, err
}

// EnqueueAll enqueues every id of the sequence, several at a time, and
// returns the tally. Invalid ids go to the OnInvalid callback with their
// 1-based position. It stops at the first Redis error, returning the tally so
// far: enqueueing the same ids again is safe.
func (c *Client) EnqueueAll(ctx context.Context, ids iter.Seq[string], opts ...Option) (Summary, error) {
	return c.enqueueLines(ctx, func(yield func(line, error) bool) {
		n := 0
		for id := range ids {
			n++
			if !yield(line{number: n, text: id}, nil) {
				return
			}
		}
	}, opts, nil)
}

// guard makes a task's write depend on id being pending in its batch
// (entryKey is the hash of its entry): a worker may finish the id at any
// moment (with a task of another batch it is linked to), and a second task
// would call the API again for an id already deleted.
func guard(entryKey, id string) *asynqwire.Guard {
	return &asynqwire.Guard{Key: entryKey, Field: id, Allow: ledger.PendingValues()}
}

// settleConflict gives a pending id the task t, unless a task with its id
// exists already (the feed found one, or a retry may): that task, this
// batch's or another batch's, is linked, so that its outcome is recorded
// here too (a link to the task's own batch is harmless). When there is
// none, or it is archived after failing elsewhere, t is written, guarded:
// only while the id is pending (entryKey holds its entry).
func (c *Client) settleConflict(ctx context.Context, entryKey, id string, o options, t asynqwire.Task) (Status, error) {
	t.Guard = guard(entryKey, id)
	for range 3 {
		state, err := c.ledger.Link(ctx, o.batch, id, t.Queue, t.ID)
		if err != nil {
			return "", err
		}
		switch state {
		case "finished":
			return Finished, nil
		case "pending", "scheduled", "retry", "active":
			return Duplicate, nil
		case "archived":
			// It failed in another batch; this batch asks for a new attempt.
			if err := c.inspector.DeleteTask(t.Queue, t.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return "", fmt.Errorf("enqueue %s: replace the archived task: %w", id, err)
			}
		}
		// Gone, or deleted just now: write ours.
		results, err := c.wire.EnqueueMany(ctx, []asynqwire.Task{t})
		if err != nil {
			return "", fmt.Errorf("enqueue %s: %w", id, err)
		}
		switch results[0] {
		case asynqwire.Written:
			return Enqueued, nil
		case asynqwire.Refused:
			return Finished, nil
		}
		// Another task appeared in the meantime: link that one.
	}
	return "", fmt.Errorf("enqueue %s: a task for it keeps appearing and disappearing", id)
}
