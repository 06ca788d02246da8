package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/maintenance"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/ratelimit"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// Defaults of a [Config].
const (
	DefaultConcurrency     = 20
	DefaultShutdownTimeout = 20 * time.Second
)

// Default backoffs.
var (
	// DefaultRetryBackoff spaces the retries of transient failures.
	DefaultRetryBackoff = Backoff{Base: 2 * time.Second, Cap: 10 * time.Minute}
	// DefaultRateLimitBackoff is the pause after rate-limited answers that
	// carry no Retry-After.
	DefaultRateLimitBackoff = Backoff{Base: time.Second, Cap: time.Minute}
	// DefaultAuthProbe spaces the probe calls while the token is rejected.
	DefaultAuthProbe = Backoff{Base: 15 * time.Second, Cap: 5 * time.Minute}
	// DefaultCallbackBackoff spaces the retries of a callback delivery.
	DefaultCallbackBackoff = Backoff{Base: 10 * time.Second, Cap: time.Hour}
)

// DefaultJanitorInterval is how often a worker repairs what a crash or a
// race can leave behind (see internal/maintenance).
const DefaultJanitorInterval = maintenance.DefaultJanitorInterval

// Config configures a [Server]. Redis is required, and API or Identities.
type Config struct {
	Redis redis.UniversalClient
	// API is the profile "default": the identity of tasks that name no
	// profile. With Limiter, its fleet budget.
	API API
	// Identities are the other profiles the worker acts as, by name (see
	// package profiles): tasks that name a profile are called as it,
	// and each profile has its own budget, in-flight cap and auth pause.
	// A task naming a profile missing here waits (an auth pause), never
	// archived and never called as another identity.
	Identities map[string]Identity
	// Ledger records outcomes; default ledger.New(Redis).
	Ledger *ledger.Ledger
	// Queues and their weights; default {"default": 1}.
	Queues      map[string]int
	Concurrency int
	// RetryBackoff spaces transient retries (full jitter).
	RetryBackoff Backoff
	// RateLimitBackoff is the pause after a rate-limited answer without
	// Retry-After.
	RateLimitBackoff Backoff
	// AuthProbe spaces probe calls while the token is rejected.
	AuthProbe Backoff
	// ShutdownTimeout is how long in-flight calls may take to finish at
	// shutdown before their tasks are handed back to the queue.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Registry receives the metrics; default a new registry with the Go and
	// process collectors.
	Registry *prometheus.Registry
	// PollInterval is how often an idle worker looks for new tasks (asynq's
	// TaskCheckInterval, default 1 s).
	PollInterval time.Duration
	// ForwardInterval is how often scheduled and retry tasks due now are moved
	// to their queue (asynq's DelayedTaskCheckInterval, default 5 s).
	ForwardInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// CallbackSecret signs batch completion callbacks (HMAC-SHA256) when set.
	CallbackSecret []byte
	// CallbackClient sends the callbacks; default a client with
	// callback.DefaultTimeout (10 s). Redirects are never followed, whatever
	// its CheckRedirect.
	CallbackClient *http.Client
	// CallbackBackoff spaces the retries of a callback delivery (default
	// 10 s doubling to 1 h: a receiver down for days still gets it).
	CallbackBackoff Backoff
	// JanitorInterval is how often the worker queues callbacks and tasks a
	// crash may have left unqueued (default 30 s).
	JanitorInterval time.Duration
	// StallAfter is how long an open batch may go without progress before
	// the janitor looks for pending ids that have no task (default 15 min).
	StallAfter time.Duration
	// PausedRetry is how long a paused batch's task waits in its queue
	// before it asks again (default 30 s): how soon a resume takes effect.
	PausedRetry time.Duration
	// IntegrityInterval is how often the worker checks that Redis still
	// holds the ledger's data (default [DefaultIntegrityInterval]).
	IntegrityInterval time.Duration
	// Limiter, when set, is the default profile's fleet rate budget and
	// in-flight cap; without it each worker only pauses itself after a
	// 429. Other profiles have theirs in their Identity.
	Limiter *ratelimit.Limiter
	// SessionKey keys the hash that replaces a session name in the ledger
	// once its batch is complete (ledger.SessionHash). It is required when
	// an identity acts as sessions, and must be the same on every worker
	// for the hashes to be comparable.
	SessionKey []byte
	// RedisGaugesInterval is how often the Redis-backed gauges (queue
	// tasks, batches) are read in the background; a scrape serves the
	// last read (default [DefaultRedisGaugesInterval]).
	RedisGaugesInterval time.Duration
	// RedisCheckInterval is how often the worker pings Redis to log an
	// outage and the recovery (default [DefaultRedisCheckInterval]).
	RedisCheckInterval time.Duration
}

