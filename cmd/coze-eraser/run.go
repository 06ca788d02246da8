package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/termbar"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/runner"
	"github.com/coze-eraser/coze-eraser/subject"
	"github.com/coze-eraser/coze-eraser/tasks"
	"github.com/coze-eraser/coze-eraser/worker"
)

// exitInterrupted is the exit status of a run stopped by SIGINT or SIGTERM.
const exitInterrupted = 130

type runFlags struct {
	redis  redisFlags
	work   workFlags
	batch  batchFlags
	file   string
	report string
	every  time.Duration
	// profile is the identity the run's deletions act as.
	profile string
	// subject, when its session is set, is a data subject the run erases
	// instead of ids (--session, --bot-id, --connector-id).
	subject subjectTarget
	// queueGiven is true when --queue was given: the run then uses that
	// queue rather than one of its own.
	queueGiven bool
}

func (a *app) runCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [ID...] [--file FILE|-]",
		Short: "Delete a set of ids from start to finish in one command",
		Long: `Delete a set of ids in one command: queue them as a batch, work them with the
same handler, retry policy and limiter as 'worker', show progress (a bar on a
terminal, a line every --progress-every otherwise), and exit when every id
has an outcome, printing the tallies and writing the proof of erasure to
--report.

With --session and --bot-id instead of ids, it erases a data subject as
erase-subject does (lists the session's conversations on each bot, deletes
them as the session) and exits once the batch's verification is over.

Without --redis-url (or REDIS_URL) it uses an embedded Redis inside the
process, which keeps nothing after exit. With a Redis URL the ledger stays,
and an interrupted run is resumed by running the same command again: ids
that already have their outcome are not sent to the API again. The default
batch name is derived from the input, so the same file gives the same batch.

Exit status: 0 when no id failed, 1 when some failed or were invalid, 2 when
the run could not start, 130 when interrupted.`,
		Example: `  COZE_API_TOKEN=pat_... coze-eraser run --file ids.txt --report proof.csv
  coze-eraser run --file ids.txt --redis-url redis://127.0.0.1:6379/0 --rate 50
  COZE_ERASER_RUN_SESSION=user-4711 coze-eraser run --profiles profiles.yaml --profile app-eu --bot-id 7379996104798150001`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.queueGiven = cmd.Flags().Changed("queue")
			return a.runRun(cmd.Context(), &f, args)
		},
	}
	cmd.Flags().StringVar(&f.redis.url, "redis-url", "", "Redis to keep the queue and ledger in (default: an embedded one that keeps nothing)")
	f.redis.registerRest(cmd, 0)
	f.work.register(cmd)
	f.batch.register(cmd, "batch name (default: derived from the input, so running the same input again resumes it)")
	cmd.Flags().StringVar(&f.profile, "profile", "", "the profile of --profiles the deletions act as (default: \"default\", or the file's only profile)")
	f.subject.registerSubject(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "read ids from this file, one per line; - reads standard input")
	fl.StringVar(&f.report, "report", "", "write the proof of erasure here at the end (.jsonl for JSON lines, else CSV)")
	fl.DurationVar(&f.every, "progress-every", 5*time.Second, "how often to print a progress line when not on a terminal (100ms to 1h)")
	// A run shows a progress bar; a log line per retried attempt would
	// bury it. The failures are in the report and `failures list`.
	f.work.log.level = "error"
	fl.Lookup("log-level").DefValue = "error"
	return cmd
}

// Bounds of --progress-every: more often than ten times a second is noise
// in a log, less often than hourly is no progress report.
const (
	minProgressEvery = 100 * time.Millisecond
	maxProgressEvery = time.Hour
)

