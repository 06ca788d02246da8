package enqueue_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// refusedOption is an option (or pair) the library refuses, and how it
// says so.
type refusedOption struct {
	name string
	opts []enqueue.Option
	// option and with are the OptionError's Option and With; rule is what
	// errors.Is matches; want is in the message.
	option, with string
	rule         error
	want         string
}

// refusedOptions are issue 13, point 3: every check the CLI made on its
// own (a negative --in, --concurrency 0, --ledger-ttl 0s) or in its own
// words is the library's, named by option and rule.
func refusedOptions() []refusedOption {
	now := time.Now()
	return []refusedOption{
		{"max retry negative", []enqueue.Option{enqueue.MaxRetry(-1)}, "MaxRetry", "", enqueue.ErrOutOfRange, "max retry -1: must be 0 to 1000"},
		{"max retry too large", []enqueue.Option{enqueue.MaxRetry(1001)}, "MaxRetry", "", enqueue.ErrOutOfRange, "max retry 1001: must be 0 to 1000"},
		{"concurrency 0", []enqueue.Option{enqueue.Concurrency(0)}, "Concurrency", "", enqueue.ErrOutOfRange, "concurrency 0: must be 1 to 1000"},
		{"concurrency too large", []enqueue.Option{enqueue.Concurrency(1001)}, "Concurrency", "", enqueue.ErrOutOfRange, "concurrency 1001: must be 1 to 1000"},
		{"in negative", []enqueue.Option{enqueue.In(-time.Second)}, "In", "", enqueue.ErrOutOfRange, "delay (In) -1s: must not be negative"},
		{"due in negative", []enqueue.Option{enqueue.DueIn(-time.Hour)}, "DueIn", "", enqueue.ErrOutOfRange, "due in -1h0m0s: must not be negative"},
		{"at and in", []enqueue.Option{enqueue.At(now.Add(time.Hour)), enqueue.In(time.Hour)}, "In", "At", enqueue.ErrConflict, "give At or In, not both"},
		{"due and due in", []enqueue.Option{enqueue.Due(now.Add(time.Hour)), enqueue.DueIn(time.Hour)}, "DueIn", "Due", enqueue.ErrConflict, "give Due or DueIn, not both"},
		{"retention 0", []enqueue.Option{enqueue.Retention(0)}, "Retention", "", enqueue.ErrOutOfRange, "retention 0s: must be 1h0m0s to 87600h0m0s"},
		{"retention too long", []enqueue.Option{enqueue.Retention(87601 * time.Hour)}, "Retention", "", enqueue.ErrOutOfRange, "must be 1h0m0s to 87600h0m0s"},
		{"note too long", []enqueue.Option{enqueue.Note(strings.Repeat("n", 1025))}, "Note", "", enqueue.ErrOutOfRange, "note: 1025 bytes long"},
		{"note with a newline", []enqueue.Option{enqueue.Note("a\nb")}, "Note", "", nil, "note: has the control character U+000A"},
		{"queue", []enqueue.Option{enqueue.Queue("a b")}, "Queue", "", tasks.ErrInvalidQueue, `invalid queue name "a b"`},
		{"batch empty", []enqueue.Option{enqueue.Batch("")}, "Batch", "", tasks.ErrInvalidBatch, "invalid batch name"},
		{"batch reserved", []enqueue.Option{enqueue.Batch(ledger.InvalidBatch)}, "Batch", "", tasks.ErrInvalidBatch, "reserved"},
		{"callback URL", []enqueue.Option{enqueue.CallbackURL("https://alice:hunter2@example.com/hook")}, "CallbackURL", "", nil, "callback URL: "},
		{"profile", []enqueue.Option{enqueue.Profile("app eu")}, "Profile", "", tasks.ErrInvalidProfile, `profile: invalid profile name "app eu"`},
		{"session without profile", []enqueue.Option{enqueue.Session("hunter2")}, "Session", "Profile", enqueue.ErrNeedsOption, "give Profile with Session"},
		{"session with a control character", []enqueue.Option{enqueue.Profile("app"), enqueue.Session("hunter2\n")}, "Session", "", tasks.ErrInvalidSession, "session: invalid session name: a control character at byte 8"},
	}
}

func TestCheckOptionsNamesOptionAndRule(t *testing.T) {
	t.Parallel()
	for _, tt := range refusedOptions() {
		err := enqueue.CheckOptions(time.Now(), tt.opts...)
		checkRefused(t, tt, err)
	}
}