func (c *Config) setDefaults() error {
	if c.Redis == nil {
		return errors.New("worker: Config.Redis is required")
	}
	if _, cluster := c.Redis.(*redis.ClusterClient); cluster {
		// The ledger's scripts build key names from the prefix and touch
		// keys of many slots: on a cluster, every record fails (see
		// docs/reliability.md#redis-cluster).
		return errors.New("worker: Redis Cluster is not supported: give a client of one primary (redis.NewClient, or redis.NewFailoverClient behind Sentinel)")
	}
	if c.Ledger == nil {
		c.Ledger = ledger.New(c.Redis)
	}
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{"default": 1}
	}
	for q := range c.Queues {
		if err := tasks.ValidateQueue(q); err != nil {
			return fmt.Errorf("worker: Config.Queues: %w", err)
		}
	}
	if c.JanitorInterval <= 0 {
		c.JanitorInterval = DefaultJanitorInterval
	}
	if c.PausedRetry <= 0 {
		c.PausedRetry = defaultPausedRetry
	}
	if c.StallAfter <= 0 {
		c.StallAfter = maintenance.DefaultStallAfter
	}
	if c.IntegrityInterval <= 0 {
		c.IntegrityInterval = DefaultIntegrityInterval
	}
	if c.RedisGaugesInterval <= 0 {
		c.RedisGaugesInterval = DefaultRedisGaugesInterval
	}
	if c.RedisCheckInterval <= 0 {
		c.RedisCheckInterval = DefaultRedisCheckInterval
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	setBackoff(&c.RetryBackoff, DefaultRetryBackoff)
	setBackoff(&c.RateLimitBackoff, DefaultRateLimitBackoff)
	setBackoff(&c.AuthProbe, DefaultAuthProbe)
	setBackoff(&c.CallbackBackoff, DefaultCallbackBackoff)
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
		c.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func setBackoff(b *Backoff, def Backoff) {
	if b.Base <= 0 {
		b.Base = def.Base
	}
	if b.Cap < b.Base {
		b.Cap = max(def.Cap, b.Base)
	}
}

// Server runs the handler on an asynq server and serves /metrics, /healthz
// and /readyz.
type Server struct {
	cfg   Config
	asynq *asynq.Server
	// callbacks delivers completion callbacks from their own queue. It is
	// a server of its own so that the deletion queues keep asynq's
	// single-queue fast path: an empty callbacks queue among them would be
	// polled on about half of all fetches.
	callbacks *asynq.Server
	handler   *Handler
	verifier  *verifier
	metrics   *Metrics
	// lanes are the profiles', by name; fixed at New.
	lanes map[string]*lane
	// presence reports the worker to the fleet (package fleet).
	presence *presence
	janitor  *maintenance.Janitor
	// feeder makes the tasks of the served queues from the ledger.
	feeder    *feeder
	integrity *integrityWatch
	client    *asynq.Client
	stopped   context.Context
	stop      context.CancelFunc
	stopOnce  sync.Once
	closeOnce sync.Once
	stopJan   context.CancelFunc
	// stopPresence ends the fleet report, once the tasks have drained.
	stopPresence context.CancelFunc

	// gauges reads the Redis-backed gauges, redisLog logs Redis outages;
	// Shutdown waits for both (background).
	gauges     *redisGauges
	redisLog   *redisWatch
	background sync.WaitGroup
}

// New returns a server; Start or Run it.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ids, err := cfg.identities()
	if err != nil {
		return nil, err
	}
	if len(cfg.SessionKey) == 0 && actsAsSessions(ids) {
		return nil, errors.New("worker: Config.SessionKey is required when an identity acts as sessions: " +
			"the ledger keeps a keyed hash of a session name once its batch is complete")
	}
	if len(ids) > 1 {
		// Handed-back tasks return in bursts (see lane.admit): move them
		// to their queue often, and look for them often, rather than
		// letting the queue's idle fetcher sleep through a burst.
		if cfg.ForwardInterval <= 0 {
			cfg.ForwardInterval = sharedForwardInterval
		}
		if cfg.PollInterval <= 0 {
			cfg.PollInterval = sharedPollInterval
		}
	}
	s := &Server{cfg: cfg}
	s.stopped, s.stop = context.WithCancel(context.Background())
	s.metrics = NewMetrics(cfg.Registry)
	s.lanes = s.newLanes(ids)
	s.presence = newPresence(s)
	s.gauges = newRedisGauges(asynq.NewInspectorFromRedisClient(cfg.Redis), cfg.Ledger, cfg.Now, cfg.RedisGaugesInterval)
	cfg.Registry.MustRegister(s.gauges)
	led := cfg.Ledger
	cfg.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "coze_eraser_replication_shortfalls_total",
		Help: "Writes of outcomes that fewer replicas than --redis-replicas acknowledged in time (or whose wait failed): " +
			"a failover then could lose them, and their ids would be deleted again (answering not_found).",
	}, func() float64 { return float64(led.ReplicationShortfalls()) }))
	s.redisLog = newRedisWatch(cfg.Redis, cfg.Logger, cfg.Now, cfg.RedisCheckInterval)
	s.client = asynq.NewClientFromRedisClient(cfg.Redis)
	s.janitor = maintenance.NewJanitor(maintenance.JanitorConfig{Redis: cfg.Redis, Ledger: cfg.Ledger,
		Interval: cfg.JanitorInterval, StallAfter: cfg.StallAfter, Logger: cfg.Logger, Now: cfg.Now, SessionKey: cfg.SessionKey})
	log := cfg.Logger
	s.integrity = newIntegrityWatch(cfg.Ledger, s.metrics, log, cfg.Now)
	s.handler = &Handler{
		ledger:      cfg.Ledger,
		writer:      ledger.NewWriter(cfg.Ledger, 64, time.Millisecond),
		metrics:     s.metrics,
		identities:  newIdentityGate(s.lanes, log, cfg.Now),
		log:         log,
		now:         cfg.Now,
		stopped:     s.stopped,
		onComplete:  s.completed,
		pausedRetry: cfg.PausedRetry,
	}
	// One producer client: the verifier releases the ids a listing found
	// through it, and the feeder makes the tasks of every queue served.
	enq := enqueue.NewClient(cfg.Redis, enqueue.WithLedger(cfg.Ledger), enqueue.WithClock(cfg.Now))
	s.verifier = &verifier{
		ledger:     cfg.Ledger,
		enqueue:    enq,
		identities: s.handler.identities,
		metrics:    s.metrics,
		log:        log,
		now:        cfg.Now,
		onComplete: s.completed,
	}
	s.feeder = newFeeder(s, enq)
	s.asynq = asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   cfg.Queues,
		RetryDelayFunc:           retryDelay(cfg.RetryBackoff, cfg.CallbackBackoff),
		IsFailure:                isFailure,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: cfg.ForwardInterval,
		Logger:                   asynqLogger{log.With("component", "asynq")},
		LogLevel:                 asynq.ErrorLevel,
	})
	s.callbacks = asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:              2,
		Queues:                   map[string]int{callback.Queue: 1},
		RetryDelayFunc:           retryDelay(cfg.RetryBackoff, cfg.CallbackBackoff),
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.ForwardInterval,
		Logger:                   asynqLogger{log.With("component", "asynq-callbacks")},
		LogLevel:                 asynq.ErrorLevel,
	})
	return s, nil
}

