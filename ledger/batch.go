package ledger

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// BatchSpec describes a batch to create.
type BatchSpec struct {
	Name string
	// Created is the creation time; Due the time every id must have an
	// outcome by (default Created + [DefaultDueIn]).
	Created time.Time
	Due     time.Time
	// Note is free text: a ticket number, a data subject reference.
	Note string
	// CallbackURL, when set, receives the batch's summary when it completes.
	CallbackURL string
	// TTL is how long the batch's records are kept after its last activity
	// (default the ledger's, [DefaultTTL]).
	TTL time.Duration
	// Queue is the asynq queue the caller puts the batch's tasks in.
	Queue string
	// AdderLease is how long the caller may go between two additions
	// before the batch may complete without it (default [DefaultAdderLease]).
	AdderLease time.Duration
	// Now is the clock of the additions; default time.Now.
	Now func() time.Time
	// Hold keeps the ids the adder adds from being fed: their tasks wait
	// for [Ledger.Release] (or the janitor's repair of a stalled batch).
	Hold bool
	// FeedAt is when the ids the adder adds may be fed into Queue
	// (default now): a scheduled batch's ids become tasks at its time. A
	// batch in the feed already keeps its place.
	FeedAt time.Time
	// AsynqMaxRetry is asynq's MaxRetry of the tasks made for the ids
	// (tasks.AsynqMaxRetry of their retry budget; 0 means the default
	// budget's); it becomes the batch's [Batch.AsynqMaxRetry].
	AsynqMaxRetry int
	// ExpectedIDs is how many ids the batch will hold, when the caller
	// knows (the size of a file): it sizes a new batch's buckets with
	// [BucketsFor]. 0 means unknown. It is a hint: more ids still fit.
	ExpectedIDs int
	// Profile names the identity the batch's tasks act as (a profile of
	// the workers' profiles file); empty is [DefaultProfile]. A batch has
	// one identity: unlike the note or the due time, an empty Profile
	// means the default one, not "any".
	Profile string
	// Session is the end user's session name (JWT session_name) the
	// batch's tasks act as; it needs a Profile. It is personal data: the
	// ledger keeps it only until the batch completes (see
	// [Ledger.ScrubSessions]) and never puts it in an error.
	Session string
	// Verify makes the batch complete only after a verification listing
	// (see Ledger.PendingVerifications): a data subject's erasure. It
	// applies to a batch OpenBatch creates; set for an existing batch that
	// is not verified, it is an [ErrBatchConflict].
	Verify bool
}

// DefaultProfile is the profile of a batch that names none, and of the
// batches made before batches had identities: the workers' default
// identity.
const DefaultProfile = tasks.DefaultProfile

// DefaultAdderLease is how long a batch waits for a producer that stopped
// adding ids without sealing it (it crashed) before it may complete.
const DefaultAdderLease = 10 * time.Minute

// State is where a batch stands.
type State string

// The states of a batch.
const (
	StateOpen     State = "open"     // ids pending, due time ahead
	StateOverdue  State = "overdue"  // ids pending, due time passed
	StateComplete State = "complete" // no id pending
	// StateVerifying: a data subject's batch whose ids all have an
	// outcome and whose verification listing has not ended: it is still
	// open, and overdue once its due time passes.
	StateVerifying State = "verifying"
	// StateEmpty: the batch holds no id: every line of its input was
	// invalid, so there was nothing to erase. Batch.Invalid counts the
	// refused lines.
	StateEmpty State = "empty"
	// StatePaused: ids pending, due time ahead, and its tasks held
	// ([Ledger.Pause]). A paused batch past its due time is overdue.
	StatePaused State = "paused"
	// StateLost: Redis lost the batch (it restarted empty, or was
	// flushed). Its records are gone; what it proved must be proved again
	// by enqueueing its input again.
	StateLost State = "lost"
)

