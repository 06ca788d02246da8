// Package keyspace names every Redis key coze-eraser writes, in this one
// file. (asynq's own keys, "asynq:…", are internal/asynqwire's.) The Go
// code builds keys with [Keyspace]'s methods; the Lua scripts build them
// with the functions of [Lua], which is generated from the same table
// ([layout]), and a test holds the two to each other.
//
// The layout, under a prefix P (default "coze-eraser:"). TTL "retention"
// is the batch's retention (default 400 days), counted from the batch's
// last activity and again from its completion.
//
//	key                      type    holds                                              TTL
//	P batch:{b}              hash    batch b: created, due, note, callback, ttl,        retention
//	                                 buckets, tallies, completion, rate slots, opens,
//	                                 instance, queues, invalid, profile; session (an
//	                                 end user's session name, personal data) until
//	                                 the batch completes, then session_hash; for a
//	                                 data subject's batch (verified before it
//	                                 completes): verify (1), verification (pending,
//	                                 passed, failed), verify_round (rounds run),
//	                                 verify_requested (the last round put in P
//	                                 verify), verify_finished (the last round that
//	                                 ended), still_listed, unverified,
//	                                 verification_reason, verified_at (ms),
//	                                 targets ("bot:connector …" to list)
//	P batch:{b}:ids:{k}      hash    ids of b whose bucket is k ([Bucket]) -> "p",      retention
//	                                 "r" or "outcome|code|logid|attempts|finished"
//	P batch:{b}:adders       zset    producers adding ids to b -> until (ms)            retention
//	P batch:{b}:listings     list    walks of the list endpoint recorded for b, as      retention
//	                                 JSON (ledger.Listing), in order; 10,000 at most
//	P batch:{b}:history      list    control actions on b (cancel, pause, resume,       retention
//	                                 extend) as JSON (ledger.Action), in order
//	P batch:{b}:unfed:{q}    list    ids of b added for queue q whose task is not        retention
//	                                 made yet, oldest first (ledger.Ledger.Feed)
//	P failure:{b}:{id}       hash    last failure of id in b: code, msg, http_status,   retention
//	                                 logid, attempts, first_at, last_at, queue, outcome
//	P failures               zset    "{b}/{id}" ([FailureMember]) -> last attempt (ms)  none
//	P batches                zset    batch name -> created (ms)                         none
//	P batches:open           zset    open batch name -> due (ms)                        none
//	P feed:{q}               zset    batches with ids to feed into queue q -> when       none
//	                                 they may be fed next (ms): now, their --at
//	                                 time, or when last fed (round robin)
//	P feeds                  set     the queues that have had a feed                    none
//	P sessions               set     names of the batches whose hash still holds a      none
//	                                 session name (ledger.Ledger.ScrubSessions)
//	P also                   hash    id -> "b@queue b@queue…": batches the id's live    none
//	                                 task must also record its outcome in
//	P callbacks              set     "b/n/total/deleted/not_found/failed/ms": batch     none
//	                                 completions whose callback is not queued yet
//	P verify                 set     "b/round" ([VerifyMember]): verification rounds    none
//	                                 whose task is not queued yet
//	P epoch                  string  a random marker: Redis without it lost its data    none
//	P seq                    string  the ledger's write counter                         none
//	P lost                   zset    batch found lost -> when (ms)                      none
//	P lost:{b}               hash    outcomes recorded for lost batch b, and _opens,    retention
//	                                 _open
//	P lock:{name}            string  a lock's holder, a random id (the janitor's lock   the lock's
//	                                 is lock:janitor, the session scrub's
//	                                 lock:sessions)
//	P sweep:{s}              hash    scheduled sweep s: tick (the last tick claimed,    none
//	                                 unix s), state, holder, lease_until (ms), batch,
//	                                 last_success, since (package sweep)
//	P request:{r}            hash    HTTP API erasure request r: body (SHA-256 of   retention
//	                                 the request), batch, created (ms) (httpapi)
//	P control                channel (pub/sub) a batch whose control state          -
//	                                 changed (ledger.ControlWatch)
//	P replicated             string  a marker written before WAIT (ledger.Ledger.    none
//	                                 AwaitReplicas): when it was last written (ms)
//	P workers                zset    worker instance -> last report (ms) (fleet)        none
//	P worker:{w}             string  worker w's last report, as JSON: its queues and    30 s
//	                                 its profiles' auth pause and rate state (fleet)
//	P budget:{h}             hash    a rate budget ({h}: a hash of the API's base URL   none
//	                                 and token, or of the base URL and an OAuth
//	                                 app's id): tokens, rate, window, pushback
//	{budget}:inflight        zset    holders of in-flight calls -> until (ms)           2 × lease
//	{budget}:freed           channel (pub/sub) a freed in-flight slot               -
//	{budget}:learned         string  the rate the API accepted, for the next run        30 days
//
// Names that reach a key (batch names, ids, queue names) are validated by
// package tasks so that no two of them give the same key; the ledger's
// keys test checks it.
//
// The scripts build key names from the prefix, so the ledger needs a single
// Redis server (or a primary with replicas), not Redis Cluster.
package keyspace

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultPrefix is the prefix of every key by default.
const DefaultPrefix = "coze-eraser:"

