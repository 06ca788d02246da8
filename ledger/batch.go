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
}

// State is where a batch stands.
type State string

// The states of a batch.
const (
	StateOpen     State = "open"     // ids pending, due time ahead
	StateOverdue  State = "overdue"  // ids pending, due time passed
	StateComplete State = "complete" // no id pending
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

	// done holds finished-id counts of the last minute by 10 s slot.
	done     map[int64]int
	nbuckets int
}

// Pending is the number of ids without a terminal outcome: queued,
// scheduled or retrying.
func (b Batch) Pending() int { return b.Total - b.Deleted - b.NotFound - b.Failed }

// Finished is the number of ids with a terminal outcome.
func (b Batch) Finished() int { return b.Deleted + b.NotFound + b.Failed }

// State returns the batch's state at now.
func (b Batch) State(now time.Time) State {
	switch {
	case b.Total > 0 && b.Pending() == 0:
		return StateComplete
	case now.After(b.DueAt):
		return StateOverdue
	}
	return StateOpen
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
// another due time, note or callback URL than the spec asks for.
var ErrBatchConflict = errors.New("batch exists with other settings")

// OpenBatch creates the batch unless it exists. An existing batch is kept as
// it is: adding ids to it later is how a batch grows. Fields of spec that
// are set and differ from the existing batch's are an [ErrBatchConflict]:
// a GDPR request's due time must not change by accident.
func (l *Ledger) OpenBatch(ctx context.Context, spec BatchSpec) (created bool, err error) {
	if spec.Created.IsZero() {
		spec.Created = time.Now()
	}
	explicitDue := !spec.Due.IsZero()
	if !explicitDue {
		spec.Due = spec.Created.Add(DefaultDueIn)
	}
	if spec.TTL <= 0 {
		spec.TTL = l.ttl
	}
	res, err := l.run(ctx, openScript, spec.Name, spec.Created.UnixMilli(), spec.Due.UnixMilli(),
		spec.Note, spec.CallbackURL, ttlSeconds(spec.TTL), Buckets).Slice()
	if err != nil {
		return false, fmt.Errorf("ledger: open batch %s: %w", spec.Name, err)
	}
	if res[0].(int64) == 1 {
		return true, nil
	}
	due, _ := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	note, callback := fmt.Sprint(res[2]), fmt.Sprint(res[3])
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
	if len(diffs) > 0 {
		return false, fmt.Errorf("%w: batch %s has %s; leave those settings out to add ids to it",
			ErrBatchConflict, spec.Name, strings.Join(diffs, ", "))
	}
	return false, nil
}

//go:embed lua/add.lua
var addSource string

var addScript = script(addSource)

// Membership says what [Ledger.AddIDs] found for one id.
type Membership byte

// The answers of AddIDs.
const (
	NewMember      Membership = 'n' // added to the batch, pending
	PendingMember  Membership = 'p' // already in the batch, pending
	FinishedMember Membership = 't' // already in the batch, finished
)

// AddIDs adds ids to an existing batch as pending and says, for each, what
// it found. Ids already in the batch are not counted again.
func (l *Ledger) AddIDs(ctx context.Context, batch string, ids []string) ([]Membership, error) {
	args := make([]any, 0, len(ids)+1)
	args = append(args, batch)
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := l.run(ctx, addScript, args...).Text()
	if err != nil {
		return nil, fmt.Errorf("ledger: add ids to %s: %w", batch, err)
	}
	out := make([]Membership, len(res))
	for i := range res {
		out[i] = Membership(res[i])
	}
	return out, nil
}

// Batch returns one batch; ok is false when it does not exist (or expired).
func (l *Ledger) Batch(ctx context.Context, name string) (b Batch, ok bool, err error) {
	h, err := l.rdb.HGetAll(ctx, l.metaKey(name)).Result()
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
	names, err := l.rdb.ZRevRange(ctx, l.key("batches"), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(names))
	for i, name := range names {
		cmds[i] = pipe.HGetAll(ctx, l.metaKey(name))
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
	l.rdb.ZRem(ctx, l.key("batches"), name)
	l.rdb.ZRem(ctx, l.key("batches:open"), name)
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
		Name:        name,
		Note:        h["note"],
		CallbackURL: h["callback"],
		CreatedAt:   ms("created"),
		DueAt:       ms("due"),
		CompletedAt: ms("completed_at"),
		Completions: int(num("completions")),
		TTL:         time.Duration(num("ttl")) * time.Second,
		Total:       int(num("total")),
		Deleted:     int(num("deleted")),
		NotFound:    int(num("not_found")),
		Failed:      int(num("failed")),
		done:        map[int64]int{},
		nbuckets:    int(num("buckets")),
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
	all := pipe.ZCard(ctx, l.key("batches"))
	open := pipe.ZCard(ctx, l.key("batches:open"))
	overdue := pipe.ZCount(ctx, l.key("batches:open"), "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
	oldest := pipe.ZRangeWithScores(ctx, l.key("batches:open"), 0, 0)
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
