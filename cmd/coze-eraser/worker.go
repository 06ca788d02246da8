package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/ratelimit"
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
	rate            float64
	burst           int
	maxInflight     int
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
	fl.Float64Var(&f.rate, "rate", 0, "requests per second for the whole fleet on this Redis, API and token (0: no shared budget)")
	fl.IntVar(&f.burst, "burst", 1, "requests the fleet may send at once after a quiet spell, with --rate")
	fl.IntVar(&f.maxInflight, "max-inflight", 0, "API calls in flight across the whole fleet (0: no cap)")
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

	limiter, err := f.limiter(rdb, api, tokens)
	if err != nil {
		return err
	}
	if limiter != nil {
		defer limiter.Close()
	}
	srv, err := worker.New(worker.Config{
		Limiter:         limiter,
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
		"api", api.BaseURL(), "metrics", f.metricsAddr, "redis", redactURL(f.redis.url),
		"rate", f.rate, "burst", f.burst, "max_inflight", f.maxInflight)
	<-ctx.Done()
	log.Info("shutting down", "timeout", f.shutdownTimeout)
	srv.Shutdown()
	log.Info("worker stopped")
	return nil
}

// limiter returns the fleet budget the flags ask for, or nil for none. The
// budget is keyed by the API base URL and a hash of the token.
func (f *workerFlags) limiter(rdb *redis.Client, api *coze.Client, tokens coze.TokenSource) (*ratelimit.Limiter, error) {
	switch {
	case f.rate < 0:
		return nil, setupError("--rate %v: must not be negative", f.rate)
	case f.burst < 1:
		return nil, setupError("--burst %d: must be 1 or more", f.burst)
	case f.maxInflight < 0:
		return nil, setupError("--max-inflight %d: must not be negative", f.maxInflight)
	case f.rate == 0 && f.maxInflight == 0:
		return nil, nil
	}
	token, err := tokens.Token()
	if err != nil {
		return nil, setupError("token: %v", err)
	}
	l, err := ratelimit.New(rdb, ratelimit.Config{
		Rate:        f.rate,
		Burst:       f.burst,
		MaxInflight: f.maxInflight,
		Lease:       2*f.requestTimeout + 10*time.Second,
		Key:         ratelimit.BudgetKey(ledger.DefaultPrefix, api.BaseURL(), token),
	})
	if err != nil {
		return nil, setupError("%v", err)
	}
	return l, nil
}
