package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/profiles"
	"github.com/coze-eraser/coze-eraser/tasks"
)

type enqueueFlags struct {
	redis       redisFlags
	batch       batchFlags
	file        string
	at          string
	in          time.Duration
	concurrency int
	// profile and session are the identity the deletions act as; the
	// session is an end user's session_name, personal data that no
	// message repeats.
	profile string
	session string
	// profiles is the profiles file --profile is checked against, when
	// given.
	profiles string
	// warnings are what options found odd but allowed, for runEnqueue to
	// print.
	warnings []string
}

// batchFlags are the settings of the batch ids join, shared by enqueue and
// run.
type batchFlags struct {
	queue       string
	batch       string
	maxRetry    int
	due         string
	dueIn       time.Duration
	note        string
	callbackURL string
	ledgerTTL   time.Duration
}

func (f *batchFlags) register(cmd *cobra.Command, batchUsage string) {
	fl := cmd.Flags()
	fl.StringVar(&f.batch, "batch", "", batchUsage)
	fl.StringVar(&f.queue, "queue", enqueue.DefaultQueue, "queue to put the deletions in: 1-64 letters, digits, '.', '_' or '-'")
	fl.IntVar(&f.maxRetry, "max-retry", tasks.DefaultMaxRetry, "transient failures retried before an id is recorded as failed (0 to 1000)")
	fl.StringVar(&f.due, "due", "", "when a new batch must be done (RFC 3339; default 30 days after creation)")
	fl.DurationVar(&f.dueIn, "due-in", 0, "when a new batch must be done, from now (e.g. 720h)")
	fl.StringVar(&f.note, "note", "", "free text kept with a new batch: a ticket, a data subject reference (one line, at most 1024 bytes)")
	fl.StringVar(&f.callbackURL, "callback-url", "", "POST the batch's summary here when it completes (signed when COZE_ERASER_CALLBACK_SECRET is set on the workers)")
	fl.DurationVar(&f.ledgerTTL, "ledger-ttl", ledger.DefaultTTL, "how long a new batch's records are kept after its last activity (9600h = 400 days; 1h to 87600h, longer than until the batch is due)")
}

func (a *app) enqueueCommand() *cobra.Command {
	var f enqueueFlags
	cmd := &cobra.Command{
		Use:   "enqueue [ID...] [--file FILE|-]",
		Short: "Queue conversations for deletion",
		Long: `Queue conversations for deletion, from arguments or one id per line from
--file (a path, or - for standard input). The file is streamed: blank lines
and surrounding whitespace are ignored, CRLF line ends and a UTF-8 byte order
mark are accepted.

Each invalid id is reported on standard error as
  line N: invalid conversation id "…": <reason>
and the valid ones are still queued. An id that already has a task waiting
is a duplicate, not an error. The last line on standard output is
  enqueued=N duplicate=N invalid=N batch=NAME

The ids belong to a batch (--batch, or a generated name that is printed): an
erasure request with a due time (--due or --due-in, default 30 days), a
--note, and a --callback-url told when it completes. Enqueueing into an
existing batch adds to it; an id already finished in it is not sent again.
Records are kept for --ledger-ttl after the batch's last activity.

A batch is created with its first valid id: input with no id, or that cannot
be read, creates none. A queue that no live worker serves gets a warning.

The deletions act as an identity: --profile names a profile of the workers'
profiles file (default: their default profile), and --session an end user's
session (the session_name their conversations were created under), which
needs a JWT --profile. With --profiles (or COZE_ERASER_PROFILES) the profile
must be in that file, and a --session needs a JWT profile; without it any
valid name is taken, and the workers resolve it (their tasks wait until a
worker has the profile). A batch has one identity: ids for another go in
another batch. The session name is personal data: it is kept in the ledger
only until the batch completes (then only its keyed hash), and never printed.

Exit status: 0 when every id was valid, 1 when some were not, 2 when the ids
could not be queued (bad flags, Redis unreachable, no id in the input).`,
		Example: `  coze-eraser enqueue 7379996104798150001 7379996104798150002
  coze-eraser enqueue --file ids.txt --batch gdpr-2026-118 --queue gdpr
  cut -d, -f1 export.csv | coze-eraser enqueue --file - --in 24h
  coze-eraser enqueue --file ids.txt --batch gdpr-119 --profiles profiles.yaml --profile app-eu --session user-4711`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runEnqueue(cmd.Context(), &f, args) },
	}
	f.redis.register(cmd, 0)
	f.batch.register(cmd, "batch name stored with each deletion (default: generated and printed)")
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "read ids from this file, one per line; - reads standard input")
	fl.StringVar(&f.at, "at", "", "delete at this time instead of now (RFC 3339, e.g. 2026-12-01T02:00:00Z)")
	fl.DurationVar(&f.in, "in", 0, "delete after this delay instead of now (e.g. 24h)")
	fl.IntVar(&f.concurrency, "concurrency", enqueue.DefaultConcurrency, "enqueue calls kept in flight (1 to 1000)")
	fl.StringVar(&f.profile, "profile", "", "the profile (identity) the deletions act as (default: the workers' default profile); "+
		"checked against --profiles when given, else resolved by the workers")
	fl.StringVar(&f.session, "session", "", "the end user's session (session_name) the deletions act as; needs a JWT --profile. "+
		"Personal data: never printed, erased from the ledger once the batch completes; "+
		"prefer the variable to the flag, which other users see in ps")
	fl.StringVar(&f.profiles, "profiles", "",
		"YAML file of the workers' identities (profiles), to check --profile and --session against")
	return cmd
}

