package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ratelimit"
	"github.com/coze-eraser/coze-eraser/worker"
)

// workFlags are the knobs of working tasks, shared by worker and run.
type workFlags struct {
	log             logFlags
	profiles        profileFlags
	concurrency     int
	requestTimeout  time.Duration
	shutdownTimeout time.Duration
	metricsAddr     string
	retryBase       time.Duration
	retryCap        time.Duration
	authProbe       time.Duration
	rate            rateValue
	burst           int
	maxInflight     int
	// actAs, when set, picks the one profile of the file to act as, from
	// its names, and no session (run); else every profile and its
	// sessions (worker).
	actAs func(names []string) (string, error)
	// runSessions lets a run (actAs set) act as its profile's sessions
	// too: run --session erases a data subject.
	runSessions bool
	// ephemeralSessionKey makes a random session key when
	// COZE_ERASER_SESSION_KEY_FILE is not set: a run on the embedded
	// Redis keeps nothing, so no other process compares its hashes.
	ephemeralSessionKey bool
	// flags tells a value the user gave (flag or environment) from a
	// default: only a default --metrics-addr may move.
	flags *pflag.FlagSet
}

func (f *workFlags) register(cmd *cobra.Command) {
	f.log.register(cmd)
	f.profiles.register(cmd)
	fl := cmd.Flags()
	f.flags = fl
	fl.IntVar(&f.concurrency, "concurrency", worker.DefaultConcurrency, "tasks worked at once (1 to 10000)")
	fl.DurationVar(&f.requestTimeout, "request-timeout", coze.DefaultTimeout, "timeout of one API call, body included (1s to 10m)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "time calls in flight get to finish at shutdown")
	fl.StringVar(&f.metricsAddr, "metrics-addr", defaultMetricsAddr, "address for /metrics, /healthz and /readyz; empty turns them off")
	fl.DurationVar(&f.retryBase, "retry-base", worker.DefaultRetryBackoff.Base, "first backoff step of a transient retry")
	fl.DurationVar(&f.retryCap, "retry-cap", worker.DefaultRetryBackoff.Cap, "longest backoff step of a transient retry")
	fl.DurationVar(&f.authProbe, "auth-probe-interval", worker.DefaultAuthProbe.Base, "first interval between probes while the token is rejected (doubles up to 5m)")
	f.rate = rateValue{auto: true}
	fl.Var(&f.rate, "rate", "the whole fleet's requests per second on this Redis, API and token (per profile): auto discovers the API's limit "+
		"and remembers it; N (0.01 to 100000) discovers it up to N; 0 sends without any budget (benchmarks); a profile's rate wins")
	fl.IntVar(&f.burst, "burst", 1, "requests the fleet may send at once after a quiet spell, with --rate (1 to 10000; per profile; a profile's burst wins)")
	fl.IntVar(&f.maxInflight, "max-inflight", 0, "API calls in flight across the whole fleet, up to 100000 (0: no cap; per profile; a profile's max_inflight wins)")
}

// defaultMetricsAddr is --metrics-addr's default: loopback only, see
// docs/metrics.md, "Exposing metrics safely".
const defaultMetricsAddr = "127.0.0.1:9464"

// Bounds of the work flags; the fleet budget's are ratelimit's.
const (
	// maxConcurrency bounds --concurrency: ten thousand calls in flight
	// from one process is past what one token is allowed.
	maxConcurrency = 10_000
	// minRequestTimeout and maxRequestTimeout bound --request-timeout. A
	// DELETE answers well within a second; a shorter timeout would fail
	// sound calls and use up their retries. A longer one than 10 minutes
	// only lets a hung call hold its slot (and, with --max-inflight, its
	// fleet-wide lease of twice the timeout) for nothing.
	minRequestTimeout = time.Second
	maxRequestTimeout = 10 * time.Minute
	// maxShutdownTimeout bounds --shutdown-timeout: orchestrators kill a
	// process long before an hour. 0 is refused, as the worker would read
	// it as its default.
	maxShutdownTimeout = time.Hour
	// maxRetryCap bounds --retry-cap, and so --retry-base: a day between
	// two tries of an id is already longer than a batch should wait.
	maxRetryCap = 24 * time.Hour
	// maxAuthProbe bounds --auth-probe-interval: a fixed token should not
	// wait more than an hour for its first probe.
	maxAuthProbe = time.Hour
)

// workSetup is what a worker needs before it has Redis: its identities and
// the session key.
type workSetup struct {
	ids        []workIdentity
	sessionKey []byte
}

// setup checks the flags that need no Redis and builds the identities, so
// that a bad flag or profile is reported before any wait for Redis. A
// warning about a secret file goes to log, or, when its level hides
// warnings (as run's does, below its progress bar), to standard error in
// the log's format.
func (f *workFlags) setup(a *app, log *slog.Logger) (workSetup, error) {
	if err := f.check(); err != nil {
		return workSetup{}, err
	}
	ids, err := f.identities(a, f.warnFunc(a, log))
	if err != nil {
		return workSetup{}, err
	}
	key, err := f.sessionKey(a, ids)
	if err != nil {
		return workSetup{}, err
	}
	return workSetup{ids: ids, sessionKey: key}, nil
}

// config builds the fleet budgets (when asked for) and the worker
// configuration. Close the limiters when done.
func (f *workFlags) config(a *app, rdb redis.UniversalClient, log *slog.Logger, ws workSetup) (worker.Config, func(), error) {
	ids, limiters, err := f.workerIdentities(rdb, ws.ids)
	if err != nil {
		return worker.Config{}, nil, err
	}
	return worker.Config{
		Redis:           rdb,
		Identities:      ids,
		SessionKey:      ws.sessionKey,
		Concurrency:     f.concurrency,
		RetryBackoff:    worker.Backoff{Base: f.retryBase, Cap: f.retryCap},
		AuthProbe:       worker.Backoff{Base: f.authProbe, Cap: max(worker.DefaultAuthProbe.Cap, f.authProbe)},
		ShutdownTimeout: f.shutdownTimeout,
		Logger:          log,
		CallbackSecret:  []byte(a.env.get("COZE_ERASER_CALLBACK_SECRET")),
	}, func() { closeLimiters(limiters) }, nil
}

// check refuses values that would mean something else than they say (a
// zero request timeout meant none, a zero shutdown timeout the default),
// and values past any sensible range, with the range in the message.
func (f *workFlags) check() error {
	switch {
	case f.concurrency < 1 || f.concurrency > maxConcurrency:
		return setupError("--concurrency %d: must be 1 to %d", f.concurrency, maxConcurrency)
	case f.requestTimeout < minRequestTimeout || f.requestTimeout > maxRequestTimeout:
		return setupError("--request-timeout %v: must be %v to %v", f.requestTimeout, minRequestTimeout, maxRequestTimeout)
	case f.shutdownTimeout <= 0 || f.shutdownTimeout > maxShutdownTimeout:
		return setupError("--shutdown-timeout %v: must be more than 0s and at most %v", f.shutdownTimeout, maxShutdownTimeout)
	case f.retryCap > maxRetryCap:
		return setupError("--retry-cap %v: must be at most %v", f.retryCap, maxRetryCap)
	case f.retryBase <= 0 || f.retryBase > f.retryCap:
		return setupError("--retry-base %v: must be more than 0s and at most --retry-cap (%v)", f.retryBase, f.retryCap)
	case f.authProbe <= 0 || f.authProbe > maxAuthProbe:
		return setupError("--auth-probe-interval %v: must be more than 0s and at most %v", f.authProbe, maxAuthProbe)
	}
	return f.checkLimits()
}

// checkLimits checks the fleet budget's flags against ratelimit's bounds:
// NaN and 1e-300 were taken, and meant no limit at all.
func (f *workFlags) checkLimits() error {
	switch {
	case !f.rate.auto && f.rate.v != 0 && !(f.rate.v >= ratelimit.LowestRate && f.rate.v <= ratelimit.HighestRate):
		return setupError("--rate %v: must be auto, 0 (no shared budget) or %v to %v requests a second",
			f.rate.v, ratelimit.LowestRate, ratelimit.HighestRate)
	case f.burst < 1 || f.burst > ratelimit.MaxBurst:
		return setupError("--burst %d: must be 1 to %d", f.burst, ratelimit.MaxBurst)
	case f.maxInflight < 0 || f.maxInflight > ratelimit.MaxInflightCap:
		return setupError("--max-inflight %d: must be 0 (no cap) or 1 to %d", f.maxInflight, ratelimit.MaxInflightCap)
	}
	return nil
}

// listenMetrics opens the listener of --metrics-addr. With mayMove (run,
// not worker), the default address, when taken by a worker or another run
// on the same host, gives way to a free port. An address the user gave, by
// flag or environment, never moves: that is where Prometheus looks.
func (f *workFlags) listenMetrics(mayMove bool) (net.Listener, error) {
	return listenMetrics(f.metricsAddr, mayMove && !f.flags.Changed("metrics-addr"))
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
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, setupError("--metrics-addr %s: address already in use: stop what listens there, or give another address (empty turns metrics off)", addr)
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

// rateValue is --rate: "auto" (the default), a ceiling in requests a
// second, or 0 for no budget at all.
type rateValue struct {
	auto bool
	v    float64
}

// String is the flag's value as --help and the start log line show it.
func (r *rateValue) String() string {
	if r.auto {
		return "auto"
	}
	return strconv.FormatFloat(r.v, 'g', -1, 64)
}

// Set reads "auto" or a number; the number's range is checked with the
// other flags (checkLimits), so that its error names the range.
func (r *rateValue) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*r = rateValue{auto: true}
		return nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("not auto or a number of requests a second")
	}
	*r = rateValue{v: v}
	return nil
}

// Type names the value in --help.
func (r *rateValue) Type() string { return "auto|N" }

// off reports whether no budget was asked for: --rate 0.
func (r *rateValue) off() bool { return !r.auto && r.v == 0 }
