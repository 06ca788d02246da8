package sweep

import (
	"fmt"
	"slices"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// By is the time a sweep compares with its cutoff.
type By string

// The times of [Spec.By].
const (
	// ByCreated compares created_at: the list is read in ascending
	// creation order and the walk stops at the first conversation that is
	// not older than the cutoff.
	ByCreated By = "created"
	// ByUpdated compares updated_at: every page is read, since the list is
	// ordered by creation, not by update.
	ByUpdated By = "updated"
)

// MaxNameLen is the longest sweep name: a name and a tick's time
// ([BatchName]) must make a batch name of at most tasks.MaxBatchLen.
const MaxNameLen = 64

// Spec is one retention policy: which conversations are old enough to go,
// and the batch their deletions join.
type Spec struct {
	// Name names a scheduled sweep: its runs' batches, its Redis record
	// and its metrics' sweep label. 1 to [MaxNameLen] letters, digits,
	// '.', '_' or '-', starting with a letter or digit; optional for a
	// sweep run once.
	Name string
	// Profile is the identity that lists and deletes (default the
	// workers' default profile). The sweep acts as the profile itself,
	// never as an end user's session.
	Profile string
	// BotIDs are the bots swept: at least one, each its numeric id.
	BotIDs []string
	// ConnectorIDs are the channels swept on each bot: coze.ConnectorAPI
	// (the default) and coze.ConnectorChatSDK.
	ConnectorIDs []string
	// OlderThan is the age a conversation must exceed: more than 0.
	OlderThan time.Duration
	// By is the time compared with the cutoff (default [ByCreated]).
	By By
	// Meta, when set, keeps only conversations whose meta_data hold every
	// key with exactly its value.
	Meta map[string]string
	// Queue is the queue the deletions go to (default
	// enqueue.DefaultQueue).
	Queue string
	// Note is the note of a new batch (see enqueue.CheckNote).
	Note string
	// DueIn is when a new batch must be complete, from its creation
	// (default the ledger's 30 days).
	DueIn time.Duration
}

// FieldError is a field of a [Spec] that breaks its rule. Field is the
// field's name in the sweeps file (name, profile, bot_ids, connector_ids,
// older_than, by, meta, queue, note, due_in); a command reports it in its
// flags' words.
type FieldError struct {
	Field string
	Err   error
}

// Error returns "field: rule".
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the rule broken.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// withDefaults returns s with its defaults filled in.
func (s Spec) withDefaults() Spec {
	if len(s.ConnectorIDs) == 0 {
		s.ConnectorIDs = []string{coze.ConnectorAPI}
	}
	if s.By == "" {
		s.By = ByCreated
	}
	if s.Queue == "" {
		s.Queue = enqueue.DefaultQueue
	}
	return s
}

// Validate checks s, its defaults filled in; the first broken rule is a
// [*FieldError].
func (s Spec) Validate() error {
	s = s.withDefaults()
	if s.Name != "" {
		if err := ValidateName(s.Name); err != nil {
			return &FieldError{Field: "name", Err: err}
		}
	}
	if s.Profile != "" {
		if err := tasks.ValidateProfile(s.Profile); err != nil {
			return &FieldError{Field: "profile", Err: err}
		}
	}
	if err := checkIDs(s.BotIDs, "bot_ids", numericID, "want the bot's numeric id"); err != nil {
		return err
	}
	if err := checkIDs(s.ConnectorIDs, "connector_ids", func(id string) bool {
		return id == coze.ConnectorAPI || id == coze.ConnectorChatSDK
	}, "want "+coze.ConnectorAPI+" (API) or "+coze.ConnectorChatSDK+" (Chat SDK)"); err != nil {
		return err
	}
	switch {
	case s.OlderThan <= 0:
		return fieldError("older_than", "%v: must be more than 0s", s.OlderThan)
	case s.By != ByCreated && s.By != ByUpdated:
		return fieldError("by", "%q: want %s or %s", string(s.By), ByCreated, ByUpdated)
	case s.DueIn < 0:
		return fieldError("due_in", "%v: must not be negative", s.DueIn)
	}
	for k := range s.Meta {
		if k == "" {
			return fieldError("meta", "a key is empty: give KEY=VALUE")
		}
	}
	if err := tasks.ValidateQueue(s.Queue); err != nil {
		return &FieldError{Field: "queue", Err: err}
	}
	if err := enqueue.CheckNote(s.Note); err != nil {
		return &FieldError{Field: "note", Err: err}
	}
	if s.DueIn > 0 {
		// A batch due after its records expire would lose its proof.
		if err := enqueue.CheckOptions(time.Now(), enqueue.DueIn(s.DueIn)); err != nil {
			return fieldError("due_in", "%v: must be shorter than the batch's retention (%v)", s.DueIn, ledger.DefaultTTL)
		}
	}
	return nil
}

// ValidateName checks a sweep's name: the rule of batch names, at most
// [MaxNameLen] long, so that its runs' batch names ([BatchName]) are
// valid.
func ValidateName(name string) error {
	if len(name) > MaxNameLen || tasks.ValidateBatch(name) != nil {
		return fmt.Errorf("%.80q: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", name, MaxNameLen)
	}
	return nil
}

// BatchName is the batch of the run of sweep name at tick: the name and
// the tick's UTC time to the second, such as
// "nightly-20261204T030000Z". Every worker that claims the same tick
// names the same batch.
func BatchName(name string, tick time.Time) string {
	return name + "-" + tick.UTC().Format("20060102T150405Z")
}

// checkIDs checks a list of ids: not empty, each valid, none twice.
func checkIDs(ids []string, field string, valid func(string) bool, want string) error {
	if len(ids) == 0 {
		return fieldError(field, "is empty: give at least one")
	}
	for i, id := range ids {
		if !valid(id) {
			return fieldError(field, "%q: %s", id, want)
		}
		if slices.Contains(ids[:i], id) {
			return fieldError(field, "%s is given twice", id)
		}
	}
	return nil
}

// numericID reports whether s is a bot id the list endpoint takes.
func numericID(s string) bool { return coze.ValidateBotID(s) == nil }