func (a *app) runEnqueue(ctx context.Context, f *enqueueFlags, args []string) error {
	opts, err := f.options()
	if err != nil {
		return err
	}
	for _, w := range f.warnings {
		fmt.Fprintln(a.stderr, w)
	}
	switch {
	case f.file != "" && len(args) > 0:
		return setupError("give ids as arguments or with --file, not both")
	case f.file == "" && len(args) == 0:
		return setupError("no ids: give them as arguments or with --file FILE (- for standard input)")
	}
	var input io.Reader
	if f.file == "-" {
		input = a.stdin
	} else if f.file != "" {
		file, err := os.Open(f.file)
		if err != nil {
			return setupError("--file: %v", err)
		}
		defer file.Close() //nolint:errcheck // read only: nothing written can be lost
		if st, err := file.Stat(); err == nil && st.IsDir() {
			// Checked before Redis is touched: no batch for a typo.
			return setupError("--file %s: is a directory; give a file of ids, one per line", f.file)
		}
		input = file
	}
	rdb, err := f.redis.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	_, client, err := f.redis.writer(rdb)
	if err != nil {
		return err
	}
	defer client.Close()

	opts = append(opts, sizeHint(input, args)...)
	label := "line"
	if input == nil {
		label = "argument"
	}
	opts = append(opts, enqueue.OnInvalid(func(inv enqueue.Invalid) {
		fmt.Fprintf(a.stderr, "%s %d: %v\n", label, inv.Line, inv.Err)
	}))
	batch := f.batch.batch
	if batch == "" {
		batch = client.DefaultBatch()
	}
	fmt.Fprintf(a.stderr, "batch %s (coze-eraser status %s)\n", batch, batch)
	if line := f.identityLine(); line != "" {
		fmt.Fprintln(a.stderr, line)
	}
	if w := unservedWarning(ctx, rdb, f.batch.queue); w != "" {
		fmt.Fprintln(a.stderr, w)
	}
	var sum enqueue.Summary
	if input != nil {
		sum, err = client.EnqueueFrom(ctx, input, opts...)
	} else {
		sum, err = client.EnqueueAll(ctx, slices.Values(args), opts...)
	}
	fmt.Fprintln(a.stdout, sum)
	switch {
	case errors.Is(err, ledger.ErrBatchConflict), errors.Is(err, enqueue.ErrNoIDs):
		return setupError("%v", err)
	case err != nil:
		return &exitError{code: exitSetup, err: fmt.Errorf("%w (queueing again is safe: ids already queued count as duplicates)", err)}
	case sum.Invalid > 0:
		return &exitError{code: exitPartial}
	}
	return nil
}