// Batch is a batch's metadata and tallies.
type Batch struct {
	Name        string
	Note        string
	CallbackURL string
	CreatedAt   time.Time
	DueAt       time.Time
	// CompletedAt is the last time the batch completed; zero if it never did.
	CompletedAt time.Time
	// Completions counts completions: a batch reopened by failures retry
	// completes again.
	Completions int
	TTL         time.Duration

	Total    int
	Deleted  int
	NotFound int
	Failed   int
	// Cancelled counts the ids a cancel ended ([Ledger.Cancel]).
	Cancelled int
	// Control is the batch's control state: paused, cancelled, or
	// [ControlRunning].
	Control ControlState
	// OriginalDue is the due time before any extension ([Ledger.Extend]);
	// it equals DueAt for a batch never extended.
	OriginalDue time.Time
	// History is the batch's control actions, oldest first, when the
	// reader asked for them ([Ledger.History]); [Ledger.Batch] leaves it
	// empty.
	History []Action
	// Invalid counts the input lines the producers refused as not
	// conversation ids, recorded when each enqueue seals the batch.
	Invalid int
	// Queues are the asynq queues the batch's tasks were put in.
	Queues []string
	// AsynqMaxRetry is asynq's MaxRetry of the tasks made for the batch's
	// ids (tasks.AsynqMaxRetry of the last enqueue's retry budget; of the
	// default budget for a batch that never said).
	AsynqMaxRetry int
	// UnservedQueues are those of Queues that no live worker serves. The
	// ledger never sets it: a caller that asked asynq which queues are
	// served (see enqueue.ServedQueues) fills it in, and status then says
	// the batch is stalled rather than guess an ETA.
	UnservedQueues []string

	// Instance tells two batches of the same name apart: one created after
	// Redis lost the first has another. A reader that sees it change (or
	// the batch vanish) knows that the batch it watched is lost.
	Instance string
	// LostAt is when the batch was found lost; zero for a batch that
	// exists. A lost batch has only its Name, LostAt and LostOutcomes.
	LostAt time.Time
	// LostOutcomes counts the outcomes recorded after the loss, kept in the
	// batch's lost record.
	LostOutcomes int
	// LostWhileOpen is true for a lost batch that had ids pending: work
	// the fleet was asked for and can no longer do. A batch lost after it
	// completed lost only its proof.
	LostWhileOpen bool

	// Profile is the identity the batch's tasks act as: [DefaultProfile]
	// for a batch that named none.
	Profile string
	// HasSession is true while the batch holds the end user's session name
	// its tasks act as: until it completes and [Ledger.ScrubSessions] runs.
	HasSession bool
	// SessionHash is, once the session name was scrubbed, its keyed hash
	// ([SessionHash]): a requester who knows the name and the key can
	// check it; nobody else learns it.
	SessionHash string

	// Verification is where a data subject's batch stands in its
	// verification; its State is [VerificationNone] for other batches.
	Verification Verification
	// Targets are the bots and connectors a data subject's discovery
	// set out to list ([Ledger.RecordTargets]), which its verification
	// lists again.
	Targets []Target
	// verifyRequested is the last verification round put in the
	// verification outbox.
	verifyRequested int

	// session is the end user's session name while the batch holds it:
	// personal data, read through [Batch.SessionName] only by code that
	// puts it in a task. A pointer, so that printing a Batch (%v, %+v)
	// shows an address, not the name.
	session *string
	// done holds finished-id counts of the last minute by 10 s slot.
	done       map[int64]int
	nbuckets   int
	progressAt time.Time
}

// SessionName returns the end user's session name the batch's tasks act
// as, while the batch holds it ("" when it has none, or once it was
// scrubbed). It is PERSONAL DATA: put it in a task payload, never in a
// log, an error, a metric or a report.
func (b Batch) SessionName() string {
	if b.session == nil {
		return ""
	}
	return *b.session
}

// SessionErased reports whether the batch had a session name that
// [Ledger.ScrubSessions] erased: no new task can act as it any more.
func (b Batch) SessionErased() bool { return b.SessionHash != "" && !b.HasSession }

// TaskIdentity returns the profile and session a new task of the batch
// acts as (tasks.Payload.WithIdentity writes them into a payload). It is
// an error wrapping [ErrSessionErased] when the batch's session name was
// scrubbed: a task without it would act as another identity.
func (b Batch) TaskIdentity() (profile, session string, err error) {
	if b.SessionErased() {
		return "", "", fmt.Errorf("%w: batch %s is complete and its session name was erased from the ledger; "+
			"put the ids in a new batch", ErrSessionErased, b.Name)
	}
	return b.Profile, b.SessionName(), nil
}

// Pending is the number of ids without a terminal outcome: queued,
// scheduled or retrying.
func (b Batch) Pending() int { return b.Total - b.Deleted - b.NotFound - b.Failed - b.Cancelled }

