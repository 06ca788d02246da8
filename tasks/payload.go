package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeDelete is the asynq task type of a conversation deletion.
const TypeDelete = "conversation:delete"

// DefaultMaxRetry is the retry budget of a task when the producer names none:
// how many failed attempts (transient errors, unknown codes) are retried
// before the conversation is recorded as failed.
const DefaultMaxRetry = 25

// Payload is the JSON body of a [TypeDelete] task. It holds what the worker
// and the ledger need and nothing secret: the token lives only in the
// worker's environment.
type Payload struct {
	// ConversationID is the conversation to delete; see [ValidateID].
	ConversationID string `json:"id"`
	// Batch names the request this deletion belongs to; see [ValidateBatch].
	Batch string `json:"batch"`
	// Profile names the identity the worker acts as ([ValidateProfile]);
	// empty is the worker's default profile. It names the identity, never
	// holds its secret.
	Profile string `json:"profile,omitempty"`
	// Session is the end user's session (the JWT session_name) the worker
	// acts as, when the conversation was created under session isolation;
	// see [ValidateSession]. It is personal data: it lives in the task
	// while the task does.
	Session string `json:"session,omitempty"`
}

// DefaultProfile is the identity of a task that names no profile: the
// workers' default profile (their token without a profiles file).
const DefaultProfile = "default"

// ProfileName is the profile p acts as: its Profile, or [DefaultProfile].
func (p Payload) ProfileName() string {
	if p.Profile == "" {
		return DefaultProfile
	}
	return p.Profile
}

// WithIdentity returns p acting as profile and session, written as the
// contract wants them: the default profile without a session is left out,
// so that its payload stays the compact one that every worker reads.
func (p Payload) WithIdentity(profile, session string) Payload {
	if profile == DefaultProfile && session == "" {
		profile = ""
	}
	p.Profile, p.Session = profile, session
	return p
}

// A payload holds no enqueue time: asynq keeps one with every pending task
// (pending_since), and each byte of a payload is paid for by every task
// waiting in Redis. Payloads with the "at" field older producers wrote still
// parse.

// TaskID returns the asynq task id of the deletion of conversationID. asynq
// refuses a second task with the same id while the first is pending,
// scheduled, retrying, active or archived, which is how duplicates are found.
func TaskID(conversationID string) string { return "del:" + conversationID }

// RetryReserve is how many asynq retries each task holds beyond its
// budget; see [RetryBudget].
const RetryReserve = 100

// AsynqMaxRetry converts a retry budget into the asynq MaxRetry option value:
// the budget plus [RetryReserve].
func AsynqMaxRetry(budget int) int { return budget + RetryReserve }

// RetryBudget is the inverse of [AsynqMaxRetry]: the number of failed attempts
// the worker may retry, given the task's asynq MaxRetry.
//
// asynq archives a task that returns any error once its retry count reaches
// MaxRetry, even an error it is told is not a failure, and its count also
// grows when a worker dies holding the task (the lease expires). Rate-limited
// and auth answers must never archive a task, so the worker declares a task
// failed itself when the count reaches the budget, and the reserve above it
// absorbs worker crashes: asynq archives a task on its own only after
// RetryReserve of them.
func RetryBudget(asynqMaxRetry int) int {
	return max(asynqMaxRetry-RetryReserve, 0)
}

// NewTask returns the asynq task that deletes p.ConversationID, with its task
// id set. Callers add the queue, schedule and retry options.
func NewTask(p Payload, opts ...asynq.Option) (*asynq.Task, error) {
	body, err := p.Encode()
	if err != nil {
		return nil, err
	}
	opts = append([]asynq.Option{asynq.TaskID(TaskID(p.ConversationID))}, opts...)
	return asynq.NewTask(TypeDelete, body, opts...), nil
}

// Encode validates p and returns the task payload:
// {"id":"…","batch":"…"}, with "profile" and "session" after them when set.
func (p Payload) Encode() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Profile != "" || p.Session != "" {
		// A session may hold what JSON escapes; such payloads are few.
		return json.Marshal(p)
	}
	// Both fields are validated to hold nothing JSON would escape.
	b := make([]byte, 0, len(`{"id":"","batch":""}`)+len(p.ConversationID)+len(p.Batch))
	b = append(b, `{"id":"`...)
	b = append(b, p.ConversationID...)
	b = append(b, `","batch":"`...)
	b = append(b, p.Batch...)
	return append(b, `"}`...), nil
}

