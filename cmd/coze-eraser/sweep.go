package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/sweep"
	"github.com/coze-eraser/coze-eraser/worker"
)

type sweepFlags struct {
	redis      redisFlags
	log        logFlags
	profiles   profileFlags
	batch      batchFlags
	profile    string
	bots       []string
	connectors []string
	olderThan  time.Duration
	by         string
	meta       []string
	dryRun     bool
}

func (a *app) sweepCommand() *cobra.Command {
	var f sweepFlags
	cmd := &cobra.Command{
		Use:   "sweep --bot-id B --older-than DURATION",
		Short: "Delete a bot's conversations older than a cutoff (a retention sweep)",
		Long: `Delete the conversations of --bot-id older than --older-than, as a batch.

The sweep lists each bot's conversations on each --connector-id through the
Coze list endpoint, as --profile (the profile itself, not an end user's
session), at the profile's rate budget. --by created (the default) compares
created_at and lists in ascending creation order, stopping at the first
conversation that is not old enough; --by updated compares updated_at and
reads every page. The cutoff is now minus --older-than, to the second: a
conversation made exactly at the cutoff stays. --meta KEY=VALUE (repeatable)
keeps only the conversations whose meta_data hold every pair exactly.

Matches join the batch as each page is read, without a task: a deletion
between two pages would shift the pages and hide conversations from the
listing. Once every listing is over, the batch is released and workers
delete. With --dry-run nothing is queued and no batch is created: each match
is printed as
  ID<TAB>BOT_ID<TAB>CONNECTOR_ID<TAB>CREATED_AT<TAB>UPDATED_AT
The last line on standard output is
  listed=N matched=N enqueued=N duplicate=N batch=NAME
or, with --dry-run, listed=N matched=N dry_run=true. When nothing matches,
no batch is created.

A listing that fails (a rejected token, retries used up) does not stop the
others; what was found is released all the same, the failure is named on
standard error with its bot, connector and page, and the exit status is 2.
Running the same sweep again is safe: ids already queued count as
duplicates. Interrupted (exit 130), the sweep queues nothing: what it found
stays held in the batch, and a worker's janitor queues it once the batch has
made no progress for 15 minutes (running the sweep again with the same
--batch queues it at once).

To run sweeps on a schedule, give workers a sweeps file: worker --sweeps
(see docs/sweeps.md).`,
		Example: `  coze-eraser sweep --bot-id 7379996104700000001 --older-than 2160h --dry-run
  coze-eraser sweep --profiles profiles.yaml --profile support-bot --bot-id 7379996104700000001 \
      --older-than 2160h --by updated --connector-id 1024,999 --meta tier=free --queue retention`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runSweep(cmd.Context(), &f) },
	}
	f.redis.register(cmd, 0)
	f.log.register(cmd)
	f.profiles.register(cmd)
	f.batch.register(cmd, "batch the matches join (default: generated and printed)")
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", "", "the profile of --profiles that lists and deletes (default: \"default\", or the file's only profile)")
	fl.StringSliceVar(&f.bots, "bot-id", nil, "a bot whose conversations are swept; repeat or separate with commas")
	fl.StringSliceVar(&f.connectors, "connector-id", []string{coze.ConnectorAPI}, "channels swept on each bot: 1024 (API), 999 (Chat SDK), or both: 1024,999")
	fl.DurationVar(&f.olderThan, "older-than", 0, "the age a conversation must exceed, such as 2160h (90 days)")
	fl.StringVar(&f.by, "by", string(sweep.ByCreated), "the time compared with the cutoff: created or updated")
	fl.StringArrayVar(&f.meta, "meta", nil, "keep only conversations whose meta_data has KEY with exactly VALUE (KEY=VALUE; repeatable)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print what would be deleted; queue nothing, create no batch")
	return cmd
}

// specFlags are the flags that set each field of a sweep.Spec.
var specFlags = map[string]string{
	"profile": "--profile", "bot_ids": "--bot-id", "connector_ids": "--connector-id", "older_than": "--older-than",
	"by": "--by", "meta": "--meta", "queue": "--queue", "note": "--note", "due_in": "--due-in",
}