// unservedWarning is the warning for ids about to be queued in a queue no
// live worker serves (they wait until one does), naming the queues that
// are served; "" when queue is served, or when asynq cannot say.
func unservedWarning(ctx context.Context, rdb redis.UniversalClient, queue string) string {
	served, err := enqueue.ServedQueues(ctx, rdb)
	if err != nil || served[queue] {
		return ""
	}
	var names []string
	for q := range served {
		if q != callback.Queue { // every worker serves it; it says nothing
			names = append(names, q)
		}
	}
	slices.Sort(names)
	servedText := "no worker is running"
	if len(names) > 0 {
		servedText = "workers serve " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("warning: --queue %s: no live worker serves it (%s); the ids wait there until a worker "+
		"started with --queues %s runs", queue, servedText, queue)
}

// options are the enqueue options of the flags, refused as a whole when
// one breaks the library's rules, or when --profile and --session do not
// fit the --profiles file.
func (f *enqueueFlags) options() ([]enqueue.Option, error) {
	schedule, scheduled, err := f.schedule(time.Now())
	if err != nil {
		return nil, err
	}
	extra := append(schedule, enqueue.Concurrency(f.concurrency))
	if f.profile != "" {
		extra = append(extra, enqueue.Profile(f.profile))
	}
	if f.session != "" {
		extra = append(extra, enqueue.Session(f.session))
	}
	opts, err := f.batch.options(extra, scheduled)
	if err != nil {
		return nil, err
	}
	return opts, f.checkIdentity()
}

// checkIdentity checks --profile and --session against the --profiles
// file: the profile must be one of it, and a session needs a JWT profile.
// Without a file the workers resolve the profile: any valid name is taken
// (enqueue.CheckOptions checked it). Errors never show the session.
func (f *enqueueFlags) checkIdentity() error {
	if f.profiles == "" || f.profile == "" {
		return nil // no file, or the workers' default profile
	}
	set, err := profiles.Load(f.profiles)
	if err != nil {
		return setupError("--profiles: %v", err)
	}
	p, ok := set.Get(f.profile)
	switch {
	case !ok:
		return setupError("--profile %s: not a profile of --profiles %s (it has: %s)", f.profile, f.profiles,
			strings.Join(set.Names(), ", "))
	case f.session != "" && p.JWT == nil:
		return setupError("--session: profile %s of --profiles %s is a static token, which has no sessions; "+
			"give the JWT profile of the app the session belongs to", f.profile, f.profiles)
	}
	return nil
}

// identityLine tells, on standard error, the identity the deletions act
// as when it is not the default: a --session set in the environment and
// forgotten would otherwise go unnoticed. It never shows the session.
func (f *enqueueFlags) identityLine() string {
	switch {
	case f.session != "":
		return fmt.Sprintf("acting as profile %s, for an end user's session (--session, not shown)", f.profile)
	case f.profile != "":
		return "acting as profile " + f.profile
	}
	return ""
}

// schedule returns the options of --at and --in, and what they are in
// words for an error that the wait causes (batchFlags.options checks them
// with the library's rules: not both, --in not negative).
func (f *enqueueFlags) schedule(now time.Time) (opts []enqueue.Option, scheduled string, err error) {
	if f.in != 0 {
		opts, scheduled = append(opts, enqueue.In(f.in)), "--in "+f.in.String()
	}
	if f.at != "" {
		at, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return nil, "", setupError("--at %q: not an RFC 3339 time such as 2026-12-01T02:00:00Z", f.at)
		}
		if at.Before(now) {
			f.warnings = append(f.warnings, fmt.Sprintf("--at %s is in the past: the deletions run now", f.at))
		}
		opts = append(opts, enqueue.At(at))
		scheduled = fmt.Sprintf("--at %s, in %v", f.at, max(at.Sub(now), 0).Round(time.Second))
	}
	return opts, scheduled, nil
}

// options are the enqueue options of the batch settings and of extra
// (--at or --in, described by scheduled, and --concurrency), checked by
// the library's rules (enqueue.CheckOptions) before Redis is reached.
func (f *batchFlags) options(extra []enqueue.Option, scheduled string) ([]enqueue.Option, error) {
	opts := []enqueue.Option{enqueue.Queue(f.queue), enqueue.MaxRetry(f.maxRetry), enqueue.Retention(f.ledgerTTL)}
	if f.batch != "" {
		opts = append(opts, enqueue.Batch(f.batch))
	}
	if f.due != "" {
		due, err := time.Parse(time.RFC3339, f.due)
		if err != nil {
			return nil, setupError("--due %q: not an RFC 3339 time such as 2026-12-27T00:00:00Z", f.due)
		}
		opts = append(opts, enqueue.Due(due))
	}
	if f.dueIn != 0 {
		opts = append(opts, enqueue.DueIn(f.dueIn))
	}
	if f.callbackURL != "" {
		opts = append(opts, enqueue.CallbackURL(f.callbackURL))
	}
	if f.note != "" {
		opts = append(opts, enqueue.Note(f.note))
	}
	opts = append(opts, extra...)
	if err := f.check(time.Now(), opts, scheduled); err != nil {
		return nil, err
	}
	return opts, nil
}