func (a *app) runRun(ctx context.Context, f *runFlags, args []string) error {
	if f.every < minProgressEvery || f.every > maxProgressEvery {
		// 0 would have meant the runner's default of a second.
		return setupError("--progress-every %v: must be %v to %v", f.every, minProgressEvery, maxProgressEvery)
	}
	var subjectReq *subject.Request
	if f.subject.session != "" || len(f.subject.botIDs) > 0 {
		if f.file != "" || len(args) > 0 {
			return setupError("give ids (arguments or --file) or a subject (--session and --bot-id), not both")
		}
		// --profile may be left out, as for ids: the run's profile is
		// resolved with the profiles file below.
		f.subject.profile = cmp.Or(f.profile, tasks.DefaultProfile)
		req, err := f.subject.request(f.batch.batch)
		if err != nil {
			return err
		}
		subjectReq = &req
		f.work.runSessions = true
		f.work.ephemeralSessionKey = !f.redis.given()
	}
	var (
		in         runner.Input
		source     string
		closeInput = func() {}
		err        error
	)
	if subjectReq == nil {
		if in, source, closeInput, err = a.runInput(f.file, args); err != nil {
			return err
		}
	}
	defer closeInput()
	opts, err := f.batch.options(nil, "")
	if err != nil {
		return err
	}
	opts = append(opts, sizeHint(in.Reader, args)...)
	batch := f.batch.batch
	if batch == "" {
		batch = defaultRunBatch(source)
	}
	if subjectReq != nil {
		subjectReq.Batch = batch
	}
	// The log shares standard error with the progress bar: both go
	// through term, so that a log line never lands on the bar's line.
	term := termbar.New(a.stderr, isTerminal(a.stderr))
	log, flushLog, err := f.work.log.logger(term)
	if err != nil {
		return err
	}
	defer flushLog()
	var profile string
	f.work.actAs = func(names []string) (string, error) {
		name, err := runProfile(f.profile, names)
		profile = name
		return name, err
	}
	ws, err := f.work.setup(a, log)
	if err != nil {
		return err
	}
	if profile != tasks.DefaultProfile {
		opts = append(opts, enqueue.Profile(profile))
	}
	if subjectReq != nil {
		subjectReq.Profile = profile
	}
	rdb, embedded, closeRedis, err := a.runRedis(ctx, &f.redis)
	if err != nil {
		return err
	}
	defer closeRedis()
	if !embedded {
		if err := checkPersistence(ctx, rdb, log, false); err != nil {
			return err
		}
	}
	cfg, closeLimiters, err := f.work.config(a, rdb, log, ws)
	if err != nil {
		return err
	}
	defer closeLimiters()
	if subjectReq != nil {
		if in, err = subjectInput(*subjectReq, ws, cfg, rdb, term); err != nil {
			return err
		}
	}
	// The run's own worker takes tasks only from the queue its ids go to:
	// a queue of the batch's own unless --queue names one (then the run
	// serves that queue, and shares it with whoever else uses it).
	cfg.Queues = map[string]int{f.batch.queue: 1}
	privateQueue := !f.queueGiven
	ln, err := f.work.listenMetrics(true)
	if err != nil {
		return err
	}
	if ln != nil {
		fmt.Fprintf(a.stderr, "metrics: http://%s/metrics while the run lasts\n", ln.Addr())
	}
	fmt.Fprintf(a.stderr, "batch %s\n", batch)
	// A run is watched by a person: move retries along faster than a
	// fleet worker does (asynq's defaults: 1 s polls, 5 s forwarding).
	cfg.PollInterval, cfg.ForwardInterval = 200*time.Millisecond, time.Second
	progress, runErr := a.runToEnd(ctx, runJob{
		rdb: rdb, worker: cfg, batch: batch, opts: opts, input: in, metrics: ln, every: f.every, log: log, term: term,
		privateQueue: privateQueue,
	})
	if errors.Is(runErr, enqueue.ErrNoIDs) {
		return setupError("%v", runErr) // no batch: no tallies, no report
	}
	return a.finishRun(ctx, rdb, progress, runErr, f.report, embedded)
}

// runInput opens the ids: a file, standard input, or the arguments. source
// names the input, for the default batch name (empty for standard input,
// which cannot be read twice: its batch gets a generated name).
func (a *app) runInput(file string, args []string) (in runner.Input, source string, closeFn func(), err error) {
	closeFn = func() {}
	switch {
	case file != "" && len(args) > 0:
		return in, "", closeFn, setupError("give ids as arguments or with --file, not both")
	case file == "" && len(args) == 0:
		return in, "", closeFn, setupError("no ids: give them as arguments or with --file FILE (- for standard input)")
	case file == "-":
		return runner.Input{Reader: a.stdin}, "", closeFn, nil
	case file != "":
		fh, err := os.Open(file)
		if err != nil {
			return in, "", closeFn, setupError("--file: %v", err)
		}
		abs, _ := filepath.Abs(file)
		return runner.Input{Reader: fh}, "file:" + abs, func() { _ = fh.Close() }, nil // read only: nothing to lose
	}
	return runner.Input{IDs: slices.Values(args)}, "args:" + strings.Join(args, " "), closeFn, nil
}

var unsafeBatchChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// defaultRunBatch names the batch of a run after its input, so that the same
// file (or the same arguments) resumes the same batch. Standard input gets
// a generated name, made here rather than by the enqueue client so that
// the "batch" line printed before the run can show it.
func defaultRunBatch(source string) string {
	if source == "" {
		return tasks.NewBatchName(time.Now(), uint16(rand.Uint32()))
	}
	sum := sha256.Sum256([]byte(source))
	base := "args"
	if path, ok := strings.CutPrefix(source, "file:"); ok {
		base = unsafeBatchChars.ReplaceAllString(filepath.Base(path), "-")
		base = strings.Trim(base, "-.")
		if len(base) > 40 {
			base = base[:40]
		}
	}
	if base == "" {
		base = "input"
	}
	return "run-" + base + "-" + hex.EncodeToString(sum[:4])
}

// runRedis connects to the Redis of --redis-url, or starts an embedded one.
func (a *app) runRedis(ctx context.Context, f *redisFlags) (rdb *redis.Client, embedded bool, closeFn func(), err error) {
	if f.given() {
		rdb, err := f.connect(ctx)
		if err != nil {
			return nil, false, nil, err
		}
		return rdb, false, func() { rdb.Close() }, nil
	}
	mini, err := miniredis.Run()
	if err != nil {
		return nil, false, nil, setupError("embedded Redis: %v", err)
	}
	fmt.Fprintln(a.stderr, "using an embedded Redis: it keeps nothing after exit (give --redis-url to keep the ledger and resume an interrupted run)")
	rdb = redis.NewClient(&redis.Options{Addr: mini.Addr()})
	return rdb, true, func() { rdb.Close(); mini.Close() }, nil
}

// runJob is one batch to work to the end, with how to show it.
type runJob struct {
	rdb     *redis.Client
	worker  worker.Config
	batch   string
	opts    []enqueue.Option
	input   runner.Input
	metrics net.Listener
	every   time.Duration
	log     *slog.Logger
	// term draws the progress and carries the log lines written while it
	// shows; nil draws on standard error.
	term *termbar.Bar
	// privateQueue gives the batch a queue of its own (runner.Config's
	// PrivateQueue).
	privateQueue bool
}

// runToEnd works a batch to the end, showing progress on standard error: a
// bar redrawn in place on a terminal, plain lines otherwise.
func (a *app) runToEnd(ctx context.Context, job runJob) (runner.Progress, error) {
	term := job.term
	if term == nil {
		term = termbar.New(a.stderr, isTerminal(a.stderr))
	}
	every := job.every
	if term.Terminal() {
		every = time.Second
	}
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	opts := append(job.opts[:len(job.opts):len(job.opts)], enqueue.OnInvalid(func(inv enqueue.Invalid) {
		fmt.Fprintf(term, "line %d: %v\n", inv.Line, inv.Err)
	}))
	progress, err := runner.Run(ctx, runner.Config{
		Redis:   job.rdb,
		Worker:  job.worker,
		Batch:   job.batch,
		Enqueue: opts,
		// Set by run (no --queue given); demo's embedded Redis holds no
		// one else's work.
		PrivateQueue: job.privateQueue,
		OnStart:      func(w *worker.Server) { serveMetrics(metricsCtx, job.metrics, w, job.log) },
		OnProgress: func(p runner.Progress) {
			now := time.Now()
			line := report.ProgressLine(p.Batch, now)
			if term.Terminal() {
				line = report.ProgressBar(p.Batch, now, terminalWidth())
			}
			if p.HeldBack != "" && p.Batch.Pending() > 0 {
				line += " — " + p.HeldBack // a stall is never silent
			}
			term.Draw(line)
		},
		ProgressEvery: every,
	}, job.input)
	term.Done()
	return progress, err
}