func checkRefused(t *testing.T, tt refusedOption, err error) {
	t.Helper()
	var oe *enqueue.OptionError
	switch {
	case !errors.As(err, &oe):
		t.Errorf("%s: err = %v, want an *OptionError", tt.name, err)
	case oe.Option != tt.option || oe.With != tt.with:
		t.Errorf("%s: Option %q With %q, want %q %q", tt.name, oe.Option, oe.With, tt.option, tt.with)
	case tt.rule != nil && !errors.Is(err, tt.rule):
		t.Errorf("%s: %v is not %v", tt.name, err, tt.rule)
	case tt.rule == nil && (errors.Is(err, enqueue.ErrOutOfRange) || errors.Is(err, enqueue.ErrConflict) ||
		errors.Is(err, enqueue.ErrNeedsOption)):
		t.Errorf("%s: %v matches a rule it does not break", tt.name, err)
	case !strings.Contains(err.Error(), tt.want):
		t.Errorf("%s: %q does not say %q", tt.name, err, tt.want)
	case strings.Contains(err.Error(), "hunter2"):
		t.Errorf("%s: %q repeats the credential (or the session name)", tt.name, err)
	}
}

// TestCheckOptionsTakesTheEdges: the default and the values at the edge
// of each range pass; a past At runs now, which is no error.
func TestCheckOptionsTakesTheEdges(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for i, opts := range [][]enqueue.Option{
		nil,
		{enqueue.MaxRetry(0), enqueue.Concurrency(1), enqueue.Retention(time.Hour), enqueue.DueIn(time.Minute)},
		{enqueue.MaxRetry(1000), enqueue.Concurrency(1000), enqueue.Retention(87600 * time.Hour)},
		{enqueue.At(now.Add(-time.Hour)), enqueue.Due(now.Add(time.Hour))},
		{enqueue.In(time.Hour), enqueue.DueIn(time.Hour), enqueue.Note(strings.Repeat("n", 1024))},
		{enqueue.Queue("gdpr"), enqueue.Batch("gdpr-118"), enqueue.CallbackURL("https://example.com/hook")},
		{enqueue.Profile("default")},
		{enqueue.Profile("app-eu"), enqueue.Session("user 4711 (Zoë)")},
		{enqueue.Session("")},
	} {
		if err := enqueue.CheckOptions(now, opts...); err != nil {
			t.Errorf("options %d: %v", i, err)
		}
	}
}

// TestCheckOptionsBounds: what the options make impossible together is a
// *BoundsError, as from a client.
func TestCheckOptionsBounds(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var bounds *enqueue.BoundsError
	err := enqueue.CheckOptions(now, enqueue.Due(now.Add(-time.Minute)))
	if !errors.As(err, &bounds) || bounds.Problem != enqueue.DueInThePast {
		t.Errorf("due in the past: %v, want a DueInThePast *BoundsError", err)
	}
	err = enqueue.CheckOptions(now, enqueue.Retention(time.Hour), enqueue.DueIn(time.Minute), enqueue.In(2*time.Hour))
	if !errors.As(err, &bounds) || bounds.Problem != enqueue.ExpiresBeforeRun {
		t.Errorf("expires before the run: %v, want an ExpiresBeforeRun *BoundsError", err)
	}
}

// TestRefusedOptionsWriteNothing: every call of the client refuses each
// option with the same error before it writes: Redis stays empty.
func TestRefusedOptionsWriteNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	c := enqueue.NewClient(rdb)
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	for _, tt := range refusedOptions() {
		_, err := c.Enqueue(ctx, "7379996104798150001", tt.opts...)
		checkRefused(t, tt, err)
		_, err = c.EnqueueAll(ctx, func(yield func(string) bool) { yield("7379996104798150001") }, tt.opts...)
		checkRefused(t, tt, err)
		_, err = c.EnqueueFrom(ctx, strings.NewReader("7379996104798150001\n"), tt.opts...)
		checkRefused(t, tt, err)
		_, err = c.RetryFailures(ctx, ledger.Filter{}, false, tt.opts...)
		checkRefused(t, tt, err)
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
		keys, _ := rdb.Keys(ctx, "*").Result()
		t.Errorf("refused calls left %d keys (%v): %q", n, err, keys)
	}
}