// optionFlags are the flags that set the library's options, by the
// option's name in an *enqueue.OptionError.
var optionFlags = map[string]string{
	"Queue": "--queue", "Batch": "--batch", "MaxRetry": "--max-retry", "Concurrency": "--concurrency",
	"At": "--at", "In": "--in", "Due": "--due", "DueIn": "--due-in",
	"Note": "--note", "CallbackURL": "--callback-url", "Retention": "--ledger-ttl",
	"Profile": "--profile", "Session": "--session",
}

// check reports what enqueue.CheckOptions refuses in opts, in the flags'
// words.
func (f *batchFlags) check(now time.Time, opts []enqueue.Option, scheduled string) error {
	err := enqueue.CheckOptions(now, opts...)
	var bounds *enqueue.BoundsError
	if errors.As(err, &bounds) {
		return f.boundsError(now, bounds, scheduled)
	}
	return optionFlagError(err)
}

// optionFlagError is err, an *enqueue.OptionError, in the words of the
// flag that set the option: "--max-retry 5000: must be 0 to 1000", "give
// --at or --in, not both". Any other error keeps the library's words.
func optionFlagError(err error) error {
	var option *enqueue.OptionError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &option) || optionFlags[option.Option] == "":
		return setupError("%v", err) // no flag sets it
	case errors.Is(err, enqueue.ErrNeedsOption):
		return setupError("%s needs %s", optionFlags[option.Option], optionFlags[option.With])
	case option.With != "":
		return setupError("give %s or %s, not both", optionFlags[option.With], optionFlags[option.Option])
	case option.Value != nil:
		return setupError("%s %v: %v", optionFlags[option.Option], option.Value, option.Err)
	}
	return setupError("%s: %v", optionFlags[option.Option], option.Err)
}

// boundsError puts a setting that the others make impossible in the
// flags' words: a --due in the past, or a --ledger-ttl the records would
// not outlive the wait of --at or --in (scheduled) or the due time by.
func (f *batchFlags) boundsError(now time.Time, bounds *enqueue.BoundsError, scheduled string) error {
	switch bounds.Problem {
	case enqueue.DueInThePast:
		return setupError("--due %s: %s (now %s); give a later time, or leave --due out to add ids to an existing batch",
			f.due, bounds.Problem, now.UTC().Format(time.RFC3339))
	case enqueue.ExpiresBeforeRun:
		return setupError("--ledger-ttl %v: %s (%s); keep them at least %v longer than the wait, up to %v",
			f.ledgerTTL, bounds.Problem, scheduled, enqueue.MinRetention, enqueue.MaxRetention)
	}
	due := fmt.Sprintf("%v after creation, the default; give --due or --due-in", bounds.Until)
	switch {
	case f.due != "":
		due = fmt.Sprintf("--due %s, in %v", f.due, bounds.Until.Round(time.Second))
	case f.dueIn > 0:
		due = "--due-in " + f.dueIn.String()
	}
	return setupError("--ledger-ttl %v: %s (%s); keep them longer, up to %v, or give an earlier due time",
		f.ledgerTTL, bounds.Problem, due, enqueue.MaxRetention)
}

// sizeHint tells a new batch how many ids to expect, when that is known:
// the arguments, or a regular file's size (a Coze id is 19 digits and a
// newline; dividing by 16 errs high, which costs less than erring low).
func sizeHint(input io.Reader, args []string) []enqueue.Option {
	if input == nil {
		return []enqueue.Option{enqueue.ExpectedIDs(len(args))}
	}
	if f, ok := input.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			return []enqueue.Option{enqueue.ExpectedIDs(int(st.Size()/16) + 1)}
		}
	}
	return nil
}
