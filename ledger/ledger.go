// Package ledger is the durable record of erasure requests: batches, the
// outcome of every id in them, and the details of every failure.
//
// asynq's own archive keeps at most 10,000 tasks for 90 days and forgets a
// successful task at once, which proves nothing a month later. The ledger
// keeps, in Redis, under a key prefix (default "coze-eraser:"), for each
// batch a hash with its created and due times, note, callback URL,
// retention and tallies; its ids, spread over hashes by the last digits of
// the id, each mapped to "p" while pending or to
// "outcome|code|logid|attempts|finished" once done (about 70 bytes an id
// while the hashes stay in Redis's compact listpack encoding); and, for each
// id that did not end deleted, a failure record with the last code, msg,
// HTTP status and log id. internal/keyspace draws the whole layout, with
// each key's type and retention.
//
// A batch acts as one identity: a profile of the workers' profiles file
// and, for conversations created under session isolation, an end user's
// session name ([BatchSpec]). The session name is personal data: the
// batch holds it only until it completes, when [Ledger.ScrubSessions]
// replaces it by its keyed hash ([SessionHash]); a batch whose name was
// erased takes no new ids ([ErrSessionErased]).
//
// A data subject's batch ([BatchSpec].Verify) is verified before it
// completes: once its ids all have an outcome, the ledger asks for a
// verification round ([Ledger.PendingVerifications]), whose task lists the
// subject's conversations again; ids still listed are failed
// ([Ledger.MarkStillListed]), conversations created since join the batch
// for another round ([Ledger.StartVerificationRound]), and
// [Ledger.FinishVerification] ends it and completes the batch. The batch
// keeps each walk of the list endpoint ([Ledger.RecordListing]) with its
// proof.
//
// An epoch marker and a write counter let a [LossDetector] tell when Redis
// lost its data or came back with older data. A batch is never created
// anew from partial state: a record whose batch and task are both gone
// goes to the batch's lost record, and readers that saw a batch vanish (or
// be replaced: each batch has a random instance id) mark it lost. See
// [ErrBatchLost].
//
// Every write is one Lua script, so tallies and records never disagree, and
// outcomes only move forward: a task that runs twice, or an id enqueued
// twice, is counted once per batch. Every key expires after the batch's
// retention (default 400 days) without activity.
//
// The scripts build key names from the prefix, so the ledger needs a single
// Redis server (or a primary with replicas), not Redis Cluster.
package ledger

import (
	"context"
	_ "embed"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
)

// Outcome is where a conversation stands in a batch.
type Outcome string

// The outcomes. Deleted, NotFound, Failed and Cancelled are terminal; Pending is every
// id not finished yet; Retrying is the failure record's word for a pending id
// whose last attempt failed.
const (
	Pending  Outcome = "pending"
	Deleted  Outcome = "deleted"
	NotFound Outcome = "not_found"
	Failed   Outcome = "failed"
	Retrying Outcome = "retrying"
	// Cancelled: the id was pending when its batch was cancelled
	// ([Ledger.Cancel]); it was not (or not provably) deleted.
	Cancelled Outcome = "cancelled"
)

// Terminal reports whether o is a final outcome.
func (o Outcome) Terminal() bool {
	return o == Deleted || o == NotFound || o == Failed || o == Cancelled
}

// ParseOutcome reads an outcome name.
func ParseOutcome(s string) (Outcome, error) {
	switch o := Outcome(s); o {
	case Pending, Deleted, NotFound, Failed, Retrying, Cancelled:
		return o, nil
	}
	return "", fmt.Errorf("unknown outcome %q: use pending, deleted, not_found, failed, retrying or cancelled", s)
}

var outcomeLetters = map[Outcome]string{Deleted: "d", NotFound: "n", Failed: "f", Retrying: "r"}

func outcomeFromLetter(l byte) Outcome {
	switch l {
	case 'd':
		return Deleted
	case 'n':
		return NotFound
	case 'f':
		return Failed
	case 'c':
		return Cancelled
	}
	return Pending
}