// Finished is the number of ids with a terminal outcome.
func (b Batch) Finished() int { return b.Deleted + b.NotFound + b.Failed + b.Cancelled }

// State returns the batch's state at now. A batch with no id is empty
// (nothing to erase; the metrics count it as complete); one with no id
// pending is complete, unless its verification is pending: then it is
// verifying, or overdue past its due time (a data subject's batch with no
// id is verifying too once its verification was asked for).
func (b Batch) State(now time.Time) State {
	switch {
	case !b.LostAt.IsZero():
		return StateLost
	case b.Control == ControlCancelled && b.Pending() == 0:
		return StateComplete // not verified: a cancelled erasure proves nothing more
	case b.verifying() && now.After(b.DueAt):
		return StateOverdue
	case b.verifying():
		return StateVerifying
	case b.Total == 0 && b.Verification.State == VerificationNone:
		return StateEmpty
	case b.Pending() == 0 && b.Verification.State != VerificationPending:
		// A data subject's batch of no id completes too: its listings
		// and its verification prove that nothing was there.
		return StateComplete
	case now.After(b.DueAt):
		return StateOverdue
	case b.Control == ControlPaused:
		return StatePaused
	}
	return StateOpen
}

// verifying reports whether b's ids are all finished and its verification
// is pending.
func (b Batch) verifying() bool {
	return b.Verification.State == VerificationPending && b.Pending() == 0 &&
		(b.Total > 0 || b.verifyRequested > b.Verification.Round)
}

// AwaitedRound is the verification round a data subject's batch waits
// for: asked for (in the verification outbox, or queued as a task) and not
// run yet. ok is false when it waits for none.
func (b Batch) AwaitedRound() (round int, ok bool) {
	if b.verifying() && b.verifyRequested > b.Verification.Round {
		return b.verifyRequested, true
	}
	return 0, false
}

// Rate returns the ids finished per second over about the last minute.
func (b Batch) Rate(now time.Time) float64 {
	slot := now.Unix() / 10
	oldest := slot - 5
	n := 0
	for s, c := range b.done {
		if s >= oldest && s <= slot {
			n += c
		}
	}
	start := time.Unix(oldest*10, 0)
	if b.CreatedAt.After(start) {
		start = b.CreatedAt // a young batch: its whole life so far
	}
	window := now.Sub(start).Seconds()
	if window < 1 {
		window = 1
	}
	return float64(n) / window
}

// ETA returns how long the pending ids will take at the current rate; ok is
// false when nothing is finishing.
func (b Batch) ETA(now time.Time) (eta time.Duration, ok bool) {
	if b.Pending() == 0 {
		return 0, true
	}
	rate := b.Rate(now)
	if rate <= 0 {
		return 0, false
	}
	return time.Duration(float64(b.Pending()) / rate * float64(time.Second)), true
}

//go:embed lua/open.lua
var openSource string

var openScript = script(openSource)

// ErrBatchConflict is returned by OpenBatch when the batch exists with
// another due time, note, callback URL or identity (profile and session)
// than the spec asks for, or when its session name was erased.
var ErrBatchConflict = errors.New("batch exists with other settings")

// Adder adds ids to a batch. While an adder is open the batch cannot
// complete, however many of its ids are done: a batch of two million ids
// fed from a slow pipe must not call back after the first chunk. Seal it
// when done; an adder that is never sealed (its producer crashed) stops
// counting after its lease.
type Adder struct {
	l     *Ledger
	batch string
	id    string
	lease time.Duration
	now   func() time.Time
	// buckets is the batch's bucket count, for EntryKey.
	buckets int
	// The feed of the ids added: their queue, when they may be fed (0:
	// held), and their tasks' retry budget.
	queue    string
	feedAt   func() int64
	maxRetry int
	// Created reports whether OpenBatch created the batch.
	Created bool
}

// EntryKey returns the Redis hash that holds id's entry in the adder's
// batch, under the field id. The entry is pending while its value is one
// of [PendingValues]; a producer that writes a task for a pending id can
// make the write depend on that (see internal/asynqwire's Guard), since a
// worker may record the id's outcome at any moment.
func (a *Adder) EntryKey(id string) string {
	return a.l.ks.BatchIDs(a.batch, keyspace.Bucket(id, a.buckets))
}