// spec is the sweep the flags describe, and the batch's options, checked
// before any token or Redis is needed.
func (f *sweepFlags) spec() (sweep.Spec, []enqueue.Option, error) {
	if f.olderThan == 0 {
		return sweep.Spec{}, nil, setupError("--older-than is required: the age a conversation must exceed, such as 2160h (90 days)")
	}
	meta, err := parseMeta(f.meta)
	if err != nil {
		return sweep.Spec{}, nil, err
	}
	spec := sweep.Spec{Profile: f.profile, BotIDs: f.bots, ConnectorIDs: f.connectors, OlderThan: f.olderThan,
		By: sweep.By(f.by), Meta: meta, Queue: f.batch.queue, Note: f.batch.note}
	var fe *sweep.FieldError
	switch err := spec.Validate(); {
	case errors.As(err, &fe) && specFlags[fe.Field] != "":
		return sweep.Spec{}, nil, setupError("%s %v", specFlags[fe.Field], fe.Err)
	case err != nil:
		return sweep.Spec{}, nil, setupError("%v", err)
	}
	opts, err := f.batch.options(nil, "")
	return spec, opts, err
}

// parseMeta reads --meta KEY=VALUE pairs.
func parseMeta(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		switch prev, dup := out[k]; {
		case !ok || k == "":
			return nil, setupError("--meta %.80q: want KEY=VALUE, such as tier=free", p)
		case dup && prev != v:
			return nil, setupError("--meta %s: given twice, as %.40q and %.40q: a conversation has one value", k, prev, v)
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) runSweep(ctx context.Context, f *sweepFlags) error {
	spec, opts, err := f.spec()
	if err != nil {
		return err
	}
	log, flushLog, err := f.log.logger(a.stderr)
	if err != nil {
		return err
	}
	defer flushLog()
	wf := workFlags{profiles: f.profiles, requestTimeout: coze.DefaultTimeout, rate: rateValue{auto: true}, burst: 1,
		actAs: func(names []string) (string, error) { return runProfile(f.profile, names) }}
	ids, err := wf.identities(a, log.Warn)
	if err != nil {
		return err
	}
	id := ids[0]
	spec.Profile = id.profile.Name
	rdb, err := f.redis.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	limiter, err := wf.limiterFor(rdb, id)
	if err != nil {
		return err
	}
	_, enq, err := f.redis.writer(rdb)
	if err != nil {
		return err
	}
	sweeper := &sweep.Sweeper{Lister: id.client, Enqueue: enq}
	if limiter != nil {
		defer limiter.Close()
		sweeper.Budget = limiter
	}
	o := sweep.Options{Batch: f.batch.batch, DryRun: f.dryRun, Enqueue: opts}
	if o.Batch == "" {
		o.Batch = fmt.Sprintf("sweep-%s-%s", time.Now().UTC().Format("20060102T150405Z"), strings.ToLower(rand.Text()[:4]))
	}
	a.sweepHeader(spec, o, f.by)
	if f.dryRun {
		fmt.Fprintln(a.stdout, "id\tbot_id\tconnector_id\tcreated_at\tupdated_at")
		o.OnMatch = func(m sweep.Match) {
			fmt.Fprintf(a.stdout, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.BotID, m.ConnectorID, m.CreatedAt.Format(time.RFC3339), m.UpdatedAt.Format(time.RFC3339))
		}
	}
	res, err := sweeper.Run(ctx, spec, o)
	if res.Undated > 0 {
		fmt.Fprintf(a.stderr, "%d conversations have no %s_at time: kept (a conversation of unknown age is never swept)\n", res.Undated, spec.By)
	}
	if err == nil && res.Matched == 0 && !o.DryRun {
		fmt.Fprintln(a.stderr, "no conversation matched: no batch was created")
	}
	fmt.Fprintln(a.stdout, res)
	return sweepExit(ctx, res, o, err)
}

// sweepHeader says on standard error what is swept and where it goes.
func (a *app) sweepHeader(spec sweep.Spec, o sweep.Options, by string) {
	if !o.DryRun {
		fmt.Fprintf(a.stderr, "batch %s (coze-eraser status %s)\n", o.Batch, o.Batch)
	}
	fmt.Fprintf(a.stderr, "sweeping conversations %s more than %v ago, as profile %s, on %d bot(s) × %d connector(s)\n",
		by, spec.OlderThan, spec.Profile, len(spec.BotIDs), len(spec.ConnectorIDs))
}

// sweepExit is the command's end: interrupted (130), or a listing that
// failed (2), said on standard error.
func sweepExit(ctx context.Context, res sweep.Result, o sweep.Options, err error) error {
	switch {
	case ctx.Err() != nil:
		hint := "nothing was found"
		if res.Matched > 0 && !o.DryRun {
			hint = fmt.Sprintf("the %d ids found are held in batch %s: a worker's janitor queues them once the batch has made "+
				"no progress for 15 minutes, or run the same sweep with --batch %s to queue them now", res.Matched, o.Batch, o.Batch)
		}
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted; %s", hint)}
	case err != nil && res.Matched > 0 && !o.DryRun:
		return setupError("%v (what was found is queued; running the sweep again is safe)", err)
	case err != nil:
		return setupError("%v", err)
	}
	return nil
}

// sweepsFlags is worker's --sweeps: the scheduled sweeps file.
type sweepsFlags struct {
	file string
}

func (f *sweepsFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "sweeps", "", "YAML file of retention sweeps to run on their cron schedules, "+
		"each tick once across every worker given the same file and Redis (see docs/sweeps.md)")
}

