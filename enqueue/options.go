package enqueue

import (
	"errors"
	"fmt"
	"time"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// MaxConcurrency is the most enqueue calls a stream keeps in flight: each
// is a round trip of up to 256 ids, and Redis is the limit long before a
// thousand of them.
const MaxConcurrency = 1000

// The rules an [OptionError] names, other than a name's or a note's own;
// errors.Is matches them.
var (
	// ErrOutOfRange is a value outside its option's range: a retry budget,
	// a concurrency, a retention, a note's length, a negative delay.
	ErrOutOfRange = errors.New("out of range")
	// ErrConflict is two options given together that exclude each other:
	// At and In, or Due and DueIn.
	ErrConflict = errors.New("options exclude each other")
	// ErrNeedsOption is an option given without one it needs: Session
	// without Profile.
	ErrNeedsOption = errors.New("needs another option")
)

// OptionError is an option an enqueue call refuses before it reaches
// Redis: nothing is written. A command reports it in its own flags' words,
// by Option (and With).
type OptionError struct {
	// Option is the name of the function that set the option: "Queue",
	// "Batch", "MaxRetry", "Concurrency", "At", "In", "Due", "DueIn",
	// "Note", "CallbackURL", "Retention", "Profile" or "Session".
	Option string
	// Value is the value refused (an int or a time.Duration) when the
	// message shows it; nil for a name, which Err quotes, and for a note or
	// a URL, which are not repeated.
	Value any
	// With is, when Err is ErrConflict, the option given with Option; when
	// Err is ErrNeedsOption, the option Option needs.
	With string
	// Err is the rule broken: ErrConflict, ErrNeedsOption, an error that
	// wraps ErrOutOfRange and says the range, or the error of the option's
	// own check (tasks.ErrInvalidQueue, tasks.ErrInvalidBatch, [CheckNote],
	// callback.ValidateURL, tasks.ErrInvalidProfile,
	// tasks.ErrInvalidSession, which never quotes the session).
	Err error
}

// optionWords name the options in the library's messages.
var optionWords = map[string]string{
	"Queue": "queue", "Batch": "batch", "MaxRetry": "max retry", "Concurrency": "concurrency",
	"At": "time (At)", "In": "delay (In)", "Due": "due time (Due)", "DueIn": "due in",
	"Note": "note", "CallbackURL": "callback URL", "Retention": "retention",
	"Profile": "profile", "Session": "session",
}

// Error says what is wrong in the library's words, as
// "max retry 5000: must be 0 to 1000", "give At or In, not both" or
// "give Profile with Session".
func (e *OptionError) Error() string {
	if errors.Is(e.Err, ErrNeedsOption) {
		return fmt.Sprintf("give %s with %s", e.With, e.Option)
	}
	if e.With != "" {
		return fmt.Sprintf("give %s or %s, not both", e.With, e.Option)
	}
	name := optionWords[e.Option]
	if e.Value != nil {
		name = fmt.Sprintf("%s %v", name, e.Value)
	}
	return name + ": " + e.Err.Error()
}

// Unwrap returns the rule broken.
func (e *OptionError) Unwrap() error { return e.Err }

// outOfRange is ErrOutOfRange in words: the range a value must be in.
type outOfRange string

func (e outOfRange) Error() string        { return string(e) }
func (e outOfRange) Is(target error) bool { return target == ErrOutOfRange }

// CheckOptions checks opts as an enqueue call does, at now and without a
// client or Redis: each option's own rule (an *OptionError), then the due
// time, schedule and retention against each other (a *BoundsError). A
// command calls it to refuse bad flags before it connects.
func CheckOptions(now time.Time, opts ...Option) error {
	// A client's default batch name has this form; only a named one can
	// be wrong.
	o := defaultOptions(tasks.NewBatchName(now, 0))
	for _, opt := range opts {
		opt(&o)
	}
	return o.check(now)
}

// defaultOptions are the options of a call that gives none, in batch.
func defaultOptions(batch string) options {
	return options{queue: DefaultQueue, batch: batch, maxRetry: tasks.DefaultMaxRetry,
		concurrency: DefaultConcurrency, retention: ledger.DefaultTTL}
}

// check applies every rule to o, the first broken one making the error:
// each option's own, the pairs that exclude each other, then the bounds
// the options set each other (checkBounds).
func (o options) check(now time.Time) error {
	if err := o.checkEach(); err != nil {
		return err
	}
	switch {
	case !o.processAt.IsZero() && o.processIn != 0:
		return &OptionError{Option: "In", With: "At", Err: ErrConflict}
	case !o.due.IsZero() && o.dueIn != 0:
		return &OptionError{Option: "DueIn", With: "Due", Err: ErrConflict}
	}
	return checkBounds(o, now)
}

// checkEach checks each option on its own.
func (o options) checkEach() error {
	if err := tasks.ValidateQueue(o.queue); err != nil {
		return &OptionError{Option: "Queue", Err: err}
	}
	if err := ValidateBatch(o.batch); err != nil {
		return &OptionError{Option: "Batch", Err: err}
	}
	notNegative := outOfRange("must not be negative")
	switch {
	case CheckMaxRetry(o.maxRetry) != nil:
		return &OptionError{Option: "MaxRetry", Value: o.maxRetry, Err: CheckMaxRetry(o.maxRetry)}
	case o.concurrency < 1 || o.concurrency > MaxConcurrency:
		return &OptionError{Option: "Concurrency", Value: o.concurrency,
			Err: outOfRange(fmt.Sprintf("must be 1 to %d", MaxConcurrency))}
	case o.processIn < 0:
		return &OptionError{Option: "In", Value: o.processIn, Err: notNegative}
	case o.dueIn < 0:
		return &OptionError{Option: "DueIn", Value: o.dueIn, Err: notNegative}
	case CheckRetention(o.retention) != nil:
		return &OptionError{Option: "Retention", Value: o.retention, Err: CheckRetention(o.retention)}
	case CheckNote(o.note) != nil:
		return &OptionError{Option: "Note", Err: CheckNote(o.note)}
	}
	if o.callbackURL != "" {
		if err := callback.ValidateURL(o.callbackURL); err != nil {
			return &OptionError{Option: "CallbackURL", Err: err}
		}
	}
	return o.checkIdentity()
}

// checkIdentity checks the profile and the session: each by its rule, and
// a session only with a profile (the default identity's tokens are the
// workers' to choose, and may have no sessions).
func (o options) checkIdentity() error {
	if o.profile != "" {
		if err := tasks.ValidateProfile(o.profile); err != nil {
			return &OptionError{Option: "Profile", Err: err}
		}
	}
	if o.session == "" {
		if o.verify {
			return &OptionError{Option: "Verify", With: "Session", Err: ErrNeedsOption}
		}
		return nil
	}
	if err := tasks.ValidateSession(o.session); err != nil {
		return &OptionError{Option: "Session", Err: err}
	}
	if o.profile == "" {
		return &OptionError{Option: "Session", With: "Profile", Err: ErrNeedsOption}
	}
	return nil
}