// PendingValues returns the values of a pending id's entry: "p" (its task
// is to be made: [Ledger.Feed]), "q" (its task was made), or "r" once an
// attempt failed and another is due.
func PendingValues() []string { return []string{"p", "q", "r"} }

// openReply is open.lua's reply: whether it created the batch, and the
// existing batch's due time (ms), note, callback URL, bucket count,
// profile, and how its session compares with the spec's ("same", "none",
// "other" or "erased": see open.lua).
type openReply struct {
	created                  bool
	due, buckets             int64
	note, callback           string
	profile, sessionCompared string
	verify                   bool
}

func decodeOpenReply(res []any) (r openReply, err error) {
	const script = "open.lua"
	if len(res) != 8 {
		return r, &replyError{script, res, "8 values"}
	}
	created, err := replyInt(script, res[0])
	if err != nil {
		return r, err
	}
	r.created = created == 1
	if r.due, err = replyIntOr0(script, res[1]); err != nil {
		return r, err
	}
	if r.note, err = replyText(script, res[2]); err != nil {
		return r, err
	}
	if r.callback, err = replyText(script, res[3]); err != nil {
		return r, err
	}
	if r.buckets, err = replyIntOr0(script, res[4]); err != nil {
		return r, err
	}
	if r.profile, err = replyText(script, res[5]); err != nil {
		return r, err
	}
	if r.sessionCompared, err = replyText(script, res[6]); err != nil {
		return r, err
	}
	verify, err := replyText(script, res[7])
	r.verify = verify == "1"
	return r, err
}

// OpenBatch creates the batch unless it exists, and returns an [Adder] for
// it. An existing batch is kept as it is: adding ids to it is how a batch
// grows. Fields of spec that are set and differ from the existing batch's
// are an [ErrBatchConflict]: a GDPR request's due time must not change by
// accident. So is another identity (Profile and Session, where an empty
// Profile is the default one), and adding to a batch whose session name
// was erased: those are refused before anything is written. Verify set
// for a batch that exists without it is a conflict too; left out, the
// ids join a verified batch, which verifies them as well.
func (l *Ledger) OpenBatch(ctx context.Context, spec BatchSpec) (*Adder, error) {
	if spec.Session != "" && spec.Profile == "" {
		return nil, fmt.Errorf("ledger: open batch %s: a session needs a profile", spec.Name)
	}
	if spec.Profile == "" {
		spec.Profile = DefaultProfile
	}
	if spec.Now == nil {
		spec.Now = time.Now
	}
	if spec.Created.IsZero() {
		spec.Created = spec.Now()
	}
	explicitDue := !spec.Due.IsZero()
	if !explicitDue {
		spec.Due = spec.Created.Add(DefaultDueIn)
	}
	if spec.TTL <= 0 {
		spec.TTL = l.ttl
	}
	if spec.AdderLease <= 0 {
		spec.AdderLease = DefaultAdderLease
	}
	if spec.Queue == "" {
		spec.Queue = "default"
	}
	if spec.AsynqMaxRetry <= 0 {
		spec.AsynqMaxRetry = tasks.AsynqMaxRetry(tasks.DefaultMaxRetry)
	}
	a := &Adder{l: l, batch: spec.Name, id: newAdderID(), lease: spec.AdderLease, now: spec.Now,
		queue: spec.Queue, maxRetry: spec.AsynqMaxRetry, feedAt: feedAt(spec)}
	res, err := l.run(ctx, openScript, spec.Name, spec.Created.UnixMilli(), spec.Due.UnixMilli(),
		spec.Note, spec.CallbackURL, ttlSeconds(spec.TTL), BucketsFor(spec.ExpectedIDs), a.id, spec.AdderLease.Milliseconds(),
		spec.Queue, newAdderID(), newAdderID(), spec.Profile, spec.Session, boolArg(spec.Verify)).Slice()
	if err != nil {
		return nil, fmt.Errorf("ledger: open batch %s: %w", spec.Name, err)
	}
	reply, err := decodeOpenReply(res)
	if err != nil {
		return nil, fmt.Errorf("ledger: open batch %s: %w", spec.Name, err)
	}
	// The batch's own count, which an existing batch keeps whatever spec
	// expects; Batch.buckets reads it the same way.
	a.buckets = int(reply.buckets)
	if a.buckets <= 0 {
		a.buckets = Buckets
	}
	if reply.created {
		a.Created = true
		return a, nil
	}
	if err := l.refuseCancelled(ctx, a); err != nil {
		return nil, err
	}
	if err := identityConflict(spec, reply); err != nil {
		return nil, err // open.lua registered no adder
	}
	due, note, callback := reply.due, reply.note, reply.callback
	var diffs []string
	if explicitDue && due != spec.Due.UnixMilli() {
		diffs = append(diffs, "due "+time.UnixMilli(due).UTC().Format(time.RFC3339))
	}
	if spec.Note != "" && note != spec.Note {
		diffs = append(diffs, fmt.Sprintf("note %q", note))
	}
	if spec.CallbackURL != "" && callback != spec.CallbackURL {
		diffs = append(diffs, "another callback URL")
	}
	if spec.Verify && !reply.verify {
		diffs = append(diffs, "no verification (it is not a data subject's erasure)")
	}
	if len(diffs) > 0 {
		_, _ = a.Seal(ctx)
		return nil, fmt.Errorf("%w: batch %s has %s; leave those settings out to add ids to it",
			ErrBatchConflict, spec.Name, strings.Join(diffs, ", "))
	}
	return a, nil
}