// completed queues the callbacks of the batches an attempt completed and
// takes their session names out of the ledger.
func (s *Server) completed(ctx context.Context, batches []string) {
	ctx = context.WithoutCancel(ctx)
	s.janitor.QueueCallbacks(ctx)
	if len(s.cfg.SessionKey) > 0 {
		ctx, cancel := context.WithTimeout(ctx, scrubTimeout)
		defer cancel()
		if _, err := s.cfg.Ledger.ScrubBatchSessions(ctx, s.cfg.SessionKey, batches); err != nil {
			// The janitor's next sweep tries again.
			s.cfg.Logger.Warn("could not replace the session names of complete batches by their hash", "error", err)
		}
	}
}

// verifyOutboxInterval is how often a worker queues the verifications of
// the batches whose deletions are all done.
const verifyOutboxInterval = time.Second

// scrubTimeout bounds the scrub of the batches an attempt completed; the
// janitor's next sweep does what it leaves.
const scrubTimeout = 5 * time.Second

// actsAsSessions reports whether an identity can act as end users'
// sessions.
func actsAsSessions(ids map[string]Identity) bool {
	for _, id := range ids {
		if id.Sessions != nil {
			return true
		}
	}
	return false
}

func (s *Server) authChanged(profile string, closed bool, res coze.Result) {
	if l := s.lanes[profile]; l != nil {
		since := int64(0)
		if closed {
			since = s.cfg.Now().UnixNano()
		}
		l.authPausedSince.Store(since)
	}
	s.presence.poke()
	if closed {
		s.metrics.AuthPaused.WithLabelValues(profile).Set(1)
		s.metrics.AuthPauses.WithLabelValues(profile).Inc()
		s.cfg.Logger.Error("the API rejects the profile's token: its calls paused, probing once per interval until it is accepted; other profiles go on",
			"profile", profile, "class", res.Class, "code", coze.CodeLabel(res.Code, res.HasCode), "http_status", res.HTTPStatus,
			"logid", res.LogID, "msg", attemptMsg(res), "probe_interval", s.cfg.AuthProbe.Base)
		return
	}
	s.metrics.AuthPaused.WithLabelValues(profile).Set(0)
	s.cfg.Logger.Info("the API accepts the profile's token again: its calls resumed", "profile", profile, "logid", res.LogID)
}

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the task handler, for callers that run their own asynq
// server.
func (s *Server) Handler() *Handler { return s.handler }

