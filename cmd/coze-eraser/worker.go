package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/worker"
)

type workerFlags struct {
	redis           redisFlags
	log             logFlags
	baseURL         string
	queues          string
	concurrency     int
	requestTimeout  time.Duration
	shutdownTimeout time.Duration
	metricsAddr     string
	retryBase       time.Duration
	retryCap        time.Duration
	authProbe       time.Duration
	ledgerTTL       time.Duration
}

func (a *app) workerCommand() *cobra.Command {
	var f workerFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Work the deletion queues until SIGTERM or SIGINT",
		Long: `Work the deletion queues until SIGTERM or SIGINT.

Each task is one DELETE call to the Coze API. Deleted and not-found ids are
done; rate-limited answers pause all of this worker's calls and retry without
using up a retry; transient errors retry with exponential backoff and full
jitter; permanent errors and used-up retries are recorded as failed. When the
API rejects the token, calls pause (one probe at a time), /readyz fails, and
work resumes by itself once a probe succeeds, e.g. after the token file was
replaced.

On SIGTERM the worker stops taking tasks, lets calls in flight finish within
--shutdown-timeout and hands the rest back to the queue.

Metrics are on --metrics-addr at /metrics, with /healthz and /readyz.

The token is read from COZE_API_TOKEN, or from the file COZE_API_TOKEN_FILE
names (read again when it changes, so a rotated secret needs no restart).

Workers also deliver the callbacks of completed batches (queue "callbacks"),
signed with HMAC-SHA256 when COZE_ERASER_CALLBACK_SECRET is set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runWorker(cmd.Context(), &f) },
	}
	f.redis.register(cmd, 30*time.Second)
	f.log.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.baseURL, "coze-base-url", coze.DefaultBaseURL, "Coze API base URL (https://api.coze.com outside China)")
	fl.StringVar(&f.queues, "queues", "default", "queues to work, with weights: gdpr=6,bulk=1")
	fl.IntVar(&f.concurrency, "concurrency", worker.DefaultConcurrency, "tasks worked at once")
	fl.DurationVar(&f.requestTimeout, "request-timeout", coze.DefaultTimeout, "timeout of one API call, body included")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "time calls in flight get to finish at shutdown")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:9464", "address for /metrics, /healthz and /readyz; empty turns them off")
	fl.DurationVar(&f.retryBase, "retry-base", worker.DefaultRetryBackoff.Base, "first backoff step of a transient retry")
	fl.DurationVar(&f.retryCap, "retry-cap", worker.DefaultRetryBackoff.Cap, "longest backoff step of a transient retry")
	fl.DurationVar(&f.ledgerTTL, "ledger-ttl", ledger.DefaultTTL, "retention of batches the worker creates for tasks of other producers")
	fl.DurationVar(&f.authProbe, "auth-probe-interval", worker.DefaultAuthProbe.Base, "first interval between probes while the token is rejected (doubles up to 5m)")
	return cmd
}

func (a *app) runWorker(ctx context.Context, f *workerFlags) error {
	log, err := f.log.logger(a.stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	queues, err := worker.ParseQueues(f.queues)
	if err != nil {
		return setupError("--queues: %v", err)
	}
	if f.concurrency < 1 {
		return setupError("--concurrency %d: must be 1 or more", f.concurrency)
	}
	tokens, err := tokenSource(a.env)
	if err != nil {
		return err
	}
	api, err := coze.NewClient(f.baseURL, tokens, coze.WithTimeout(f.requestTimeout), coze.WithUserAgent("coze-eraser/"+version()))
	if err != nil {
		return setupError("--coze-base-url: %v", err)
	}
	rdb, err := f.redis.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()

	srv, err := worker.New(worker.Config{
		Redis:           rdb,
		API:             api,
		Queues:          queues,
		Concurrency:     f.concurrency,
		RetryBackoff:    worker.Backoff{Base: f.retryBase, Cap: f.retryCap},
		AuthProbe:       worker.Backoff{Base: f.authProbe, Cap: max(worker.DefaultAuthProbe.Cap, f.authProbe)},
		ShutdownTimeout: f.shutdownTimeout,
		Logger:          log,
		Ledger:          ledger.New(rdb, ledger.WithTTL(f.ledgerTTL)),
		CallbackSecret:  []byte(a.env.get("COZE_ERASER_CALLBACK_SECRET")),
	})
	if err != nil {
		return setupError("%v", err)
	}
	var metricsLn net.Listener
	if f.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", f.metricsAddr); err != nil {
			return setupError("--metrics-addr: %v", err)
		}
		go func() {
			if err := worker.ServeHTTP(ctx, metricsLn, srv.HTTPHandler()); err != nil {
				log.Error("metrics server stopped", "error", err)
			}
		}()
	}
	if err := srv.Start(); err != nil {
		return setupError("%v", err)
	}
	log.Info("worker started", "queues", f.queues, "concurrency", f.concurrency,
		"api", api.BaseURL(), "metrics", f.metricsAddr, "redis", redactURL(f.redis.url))
	<-ctx.Done()
	log.Info("shutting down", "timeout", f.shutdownTimeout)
	srv.Shutdown()
	log.Info("worker stopped")
	return nil
}