// identityConflict is the [ErrBatchConflict] of a spec whose identity is
// not the existing batch's, or nil. It names the batch's profile, never a
// session name: those are personal data.
func identityConflict(spec BatchSpec, reply openReply) error {
	var has string
	switch {
	case reply.profile != spec.Profile:
		has = "acts as profile " + reply.profile + ", not " + spec.Profile
	case reply.sessionCompared == "erased":
		return fmt.Errorf("%w: batch %s is complete and its session name was erased from the ledger; "+
			"put the new ids in a new batch", ErrBatchConflict, spec.Name)
	case reply.sessionCompared == "none":
		has = "acts as profile " + reply.profile + " without a session"
	case reply.sessionCompared == "other" && spec.Session == "":
		return fmt.Errorf("%w: batch %s acts as profile %s for an end user's session; give that session to add ids "+
			"to it, or put these ids in a new batch", ErrBatchConflict, spec.Name, reply.profile)
	case reply.sessionCompared == "other":
		has = "acts as profile " + reply.profile + " for another session"
	default:
		return nil
	}
	return fmt.Errorf("%w: batch %s %s; put these ids in a new batch", ErrBatchConflict, spec.Name, has)
}

func newAdderID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Batch is the name of the adder's batch.
func (a *Adder) Batch() string { return a.batch }

//go:embed lua/add.lua
var addSource string

var addScript = script(addSource)

// Membership says what [Adder.Add] found for one id.
type Membership byte

// The answers of Add.
const (
	NewMember      Membership = 'n' // added to the batch, pending
	PendingMember  Membership = 'p' // already in the batch, pending
	FinishedMember Membership = 't' // already in the batch, finished
)

// feedAt returns the clock of an adder's feed time (ms; 0 for held ids):
// spec's FeedAt, or the time of each addition.
func feedAt(spec BatchSpec) func() int64 {
	switch {
	case spec.Hold:
		return func() int64 { return 0 }
	case !spec.FeedAt.IsZero():
		return func() int64 { return spec.FeedAt.UnixMilli() }
	}
	return func() int64 { return spec.Now().UnixMilli() }
}

// Add adds ids to the batch as pending and says, for each, what it found.
// Ids already in the batch are not counted again. It renews the adder's
// lease.
func (a *Adder) Add(ctx context.Context, ids []string) ([]Membership, error) {
	args := make([]any, 0, len(ids)+8)
	args = append(args, a.batch, a.now().UnixMilli(), a.id, a.lease.Milliseconds(), ttlSeconds(a.l.ttl),
		a.queue, a.feedAt(), a.maxRetry)
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := a.l.run(ctx, addScript, args...).Text()
	if err != nil && strings.HasPrefix(err.Error(), "NOBATCH") {
		return nil, &LostError{Batch: a.batch, Reason: "it vanished while ids were being added to it"}
	}
	if err != nil && strings.HasPrefix(err.Error(), "SESSIONERASED") {
		return nil, fmt.Errorf("%w: %w: batch %s is complete and its session name was erased from the ledger; put the new ids in a new batch",
			ErrBatchConflict, ErrSessionErased, a.batch)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: add ids to %s: %w", a.batch, err)
	}
	out := make([]Membership, len(res))
	for i := range res {
		out[i] = Membership(res[i])
	}
	return out, nil
}