// Start starts processing tasks in the background.
func (s *Server) Start() error {
	// Before the first task: the handler reads control states through it
	// from then on. It stops listening when the worker stops.
	s.handler.controls = s.cfg.Ledger.WatchControl(s.stopped)
	// The first window before the first fetch: a fetcher that finds its
	// queues empty sleeps for the poll interval.
	s.feeder.feedAll(s.stopped)
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeDelete, asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := s.handler.ProcessTask(ctx, t)
		s.feeder.taskDone()
		return err
	}))
	mux.Handle(tasks.TypeVerify, s.verifier)
	if err := s.asynq.Start(mux); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	callbacks := asynq.NewServeMux()
	callbacks.Handle(callback.TaskType, &callback.Sender{Client: s.cfg.CallbackClient, Secret: s.cfg.CallbackSecret, Now: s.cfg.Now,
		Logger: s.cfg.Logger.With("component", "callback"), OnResult: s.metrics.observeCallback})
	if err := s.callbacks.Start(callbacks); err != nil {
		s.asynq.Shutdown()
		return fmt.Errorf("worker: callbacks: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopJan = cancel
	go every(ctx, s.cfg.JanitorInterval, s.janitor.Sweep)
	// A batch waiting for its verification waits at most this long for
	// its task: the outbox is an empty set read once a second otherwise.
	go every(ctx, verifyOutboxInterval, s.janitor.QueueVerifications)
	go s.integrity.run(ctx, s.cfg.IntegrityInterval)
	s.background.Add(4)
	go func() { defer s.background.Done(); s.feeder.run(ctx) }()
	// The worker reports itself until its tasks have drained, not only
	// until it stops fetching: it is still deleting until then.
	presenceCtx, stopPresence := context.WithCancel(context.Background())
	s.stopPresence = stopPresence
	go func() { defer s.background.Done(); s.presence.run(presenceCtx) }()
	s.gauges.begin()
	go func() { defer s.background.Done(); s.gauges.run(ctx) }()
	go func() { defer s.background.Done(); s.redisLog.run(ctx) }()
	return nil
}

// Shutdown stops fetching tasks, lets in-flight calls finish within the
// shutdown timeout, and hands the remaining tasks back to the queue. Tasks
// waiting for a turn (rate-limit pause, auth pause) go back at once, without
// using up a retry.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() {
		s.stop()
		if s.stopJan != nil {
			s.stopJan()
		}
	})
	s.asynq.Shutdown()
	if s.stopPresence != nil {
		s.stopPresence()
	}
	s.callbacks.Shutdown()
	s.closeOnce.Do(s.handler.writer.Close) // after the handlers: their last records are written
	s.background.Wait()
}