// Defaults of a [Ledger].
const (
	DefaultPrefix = keyspace.DefaultPrefix
	// DefaultTTL keeps records 400 days after a batch's last activity: longer
	// than GDPR's one-month deadline with its two-month extension, and a
	// year of audits.
	DefaultTTL = 400 * 24 * time.Hour
	// DefaultDueIn is a batch's due time after its creation: GDPR's month.
	DefaultDueIn = 30 * 24 * time.Hour
	// Buckets is how many hashes a batch's ids are spread over. While a
	// bucket holds at most hash-max-listpack-entries ids (128 in Redis's
	// own default, 512 in some builds), Redis keeps it in the compact
	// listpack encoding: 4096 buckets hold 500,000 (or 2,000,000) ids that
	// way. Larger batches still work, with a larger encoding.
	Buckets = 4096
	// MinBuckets is the fewest buckets [BucketsFor] gives a batch, and
	// MaxBuckets the most: 131,072 buckets of 100 ids hold 13 million ids
	// in the compact encoding.
	MinBuckets = 64
	MaxBuckets = 1 << 17
	// bigBucketIDs is how many ids [BucketsFor] puts in a bucket of a
	// batch too large for [Buckets] buckets of 16: fewer than Redis's
	// default hash-max-listpack-entries (128), so that the buckets stay
	// compact on any Redis.
	bigBucketIDs = 100
)

// BucketsFor returns how many buckets a batch of about expected ids gets:
// enough for 16 ids per bucket, a power of two from [MinBuckets] to
// [Buckets]; past 65,536 ids, enough for 100 per bucket, up to
// [MaxBuckets]. expected <= 0, unknown, gets [Buckets].
//
// Every bucket costs Redis about 250 bytes of its own (key, hash header,
// expiry), so a 10,000-id batch in 4096 buckets would pay 100 bytes per id
// for them; in 1024 it pays 25. Fuller buckets would save more memory but
// cost CPU: Redis finds a field in a small (listpack) hash by scanning it,
// and the worker reads and writes an id's entry on every deletion. At 16
// per bucket a batch can also grow to 8 times its estimate before its
// buckets outgrow the compact encoding.
func BucketsFor(expected int) int {
	if expected <= 0 {
		return Buckets
	}
	n := MinBuckets
	for n < Buckets && n*16 < expected {
		n *= 2
	}
	// Ten million ids in 4096 buckets would outgrow the compact encoding
	// and cost over 100 bytes each; in 131,072 they cost about 25.
	for n < MaxBuckets && n*bigBucketIDs < expected {
		n *= 2
	}
	return n
}

// maxMsgBytes bounds the msg kept per failure: a gateway can send anything.
const maxMsgBytes = 512

// Ledger reads and writes the records. It is safe for concurrent use.
type Ledger struct {
	rdb    redis.UniversalClient
	prefix string
	ks     keyspace.Keyspace
	ttl    time.Duration
	// replicas and replicaTimeout: see WithReplicas.
	replicas       int
	replicaTimeout time.Duration
	shortfalls     atomic.Int64
	// fewReplicasUntil (Unix ns): until then the primary was found with
	// fewer replicas than asked, and writes do not wait for them.
	fewReplicasUntil atomic.Int64
}

// Option configures a [Ledger].
type Option func(*Ledger)

// WithPrefix changes the key prefix (default [DefaultPrefix]).
func WithPrefix(p string) Option { return func(l *Ledger) { l.prefix = p } }

// WithTTL sets the retention of batches this ledger creates without being
// told one (default [DefaultTTL]).
func WithTTL(d time.Duration) Option { return func(l *Ledger) { l.ttl = d } }

// New returns a ledger stored in rdb.
func New(rdb redis.UniversalClient, opts ...Option) *Ledger {
	l := &Ledger{rdb: rdb, prefix: DefaultPrefix, ttl: DefaultTTL}
	for _, opt := range opts {
		opt(l)
	}
	l.ks = keyspace.New(l.prefix)
	return l
}

//go:embed lua/prelude.lua
var prelude string

// Prefix returns the prefix of the ledger's keys.
func (l *Ledger) Prefix() string { return l.prefix }

// script is a ledger script: the key layouts (the ledger's and asynq's),
// the shared prelude, then body.
func script(body string) *redis.Script {
	return redis.NewScript(keyspace.Lua + asynqwire.Lua + prelude + body)
}

func (l *Ledger) run(ctx context.Context, s *redis.Script, args ...any) *redis.Cmd {
	return s.Run(ctx, l.rdb, nil, append([]any{l.prefix}, args...)...)
}

func ttlSeconds(d time.Duration) int64 { return max(int64(d/time.Second), 1) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		n--
	}
	return s[:n]
}