//go:embed lua/seal.lua
var sealSource string

var sealScript = script(sealSource)

// Seal ends the additions and completes the batch if nothing in it is
// pending; it reports whether it did.
func (a *Adder) Seal(ctx context.Context) (completed bool, err error) {
	return a.l.seal(ctx, a.batch, a.id, a.now(), 0)
}

// SealWithInvalid seals as [Adder.Seal] does, first adding invalid to the
// batch's count of refused input lines ([Batch.Invalid]). A batch that
// holds no id but refused lines completes too: its requester is told, by
// status, report and callback, that nothing was erased and what was
// refused.
func (a *Adder) SealWithInvalid(ctx context.Context, invalid int) (completed bool, err error) {
	return a.l.seal(ctx, a.batch, a.id, a.now(), max(invalid, 0))
}

// CompleteIfDone completes a batch whose ids are all done and whose adders
// sealed or stopped renewing their leases; the worker's janitor calls it.
func (l *Ledger) CompleteIfDone(ctx context.Context, batch string, now time.Time) (bool, error) {
	return l.seal(ctx, batch, "", now, 0)
}

func (l *Ledger) seal(ctx context.Context, batch, adder string, now time.Time, invalid int) (bool, error) {
	n, err := l.run(ctx, sealScript, batch, now.UnixMilli(), adder, invalid).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: seal %s: %w", batch, err)
	}
	return n == 1, nil
}