// Run starts the server, blocks until ctx ends, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// Ready returns nil when the worker can make progress: Redis answers, it
// has not lost batches whose input nobody enqueued again, and the API
// accepts the token.
func (s *Server) Ready(ctx context.Context) error {
	if s.stopped.Err() != nil {
		return errors.New("shutting down")
	}
	if err := authPauseError(s.lanes); err != nil {
		return err
	}
	return withinTimeout(ctx, readyTimeout, func(ctx context.Context) error {
		if err := s.cfg.Redis.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("Redis: %w", err)
		}
		return lostBatchesError(ctx, s.cfg.Ledger)
	})
}

// readyTimeout bounds the Redis reads of [Server.Ready]: a probe must get
// its answer within its own timeout (Kubernetes' default is 1 s), also
// while Redis hangs.
const readyTimeout = 800 * time.Millisecond

// withinTimeout runs fn, which talks to Redis, and stops waiting for it
// after timeout. go-redis bounds a read by a context's deadline only with
// ContextTimeoutEnabled, else by its read timeout (3 s by default), so the
// context alone would not keep the bound; fn's goroutine ends when go-redis
// gives up.
func withinTimeout(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("Redis is not answering within %v", timeout)
	}
}

// lostBatchesError says which batches Redis lost, if any: until their input
// is enqueued again (or the loss dismissed), the fleet is not doing what
// was asked of it.
func lostBatchesError(ctx context.Context, l *ledger.Ledger) error {
	all, err := l.LostBatches(ctx)
	if err != nil {
		return err
	}
	// Only work that can no longer be done makes the fleet unready; a
	// batch lost after it completed lost its proof, which status shows.
	lost := slices.DeleteFunc(all, func(b ledger.Batch) bool { return !b.LostWhileOpen })
	if len(lost) == 0 {
		return nil
	}
	names := make([]string, 0, 5)
	for _, b := range lost[:min(len(lost), 5)] {
		names = append(names, b.Name)
	}
	more := ""
	if len(lost) > len(names) {
		more = fmt.Sprintf(" and %d more", len(lost)-len(names))
	}
	return fmt.Errorf("the ledger lost %d batch(es) when Redis lost its data (%s%s, first at %s): enqueue their input again",
		len(lost), strings.Join(names, ", "), more, lost[0].LostAt.Format(time.RFC3339))
}

// heldBackFor is how long after the API's last "slow down" the worker says
// its calls are held back by the rate limit.
const heldBackFor = 5 * time.Second

// HeldBack says in words why calls are held back now, or "" when they are
// not: "waiting: Redis is not answering", "paused: token rejected", or
// "waiting: API rate limit, 42/s" (the fleet's rate, when it has a budget).
// A progress line shows it, so that a stall is never silent.
func (s *Server) HeldBack() string {
	if s.redisLog.isDown.Load() {
		return "waiting: Redis is not answering"
	}
	if paused := pausedProfiles(s.lanes); len(paused) > 0 {
		if len(s.lanes) == 1 {
			return "paused: token rejected"
		}
		return "paused: token rejected for profile " + strings.Join(paused, ", ")
	}
	slowed := pushedBack(s.lanes, s.cfg.Now(), heldBackFor)
	if len(slowed) == 0 {
		return ""
	}
	parts := make([]string, 0, len(slowed))
	for _, l := range slowed {
		part := ""
		if len(s.lanes) > 1 {
			part = l.profile
		}
		if l.limiter != nil {
			part = strings.TrimSpace(fmt.Sprintf("%s %.0f/s", part, l.limiter.Effective()))
		}
		if part != "" {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return "waiting: API rate limit"
	}
	return "waiting: API rate limit, " + strings.Join(parts, ", ")
}

// HTTPHandler serves /metrics (Prometheus), /healthz (the process is up)
// and /readyz (see [Server.Ready]; 503 with the reason when not ready).
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// asynqLogger sends asynq's own log lines to slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(fmt.Sprint(args...)) }

// ServeHTTP serves h on ln until ctx ends, then closes it. Listen on a
// loopback address unless the port is protected: metrics say how much was
// deleted and when.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
