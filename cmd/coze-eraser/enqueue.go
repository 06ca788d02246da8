package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/tasks"
)

type enqueueFlags struct {
	redis       redisFlags
	batch       batchFlags
	file        string
	at          string
	in          time.Duration
	concurrency int
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
	fl.StringVar(&f.queue, "queue", enqueue.DefaultQueue, "queue to put the deletions in")
	fl.IntVar(&f.maxRetry, "max-retry", tasks.DefaultMaxRetry, "transient failures retried before an id is recorded as failed")
	fl.StringVar(&f.due, "due", "", "when a new batch must be done (RFC 3339; default 30 days after creation)")
	fl.DurationVar(&f.dueIn, "due-in", 0, "when a new batch must be done, from now (e.g. 720h)")
	fl.StringVar(&f.note, "note", "", "free text kept with a new batch: a ticket, a data subject reference")
	fl.StringVar(&f.callbackURL, "callback-url", "", "POST the batch's summary here when it completes (signed when COZE_ERASER_CALLBACK_SECRET is set on the workers)")
	fl.DurationVar(&f.ledgerTTL, "ledger-ttl", ledger.DefaultTTL, "how long a new batch's records are kept after its last activity (9600h = 400 days)")
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

Exit status: 0 when every id was valid, 1 when some were not, 2 when the ids
could not be queued (bad flags, Redis unreachable).`,
		Example: `  coze-eraser enqueue 7379996104798150001 7379996104798150002
  coze-eraser enqueue --file ids.txt --batch gdpr-2026-118 --queue gdpr
  cut -d, -f1 export.csv | coze-eraser enqueue --file - --in 24h`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runEnqueue(cmd.Context(), &f, args) },
	}
	f.redis.register(cmd, 0)
	f.batch.register(cmd, "batch name stored with each deletion (default: generated and printed)")
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "read ids from this file, one per line; - reads standard input")
	fl.StringVar(&f.at, "at", "", "delete at this time instead of now (RFC 3339, e.g. 2026-12-01T02:00:00Z)")
	fl.DurationVar(&f.in, "in", 0, "delete after this delay instead of now (e.g. 24h)")
	fl.IntVar(&f.concurrency, "concurrency", enqueue.DefaultConcurrency, "enqueue calls kept in flight")
	return cmd
}

func (a *app) runEnqueue(ctx context.Context, f *enqueueFlags, args []string) error {
	opts, err := f.options()
	if err != nil {
		return err
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
		defer file.Close()
		input = file
	}
	rdb, err := f.redis.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	client := enqueue.NewClient(rdb)
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
	var sum enqueue.Summary
	if input != nil {
		sum, err = client.EnqueueFrom(ctx, input, opts...)
	} else {
		sum, err = client.EnqueueAll(ctx, slices.Values(args), opts...)
	}
	fmt.Fprintln(a.stdout, sum)
	switch {
	case errors.Is(err, ledger.ErrBatchConflict):
		return setupError("%v", err)
	case err != nil:
		return &exitError{code: exitSetup, err: fmt.Errorf("%w (queueing again is safe: ids already queued count as duplicates)", err)}
	case sum.Invalid > 0:
		return &exitError{code: exitPartial}
	}
	return nil
}

func (f *enqueueFlags) options() ([]enqueue.Option, error) {
	if f.concurrency < 1 {
		return nil, setupError("--concurrency %d: must be 1 or more", f.concurrency)
	}
	opts, err := f.batch.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, enqueue.Concurrency(f.concurrency))
	if f.at != "" && f.in != 0 {
		return nil, setupError("give --at or --in, not both")
	}
	if f.at != "" {
		at, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return nil, setupError("--at %q: not an RFC 3339 time such as 2026-12-01T02:00:00Z", f.at)
		}
		opts = append(opts, enqueue.At(at))
	}
	if f.in < 0 {
		return nil, setupError("--in %v: must not be negative", f.in)
	}
	if f.in > 0 {
		opts = append(opts, enqueue.In(f.in))
	}
	return opts, nil
}

// options are the enqueue options of the batch settings.
func (f *batchFlags) options() ([]enqueue.Option, error) {
	opts := []enqueue.Option{enqueue.Queue(f.queue), enqueue.MaxRetry(f.maxRetry), enqueue.Retention(f.ledgerTTL)}
	if f.batch != "" {
		if err := tasks.ValidateBatch(f.batch); err != nil {
			return nil, setupError("--batch: %v", err)
		}
		opts = append(opts, enqueue.Batch(f.batch))
	}
	switch {
	case f.maxRetry < 0:
		return nil, setupError("--max-retry %d: must be 0 or more", f.maxRetry)
	case f.due != "" && f.dueIn != 0:
		return nil, setupError("give --due or --due-in, not both")
	case f.dueIn < 0:
		return nil, setupError("--due-in %v: must not be negative", f.dueIn)
	case f.ledgerTTL < time.Hour:
		return nil, setupError("--ledger-ttl %v: keep records at least an hour", f.ledgerTTL)
	}
	if f.due != "" {
		due, err := time.Parse(time.RFC3339, f.due)
		if err != nil {
			return nil, setupError("--due %q: not an RFC 3339 time such as 2026-12-27T00:00:00Z", f.due)
		}
		opts = append(opts, enqueue.Due(due))
	}
	if f.dueIn > 0 {
		opts = append(opts, enqueue.DueIn(f.dueIn))
	}
	if f.callbackURL != "" {
		u, err := url.Parse(f.callbackURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, setupError("--callback-url: must be an absolute http or https URL")
		}
		opts = append(opts, enqueue.CallbackURL(f.callbackURL))
	}
	if f.note != "" {
		opts = append(opts, enqueue.Note(f.note))
	}
	return opts, nil
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
