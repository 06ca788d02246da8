package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/worker"
)

type workerFlags struct {
	redis              redisFlags
	work               workFlags
	queues             string
	ledgerTTL          time.Duration
	requirePersistence bool
	sweeps             sweepsFlags
	api                apiFlags
}

func (a *app) workerCommand() *cobra.Command {
	var f workerFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Work the deletion queues until SIGTERM or SIGINT",
		Long: `Work the deletion queues until SIGTERM or SIGINT.

Each task is one DELETE call to the Coze API. Deleted and not-found ids are
done; rate-limited answers pause all of this worker's calls (or, with
--rate, cut the whole fleet's shared rate) and retry without using up a
retry; transient errors retry with exponential backoff and full jitter;
permanent errors and used-up retries are recorded as failed. When the API
rejects the token, calls pause (one probe at a time), /readyz fails, and work
resumes by itself once a probe succeeds, e.g. after the token file was
replaced.

On SIGTERM the worker stops taking tasks, lets calls in flight finish within
--shutdown-timeout and hands the rest back to the queue.

Metrics are on --metrics-addr at /metrics, with /healthz and /readyz.

The identities the worker acts as come from --profiles FILE (a token file or
an OAuth JWT app per profile, each with its own rate budget, in-flight cap and
auth pause; see docs/profiles.md). Without a file, the one profile "default"
reads its token from COZE_API_TOKEN, or from the file COZE_API_TOKEN_FILE
names. Token and key files are read again when they change, so a rotated
secret needs no restart. With an OAuth app profile, COZE_ERASER_SESSION_KEY_FILE
names the key of the hash that replaces session names in the ledger once their
batch is complete (the same file on every worker).

Workers also deliver the callbacks of completed batches (queue "callbacks"),
signed with HMAC-SHA256 when COZE_ERASER_CALLBACK_SECRET is set.

With --sweeps FILE the worker also runs the file's retention sweeps on their
cron schedules; each tick runs once across every worker given the file, and a
tick missed while none was up runs once when one starts (docs/sweeps.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runWorker(cmd.Context(), &f) },
	}
	f.redis.register(cmd, 30*time.Second)
	f.work.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.queues, "queues", "default", "queues to work, with weights: gdpr=6,bulk=1")
	fl.DurationVar(&f.ledgerTTL, "ledger-ttl", ledger.DefaultTTL, "retention of batches the worker creates for tasks of other producers (1h to 87600h)")
	fl.BoolVar(&f.requirePersistence, "require-persistence", false, "refuse to start when Redis has neither AOF nor RDB snapshots (or the check is refused)")
	f.sweeps.register(cmd)
	f.api.register(cmd, "") // off unless given: a worker serves the API only when asked
	return cmd
}

func (a *app) runWorker(ctx context.Context, f *workerFlags) error {
	relaxGC()
	log, flushLog, err := f.work.log.logger(a.stderr)
	if err != nil {
		return err
	}
	defer flushLog()
	slog.SetDefault(log)
	queues, err := worker.ParseQueues(f.queues)
	if err != nil {
		return setupError("--queues: %v", err)
	}
	if err := enqueue.CheckRetention(f.ledgerTTL); err != nil {
		return setupError("--ledger-ttl %v: %v", f.ledgerTTL, err)
	}
	ws, err := f.work.setup(a, log) // every flag and profile is checked before waiting for Redis
	if err != nil {
		return err
	}
	sweeps, err := f.sweeps.load(ws)
	if err != nil {
		return err
	}
	api, err := f.api.load()
	if err != nil {
		return err
	}
	if api != nil {
		api.sessions = newAPISessions(ws.ids, f.work, ws.sessionKey) // subject requests list as the worker's profiles
	}
	rdb, err := f.redis.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := checkPersistence(ctx, rdb, log, f.requirePersistence); err != nil {
		return err
	}
	cfg, closeLimiters, err := f.work.config(a, rdb, log, ws)
	if err != nil {
		return err
	}
	defer closeLimiters()
	cfg.Queues = queues
	if cfg.Ledger, _, err = f.redis.writer(rdb, ledger.WithTTL(f.ledgerTTL)); err != nil {
		return err
	}
	sweeps.prepare(&cfg, rdb, log)
	srv, err := worker.New(cfg)
	if err != nil {
		return setupError("%v", err)
	}
	ln, err := listenMetrics(f.work.metricsAddr, false)
	if err != nil {
		return err
	}
	serveMetrics(ctx, ln, srv, log)
	if err := srv.Start(); err != nil {
		return setupError("%v", err)
	}
	log.Info("worker started", "queues", f.queues, "concurrency", f.work.concurrency,
		"profiles", describeIdentities(ws.ids), "metrics", f.work.metricsAddr, "redis", f.redis.shown(),
		"rate", f.work.rate.String(), "burst", f.work.burst, "max_inflight", f.work.maxInflight)
	stopSweeps := sweeps.start(ctx)
	if api != nil {
		api.ledger = cfg.Ledger
		go func() {
			if err := api.serve(ctx, a, rdb); err != nil {
				log.Error("api server stopped", "error", err)
			}
		}()
	}
	<-ctx.Done()
	stopSweeps()
	log.Info("shutting down", "timeout", f.work.shutdownTimeout)
	srv.Shutdown()
	log.Info("worker stopped")
	return nil
}

// workerGCPercent is the worker's GOGC unless the environment sets one: a
// worker's heap is small (tens of MB at concurrency 200) and its garbage is
// per task, so collecting half as often costs little memory and gives the
// deletions the CPU.
const workerGCPercent = 200

// relaxGC sets workerGCPercent, unless GOGC is set.
func relaxGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(workerGCPercent)
	}
}