// payloadHead is what every encoded payload starts with, up to its id.
const payloadHead = `{"id":"`

// PayloadTemplate returns the payload of p's batch and identity split
// around its conversation id: the payload of id is prefix + id + suffix,
// byte for byte what [Payload.Encode] writes (a conversation id holds
// nothing JSON escapes). A script that writes the tasks of many ids of one
// batch builds their payloads from it. p's ConversationID is not read.
func (p Payload) PayloadTemplate() (prefix, suffix []byte, err error) {
	p.ConversationID = "1" // any valid id: Encode validates
	enc, err := p.Encode()
	if err != nil {
		return nil, nil, err
	}
	rest, ok := bytes.CutPrefix(enc, []byte(payloadHead+p.ConversationID))
	if !ok {
		return nil, nil, fmt.Errorf("tasks: payload %q does not start with its id", enc)
	}
	return []byte(payloadHead), rest, nil
}

// ParsePayload decodes and validates a task payload. A payload written by
// another producer that is not JSON, or whose id is not a conversation id,
// is an error that names the problem.
func ParsePayload(body []byte) (Payload, error) {
	p, ok := parseCompact(body)
	if !ok {
		if err := json.Unmarshal(body, &p); err != nil {
			return Payload{}, fmt.Errorf("payload is not a JSON task payload: %w", err)
		}
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// parseCompact reads the exact form Encode writes, {"id":"…","batch":"…"},
// without reflection: the worker parses one per deletion. Anything else
// (other key order, spaces, escapes, more fields) is left to encoding/json.
func parseCompact(b []byte) (Payload, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"id":"`))
	if !ok {
		return Payload{}, false
	}
	id, rest, ok := bytes.Cut(rest, []byte(`","batch":"`))
	if !ok || bytes.ContainsAny(id, `"\`) {
		return Payload{}, false
	}
	batch, ok := bytes.CutSuffix(rest, []byte(`"}`))
	if !ok || bytes.ContainsAny(batch, `"\`) {
		return Payload{}, false
	}
	return Payload{ConversationID: string(id), Batch: string(batch)}, true
}

// Validate checks the conversation id, the batch name, and the profile and
// session when set. A session needs a profile: the default profile's
// identity is the worker's to choose.
func (p Payload) Validate() error {
	if err := ValidateID(p.ConversationID); err != nil {
		return err
	}
	if err := ValidateBatch(p.Batch); err != nil {
		return err
	}
	if p.Profile != "" {
		if err := ValidateProfile(p.Profile); err != nil {
			return err
		}
	}
	if p.Session != "" {
		if p.Profile == "" {
			return fmt.Errorf("%w: a session needs a profile", ErrInvalidSession)
		}
		return ValidateSession(p.Session)
	}
	return nil
}

// ErrInvalidBatch is wrapped by the error [ValidateBatch] returns.
var ErrInvalidBatch = errors.New("invalid batch name")

// MaxBatchLen is the longest batch name accepted.
const MaxBatchLen = 128

// ValidateBatch checks a batch name: 1 to [MaxBatchLen] ASCII letters,
// digits, '.', '_' or '-', starting with a letter or digit.
//
// Batch names become part of Redis keys ("batch:{name}:ids:{k}",
// "failure:{batch}:{id}"), of index members ("batch/id", "batch@queue",
// space-separated lists) and of report file names, so none of those
// separators is allowed: with ':' a batch named "evil:ids:1" would be the
// id bucket of batch "evil". A payload that names such a batch (written
// before the rule, or by another producer) is refused by [ParsePayload].
func ValidateBatch(name string) error {
	if !plainName(name, MaxBatchLen) {
		return fmt.Errorf("%w %s: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit",
			ErrInvalidBatch, quoteShort(name), MaxBatchLen)
	}
	return nil
}

// NewBatchName returns a generated batch name such as
// "b-20261127T174500Z-3fa2", unique enough for a human to tell runs apart.
func NewBatchName(now time.Time, random uint16) string {
	return fmt.Sprintf("b-%s-%04x", now.UTC().Format("20060102T150405Z"), random)
}