// Keyspace builds the keys under one prefix. The zero value has no prefix.
type Keyspace struct{ prefix string }

// New returns the keyspace under prefix.
func New(prefix string) Keyspace { return Keyspace{prefix: prefix} }

// Prefix returns the keyspace's prefix.
func (k Keyspace) Prefix() string { return k.prefix }

// Batch is batch b's hash.
func (k Keyspace) Batch(b string) string { return k.prefix + "batch:" + b }

// BatchIDs is the hash of batch b's ids whose bucket is bucket.
func (k Keyspace) BatchIDs(b string, bucket int) string {
	return k.prefix + "batch:" + b + ":ids:" + strconv.Itoa(bucket)
}

// BatchAdders is the sorted set of the producers adding ids to batch b.
func (k Keyspace) BatchAdders(b string) string { return k.prefix + "batch:" + b + ":adders" }

// BatchListings is the list of the walks of the list endpoint recorded for
// batch b (its discovery and verification listings).
func (k Keyspace) BatchListings(b string) string { return k.prefix + "batch:" + b + ":listings" }

// BatchHistory is the list of the control actions taken on batch b
// (cancel, pause, resume, extend), oldest first.
func (k Keyspace) BatchHistory(b string) string { return k.prefix + "batch:" + b + ":history" }

// BatchUnfed is the list of batch b's ids added for queue q whose task is
// still to be made, oldest first: the compact form of a pending id that
// the feeder turns into a task when the queue has room (ledger.Ledger.Feed).
func (k Keyspace) BatchUnfed(b, q string) string { return k.prefix + "batch:" + b + ":unfed:" + q }

// Feed is the index of the batches with ids to feed into queue q, by when
// they may be fed next.
func (k Keyspace) Feed(q string) string { return k.prefix + "feed:" + q }

// Feeds is the set of the queues that have had a feed ([Keyspace.Feed]).
func (k Keyspace) Feeds() string { return k.prefix + "feeds" }

// Failure is the hash of the last failure of id in batch b.
func (k Keyspace) Failure(b, id string) string { return k.prefix + "failure:" + b + ":" + id }

// FailureMember is the member of [Keyspace.Failures] that names id's
// failure record in batch b.
func FailureMember(b, id string) string { return b + "/" + id }

// Failures is the index of failure records by last attempt.
func (k Keyspace) Failures() string { return k.prefix + "failures" }

// Batches is the index of batches by creation.
func (k Keyspace) Batches() string { return k.prefix + "batches" }

// OpenBatches is the index of open batches by due time.
func (k Keyspace) OpenBatches() string { return k.prefix + "batches:open" }

// Sessions is the set of the batches whose hash still holds an end user's
// session name: those the ledger must scrub once they complete.
func (k Keyspace) Sessions() string { return k.prefix + "sessions" }

// Also is the hash of ids whose live task must also record its outcome in
// other batches (links).
func (k Keyspace) Also() string { return k.prefix + "also" }

// Callbacks is the set of batch completions whose callback is not queued
// yet (the callback outbox).
func (k Keyspace) Callbacks() string { return k.prefix + "callbacks" }

// Verifications is the set of verification rounds whose task is not queued
// yet (the verification outbox).
func (k Keyspace) Verifications() string { return k.prefix + "verify" }

// VerifyMember is the member of [Keyspace.Verifications] that asks for
// round round of batch b's verification.
func VerifyMember(b string, round int) string { return b + "/" + strconv.Itoa(round) }

// Epoch is the marker whose absence says Redis lost its data.
func (k Keyspace) Epoch() string { return k.prefix + "epoch" }

// Seq is the ledger's write counter.
func (k Keyspace) Seq() string { return k.prefix + "seq" }

// LostIndex is the index of the batches found lost.
func (k Keyspace) LostIndex() string { return k.prefix + "lost" }

// Lost is the hash of outcomes recorded for lost batch b.
func (k Keyspace) Lost(b string) string { return k.prefix + "lost:" + b }

// Lock is the key of the lock named name.
func (k Keyspace) Lock(name string) string { return k.prefix + "lock:" + name }

// Sweep is the record of scheduled sweep name: the last tick claimed, the
// lease of the worker running it, the last success.
func (k Keyspace) Sweep(name string) string { return k.prefix + "sweep:" + name }

// Request is the record of the HTTP API's erasure request id: the hash of
// the body it was created with, for idempotent replays.
func (k Keyspace) Request(id string) string { return k.prefix + "request:" + id }

// ControlChannel is the pub/sub channel on which control actions announce
// the batch whose state changed.
func (k Keyspace) ControlChannel() string { return k.prefix + "control" }

// Replicated is the marker the ledger writes on the connection it WAITs
// on for replicas (ledger.Ledger.AwaitReplicas).
func (k Keyspace) Replicated() string { return k.prefix + "replicated" }