// finishRun prints the tallies as the last line of standard output, writes
// the report, and picks the exit status.
func (a *app) finishRun(ctx context.Context, rdb *redis.Client, p runner.Progress, runErr error, reportPath string, embedded bool) error {
	b := p.Batch
	if errors.Is(runErr, ledger.ErrBatchLost) {
		// The tallies seen last are not a result: say what was lost and stop.
		fmt.Fprintf(a.stdout, "state=lost batch=%s elapsed=%s\n", b.Name, p.Elapsed.Round(100*time.Millisecond))
		return &exitError{code: exitPartial, err: fmt.Errorf("%w. No report was written: nothing proves this "+
			"run's deletions. Running the same command again enqueues the input again (ids deleted before the "+
			"loss will be recorded not_found)", runErr)}
	}
	verification := ""
	if b.Verification.State != ledger.VerificationNone {
		verification = " verification=" + string(b.Verification.State)
	}
	fmt.Fprintf(a.stdout, "total=%d deleted=%d not_found=%d failed=%d pending=%d invalid=%d%s batch=%s elapsed=%s\n",
		b.Total, b.Deleted, b.NotFound, b.Failed, b.Pending(), p.Summary.Invalid, verification, b.Name, p.Elapsed.Round(100*time.Millisecond))
	if reportPath != "" && b.Name != "" {
		format := "csv"
		if strings.HasSuffix(reportPath, ".jsonl") {
			format = "jsonl"
		}
		if err := a.writeReport(context.WithoutCancel(ctx), ledger.New(rdb), b.Name, format, reportPath); err != nil {
			return &exitError{code: exitSetup, err: fmt.Errorf("report: %w", err)}
		}
		fmt.Fprintf(a.stderr, "report: %s\n", reportPath)
	}
	switch {
	case errors.Is(runErr, context.Canceled):
		hint := "run the same command again to resume"
		if embedded {
			hint = "the embedded Redis kept nothing: give --redis-url to be able to resume"
		}
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted with %d ids pending; %s", b.Pending(), hint)}
	case runErr != nil:
		return &exitError{code: exitSetup, err: runErr}
	case b.Failed > 0 || p.Summary.Invalid > 0 || b.Verification.State == ledger.VerificationFailed:
		return &exitError{code: exitPartial}
	}
	return nil
}

// subjectInput is a run's input when it erases a data subject: the
// subject's discovery, listing as the session with the profile's budget,
// each listing told on term.
func subjectInput(req subject.Request, ws workSetup, cfg worker.Config, rdb *redis.Client, term *termbar.Bar) (runner.Input, error) {
	var walker discovery.Walker
	for _, id := range ws.ids {
		if id.profile.Name == req.Profile && id.app != nil {
			walker.Lister = id.client.WithTokens(id.app.Session(req.Session))
		}
	}
	if walker.Lister == nil {
		return runner.Input{}, setupError("--session: profile %s is not an OAuth JWT app, which alone has sessions: "+
			"give the app's profile with --profile", req.Profile)
	}
	if l := cfg.Identities[req.Profile].Limiter; l != nil {
		walker.Budget = l
	}
	return runner.Input{Produce: func(ctx context.Context, c *enqueue.Client, opts []enqueue.Option) (enqueue.Summary, error) {
		eraser := &subject.Eraser{Enqueue: c, Ledger: ledger.New(rdb), Walker: &walker}
		res, err := eraser.Erase(ctx, req, opts...)
		for _, li := range res.Listings {
			fmt.Fprintln(term, listingLine(li))
		}
		if errors.Is(err, subject.ErrIncomplete) {
			// What was found is queued and verification lists again:
			// the run goes on, and says so.
			fmt.Fprintf(term, "warning: %v; the verification lists every bot again\n", err)
			err = nil
		}
		return enqueue.Summary{Batch: res.Batch, Enqueued: res.Enqueued, Duplicate: res.Duplicate}, err
	}}, nil
}

// runProfile is the profile a run acts as: --profile, else "default", or
// the profiles file's only profile. The run's worker acts as it only, and
// as no session, so it needs no session key.
func runProfile(given string, names []string) (string, error) {
	switch {
	case given != "" && slices.Contains(names, given):
		return given, nil
	case given != "":
		return "", setupError("--profile %s: not a profile of --profiles (it has: %s)", given, strings.Join(names, ", "))
	case slices.Contains(names, tasks.DefaultProfile):
		return tasks.DefaultProfile, nil
	case len(names) == 1:
		return names[0], nil
	}
	return "", setupError("--profile: the profiles file has several profiles (%s): name the one the run acts as", strings.Join(names, ", "))
}