// OpenBatches returns the names of the open batches, earliest due first,
// dropping from the index those whose records expired.
func (l *Ledger) OpenBatches(ctx context.Context) ([]string, error) {
	names, err := l.rdb.ZRange(ctx, l.ks.OpenBatches(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return l.existing(ctx, names, true)
}

// existing keeps the names whose batch Redis holds, in order; with forget,
// it drops the others (expired) from the indexes.
func (l *Ledger) existing(ctx context.Context, names []string, forget bool) ([]string, error) {
	pipe := l.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(names))
	for i, name := range names {
		exists[i] = pipe.Exists(ctx, l.ks.Batch(name))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out := names[:0]
	for i, name := range names {
		switch {
		case exists[i].Val() == 1:
			out = append(out, name)
		case forget:
			l.forget(ctx, name)
		}
	}
	return out, nil
}

// OpenBatchNames returns the names of up to limit open batches, earliest
// due first, as the open index holds them.
func (l *Ledger) OpenBatchNames(ctx context.Context, limit int) ([]string, error) {
	names, err := l.rdb.ZRange(ctx, l.ks.OpenBatches(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return names, nil
}

// RecentBatchNames returns the names of the newest batches that Redis
// holds, at most limit: those whose records expired are left out (the
// index keeps a name until a listing drops it).
func (l *Ledger) RecentBatchNames(ctx context.Context, limit int) ([]string, error) {
	names, err := l.rdb.ZRevRange(ctx, l.ks.Batches(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return l.existing(ctx, names, false)
}

// Batch returns one batch; ok is false when it does not exist (or expired).
func (l *Ledger) Batch(ctx context.Context, name string) (b Batch, ok bool, err error) {
	h, err := l.rdb.HGetAll(ctx, l.ks.Batch(name)).Result()
	if err != nil {
		return Batch{}, false, fmt.Errorf("ledger: batch %s: %w", name, err)
	}
	if len(h) == 0 {
		return Batch{}, false, nil
	}
	return decodeBatch(name, h), true, nil
}

// Batches returns up to limit batches, newest first (all when limit <= 0).
// Batches whose records expired are dropped from the index on the way.
func (l *Ledger) Batches(ctx context.Context, limit int) ([]Batch, error) {
	names, err := l.rdb.ZRevRange(ctx, l.ks.Batches(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(names))
	for i, name := range names {
		cmds[i] = pipe.HGetAll(ctx, l.ks.Batch(name))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out := make([]Batch, 0, len(names))
	for i, cmd := range cmds {
		if len(cmd.Val()) == 0 {
			l.forget(ctx, names[i])
			continue
		}
		out = append(out, decodeBatch(names[i], cmd.Val()))
	}
	return out, nil
}

// forget drops an expired batch from the indexes.
func (l *Ledger) forget(ctx context.Context, name string) {
	l.rdb.ZRem(ctx, l.ks.Batches(), name)
	l.rdb.ZRem(ctx, l.ks.OpenBatches(), name)
}

func decodeBatch(name string, h map[string]string) Batch {
	num := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	ms := func(k string) time.Time {
		if h[k] == "" {
			return time.Time{}
		}
		return time.UnixMilli(num(k)).UTC()
	}
	b := Batch{
		Name:          name,
		Note:          h["note"],
		CallbackURL:   h["callback"],
		CreatedAt:     ms("created"),
		DueAt:         ms("due"),
		CompletedAt:   ms("completed_at"),
		Completions:   int(num("completions")),
		Instance:      h["instance"],
		TTL:           time.Duration(num("ttl")) * time.Second,
		Total:         int(num("total")),
		Deleted:       int(num("deleted")),
		NotFound:      int(num("not_found")),
		Failed:        int(num("failed")),
		Invalid:       int(num("invalid")),
		Cancelled:     int(num("cancelled")),
		Control:       ControlState(h["control"]),
		Queues:        strings.Fields(h["queues"]),
		AsynqMaxRetry: tasks.AsynqMaxRetry(tasks.DefaultMaxRetry),
		done:          map[int64]int{},
		nbuckets:      int(num("buckets")),
		progressAt:    ms("progress_at"),
		Profile:       h["profile"],
		SessionHash:   h["session_hash"],
	}
	b.OriginalDue = b.DueAt
	if v, err := strconv.Atoi(h["max_retry"]); err == nil {
		b.AsynqMaxRetry = v
	}
	if h["due_original"] != "" {
		b.OriginalDue = ms("due_original")
	}
	if h["verify"] == "1" {
		b.Verification, b.verifyRequested = decodeVerification(h), int(num("verify_requested"))
		b.Targets = decodeTargets(h["targets"])
	}
	if b.Profile == "" {
		b.Profile = DefaultProfile // made before batches had identities, or by a task's record
	}
	if session, ok := h["session"]; ok && session != "" {
		b.HasSession, b.session = true, &session
	}
	for i := range 6 {
		slot, count := num("rs"+strconv.Itoa(i)), num("rc"+strconv.Itoa(i))
		if slot > 0 {
			b.done[slot] = int(count)
		}
	}
	return b
}

// OpenStats summarises the batches for metrics and alerts.
type OpenStats struct {
	Open, Overdue, Complete int
	// OldestDue is the earliest due time of an open batch; zero when none
	// is open.
	OldestDue time.Time
}

// OpenStats counts open, overdue and complete batches at now, from the
// indexes (no batch is read).
func (l *Ledger) OpenStats(ctx context.Context, now time.Time) (OpenStats, error) {
	pipe := l.rdb.Pipeline()
	all := pipe.ZCard(ctx, l.ks.Batches())
	open := pipe.ZCard(ctx, l.ks.OpenBatches())
	overdue := pipe.ZCount(ctx, l.ks.OpenBatches(), "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
	oldest := pipe.ZRangeWithScores(ctx, l.ks.OpenBatches(), 0, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return OpenStats{}, fmt.Errorf("ledger: %w", err)
	}
	s := OpenStats{
		Overdue:  int(overdue.Val()),
		Complete: int(all.Val() - open.Val()),
	}
	s.Open = int(open.Val()) - s.Overdue
	if z := oldest.Val(); len(z) > 0 {
		s.OldestDue = time.UnixMilli(int64(z[0].Score)).UTC()
	}
	return s, nil
}

// Completion is one completion of a batch, with the batch's tallies at
// that moment: what its callback reports. (A batch completes again after a
// reopened id finishes.) The ledger puts each in the callback outbox,
// which internal/maintenance empties.
type Completion struct {
	Batch    string
	N        int
	Total    int
	Deleted  int
	NotFound int
	Failed   int
	// Cancelled counts the ids a cancel ended ([Ledger.Cancel]).
	Cancelled   int
	CompletedAt time.Time
}

// ProgressAt is when the batch last gained ids or finished one.
func (b Batch) ProgressAt() time.Time { return b.progressAt }
