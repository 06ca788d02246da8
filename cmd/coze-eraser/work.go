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

// workFlags are the knobs of working tasks, shared by worker and run.
type workFlags struct {
	log             logFlags
	baseURL         string
	concurrency     int
	requestTimeout  time.Duration
	shutdownTimeout time.Duration
	metricsAddr     string
	retryBase       time.Duration
	retryCap        time.Duration
	authProbe       time.Duration
	rate            float64
	burst           int
	maxInflight     int
}

func (f *workFlags) register(cmd *cobra.Command) {
	f.log.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.baseURL, "coze-base-url", coze.DefaultBaseURL, "Coze API base URL (https://api.coze.com outside China)")
	fl.IntVar(&f.concurrency, "concurrency", worker.DefaultConcurrency, "tasks worked at once")
	fl.DurationVar(&f.requestTimeout, "request-timeout", coze.DefaultTimeout, "timeout of one API call, body included")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "time calls in flight get to finish at shutdown")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:9464", "address for /metrics, /healthz and /readyz; empty turns them off")
	fl.DurationVar(&f.retryBase, "retry-base", worker.DefaultRetryBackoff.Base, "first backoff step of a transient retry")
	fl.DurationVar(&f.retryCap, "retry-cap", worker.DefaultRetryBackoff.Cap, "longest backoff step of a transient retry")
	fl.DurationVar(&f.authProbe, "auth-probe-interval", worker.DefaultAuthProbe.Base, "first interval between probes while the token is rejected (doubles up to 5m)")
	fl.Float64Var(&f.rate, "rate", 0, "requests per second for the whole fleet on this Redis, API and token (0: no shared budget)")
	fl.IntVar(&f.burst, "burst", 1, "requests the fleet may send at once after a quiet spell, with --rate")
	fl.IntVar(&f.maxInflight, "max-inflight", 0, "API calls in flight across the whole fleet (0: no cap)")
}

// api checks the flags that need no Redis and builds the API client, so
// that a bad flag is reported before any wait for Redis.
func (f *workFlags) api(a *app) (*coze.Client, coze.TokenSource, error) {
	if f.concurrency < 1 {
		return nil, nil, setupError("--concurrency %d: must be 1 or more", f.concurrency)
	}
	if err := f.checkLimits(); err != nil {
		return nil, nil, err
	}
	tokens, err := tokenSource(a.env)
	if err != nil {
		return nil, nil, err
	}
	api, err := coze.NewClient(f.baseURL, tokens, coze.WithTimeout(f.requestTimeout), coze.WithUserAgent("coze-eraser/"+version()))
	if err != nil {
		return nil, nil, setupError("--coze-base-url: %v", err)
	}
	return api, tokens, nil
}

// config builds the fleet budget (when asked for) and the worker
// configuration around api. Close the limiter when done.
func (f *workFlags) config(a *app, rdb redis.UniversalClient, log *slog.Logger, api *coze.Client, tokens coze.TokenSource) (worker.Config, *ratelimit.Limiter, error) {
	limiter, err := f.limiter(rdb, api, tokens)
	if err != nil {
		return worker.Config{}, nil, err
	}
	return worker.Config{
		Redis:           rdb,
		API:             api,
		Limiter:         limiter,
		Concurrency:     f.concurrency,
		RetryBackoff:    worker.Backoff{Base: f.retryBase, Cap: f.retryCap},
		AuthProbe:       worker.Backoff{Base: f.authProbe, Cap: max(worker.DefaultAuthProbe.Cap, f.authProbe)},
		ShutdownTimeout: f.shutdownTimeout,
		Logger:          log,
		CallbackSecret:  []byte(a.env.get("COZE_ERASER_CALLBACK_SECRET")),
	}, limiter, nil
}

func (f *workFlags) checkLimits() error {
	switch {
	case f.rate < 0:
		return setupError("--rate %v: must not be negative", f.rate)
	case f.burst < 1:
		return setupError("--burst %d: must be 1 or more", f.burst)
	case f.maxInflight < 0:
		return setupError("--max-inflight %d: must not be negative", f.maxInflight)
	}
	return nil
}

// limiter returns the fleet budget the flags ask for, or nil for none. The
// budget is keyed by the API base URL and a hash of the token.
func (f *workFlags) limiter(rdb redis.UniversalClient, api *coze.Client, tokens coze.TokenSource) (*ratelimit.Limiter, error) {
	if f.rate == 0 && f.maxInflight == 0 {
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

// listenMetrics opens the metrics listener; with fallback, a taken port
// gives way to a free one rather than an error. It returns nil for an
// empty address.
func listenMetrics(addr string, fallback bool) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && fallback {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, setupError("--metrics-addr: %v", err)
	}
	return ln, nil
}

// serveMetrics serves the worker's endpoints on ln until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener, w *worker.Server, log *slog.Logger) {
	if ln == nil {
		return
	}
	go func() {
		if err := worker.ServeHTTP(ctx, ln, w.HTTPHandler()); err != nil {
			log.Error("metrics server stopped", "error", err)
		}
	}()
}