// scheduledSweeps are a worker's sweeps: nil without --sweeps, and then
// every method does nothing.
type scheduledSweeps struct {
	list  []sweep.Scheduled
	ids   []workIdentity
	sched *sweep.Scheduler
}

// load reads the sweeps file and checks each sweep's profile against the
// worker's, before the worker waits for Redis: a bad file is one line per
// problem, naming the sweep and key, and exit 2.
func (f *sweepsFlags) load(ws workSetup) (*scheduledSweeps, error) {
	if f.file == "" {
		return nil, nil
	}
	list, err := sweep.Load(f.file)
	if err == nil {
		names := make([]string, 0, len(ws.ids))
		for _, id := range ws.ids {
			names = append(names, id.profile.Name)
		}
		err = sweep.CheckProfiles(list, names)
	}
	if err != nil {
		return nil, setupError("--sweeps: %v", strings.ReplaceAll(err.Error(), "\n", "\n--sweeps: "))
	}
	return &scheduledSweeps{list: list, ids: ws.ids}, nil
}

// prepare builds the scheduler from the worker's configuration: each
// profile's client and fleet budget, and the worker's registry for the
// metrics (made here, as the worker would, so that they reach /metrics).
func (s *scheduledSweeps) prepare(cfg *worker.Config, rdb redis.UniversalClient, log *slog.Logger) {
	if s == nil {
		return
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// The worker's ledger: with --redis-replicas, its writes wait for them.
	enq := enqueue.NewClient(rdb, enqueue.WithLedger(cfg.Ledger))
	sweepers := make(map[string]*sweep.Sweeper, len(s.ids))
	for _, id := range s.ids {
		sw := &sweep.Sweeper{Lister: id.client, Enqueue: enq}
		if l := cfg.Identities[id.profile.Name].Limiter; l != nil {
			sw.Budget = l
		}
		sweepers[id.profile.Name] = sw
	}
	s.sched = &sweep.Scheduler{Redis: rdb, Prefix: ledger.DefaultPrefix, Sweeps: s.list, Sweepers: sweepers,
		Metrics: sweep.NewMetrics(cfg.Registry), Logger: log.With("component", "sweeps")}
}

// start runs the scheduler until ctx ends; stop waits for it.
func (s *scheduledSweeps) start(ctx context.Context) (stop func()) {
	if s == nil {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.sched.Run(ctx) }) // checked in prepare: every sweep has its profile's sweeper
	names := make([]string, 0, len(s.list))
	for _, sw := range s.list {
		names = append(names, sw.Name)
	}
	s.sched.Logger.Info("scheduled sweeps started", "sweeps", strings.Join(names, " "))
	return wg.Wait
}