// Workers is the index of the workers that reported to the fleet: instance
// -> when it last did (ms).
func (k Keyspace) Workers() string { return k.prefix + "workers" }

// Worker is worker instance w's last report (package fleet).
func (k Keyspace) Worker(w string) string { return k.prefix + "worker:" + w }

// Budget is the hash of the rate budget identified by hash (see
// ratelimit.BudgetKey).
func (k Keyspace) Budget(hash string) string { return k.prefix + "budget:" + hash }

// BudgetInflight is the sorted set of a budget's in-flight calls.
func BudgetInflight(budget string) string { return budget + ":inflight" }

// BudgetFreed is the pub/sub channel on which a budget's freed in-flight
// slots are announced.
func BudgetFreed(budget string) string { return budget + ":freed" }

// BudgetLearned is the rate a budget's API accepted, kept for the next run.
func BudgetLearned(budget string) string { return budget + ":learned" }

// bucketDigits is how many trailing characters of an id choose its bucket.
const bucketDigits = 6

// Bucket spreads ids over a batch's n hashes by their last six digits. (An
// id is all digits: tasks.ValidateID.) The Lua function bucket of [Lua]
// agrees; a test holds them to each other.
func Bucket(id string, n int) int {
	tail := id
	if len(tail) > bucketDigits {
		tail = tail[len(tail)-bucketDigits:]
	}
	v, _ := strconv.Atoi(tail)
	return v % n
}

// luaKey is one key (or index member) of the layout as the Lua prelude
// builds it: a template of literal text and {argument}s, under the prefix
// when it starts with "P ".
type luaKey struct {
	name     string // the Lua function, or variable when the template has no argument
	template string
}

// layout is every key and member the Lua scripts build, as Lua names them.
// Each entry matches a [Keyspace] method; the agreement test lists the
// pairs.
var layout = []luaKey{
	{"metaKey", "P batch:{b}"},
	{"idsKey", "P batch:{b}:ids:{k}"},
	{"addersKey", "P batch:{b}:adders"},
	{"listingsKey", "P batch:{b}:listings"},
	{"historyKey", "P batch:{b}:history"},
	{"unfedKey", "P batch:{b}:unfed:{q}"},
	{"feedKey", "P feed:{q}"},
	{"feedsKey", "P feeds"},
	{"failKey", "P failure:{b}:{id}"},
	{"failMember", "{b}/{id}"},
	{"failuresKey", "P failures"},
	{"batchesKey", "P batches"},
	{"openBatchesKey", "P batches:open"},
	{"sessionsKey", "P sessions"},
	{"alsoKey", "P also"},
	{"callbacksKey", "P callbacks"},
	{"verifyKey", "P verify"},
	{"verifyMember", "{b}/{round}"},
	{"epochKey", "P epoch"},
	{"seqKey", "P seq"},
	{"lostIndex", "P lost"},
	{"lostKey", "P lost:{b}"},
}

// bucketLua is [Bucket] in Lua. (tonumber, not arithmetic on the text:
// Redis's Lua reads "012345" as octal.)
const bucketLua = `local bucketTail = string.sub
local function bucket(id, n)
  return tonumber(bucketTail(id, -%d)) %% n
end
`

// Lua is the prelude of every script that uses the ledger's keys: it reads
// the prefix from ARGV[1] into P, and defines a function (or, for a key
// without arguments, a variable) for each key of the layout, and bucket.
var Lua = generateLua()

func generateLua() string {
	var b strings.Builder
	b.WriteString("-- Generated by internal/keyspace: the ledger's key layout. ARGV[1] is the key prefix.\n")
	b.WriteString("local P = ARGV[1]\n")
	fmt.Fprintf(&b, bucketLua, bucketDigits)
	for _, k := range layout {
		expr, params := luaExpr(k.template)
		if len(params) == 0 {
			fmt.Fprintf(&b, "local %s = %s\n", k.name, expr)
			continue
		}
		fmt.Fprintf(&b, "local function %s(%s) return %s end\n", k.name, strings.Join(params, ", "), expr)
	}
	return b.String()
}

// luaExpr turns a template ("P batch:{b}:ids:{k}") into a Lua
// concatenation (P .. 'batch:' .. b .. ':ids:' .. k) and its parameters.
func luaExpr(template string) (expr string, params []string) {
	var parts []string
	rest := template
	if r, ok := strings.CutPrefix(rest, "P "); ok {
		parts, rest = append(parts, "P"), r
	}
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			parts, rest = append(parts, luaQuote(rest)), ""
			break
		}
		if open > 0 {
			parts = append(parts, luaQuote(rest[:open]))
		}
		end := strings.IndexByte(rest, '}')
		param := rest[open+1 : end]
		parts, params = append(parts, param), append(params, param)
		rest = rest[end+1:]
	}
	return strings.Join(parts, " .. "), params
}

// luaQuote quotes a literal of the layout, which holds no quote or
// backslash (a test checks).
func luaQuote(s string) string { return "'" + s + "'" }
