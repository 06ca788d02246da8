package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/logwriter"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/worker"
)

// env looks environment variables up; tests pass a map.
type env struct {
	lookup func(string) (string, bool)
}

func (e env) get(name string) string {
	v, _ := e.lookup(name)
	return v
}

// globalEnv names the variables of the settings that mean the same to
// every command: where Redis and the API are, how long to wait for Redis,
// how to log. They are read by every command that has the flag, so one
// environment serves a worker, enqueue, status and report alike. REDIS_URL
// and COZE_BASE_URL keep the names operators already know.
var globalEnv = map[string]string{
	"redis-url":              "REDIS_URL",
	"coze-base-url":          "COZE_BASE_URL",
	"redis-wait":             "COZE_ERASER_REDIS_WAIT",
	"redis-tls-ca":           "COZE_ERASER_REDIS_TLS_CA",
	"redis-sentinel-addrs":   "REDIS_SENTINEL_ADDRS",
	"redis-sentinel-master":  "REDIS_SENTINEL_MASTER",
	"redis-replicas":         "COZE_ERASER_REDIS_REPLICAS",
	"redis-replicas-timeout": "COZE_ERASER_REDIS_REPLICAS_TIMEOUT",
	"log-format":             "COZE_ERASER_LOG_FORMAT",
	"log-level":              "COZE_ERASER_LOG_LEVEL",
	"profiles":               "COZE_ERASER_PROFILES",
}

// envName is the variable a flag of cmd reads. Every flag but the global
// ones belongs to its command, and its variable says which:
// COZE_ERASER_<COMMAND>_<FLAG>, such as COZE_ERASER_WORKER_CONCURRENCY or
// COZE_ERASER_FAILURES_LIST_BATCH. A variable set for one command (a
// batch for enqueue, a format for status) then never changes another.
func envName(cmd *cobra.Command, flag string) string {
	if name, ok := globalEnv[flag]; ok {
		return name
	}
	path := strings.Fields(cmd.CommandPath())[1:] // without the binary's name
	return envWord("COZE_ERASER_" + strings.Join(append(path, flag), "_"))
}

// legacyEnvName is the variable a command's flag read before variables
// were named after their command.
func legacyEnvName(flag string) string { return envWord("COZE_ERASER_" + flag) }

func envWord(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// bindEnv gives every flag of every command its environment variable: the
// variable is shown in --help, and read before the command runs when the
// flag was not given.
func bindEnv(root *cobra.Command, e env) {
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || f.Name == "version" {
				return
			}
			f.Usage += fmt.Sprintf(" [$%s]", envName(cmd, f.Name))
		})
		if cmd.RunE != nil {
			runE := cmd.RunE
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				if err := applyEnv(cmd, e); err != nil {
					return err
				}
				return runE(cmd, args)
			}
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func applyEnv(cmd *cobra.Command, e env) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Name == "help" {
			return
		}
		name := envName(cmd, f.Name)
		warnLegacyEnv(cmd, e, f.Name, name)
		if f.Changed {
			return
		}
		v, ok := e.lookup(name)
		if !ok || v == "" {
			return
		}
		if setErr := f.Value.Set(v); setErr != nil {
			err = setupError("%s=%q: %v", name, v, setErr)
			return
		}
		// A value from the environment was given by the user, as one on
		// the command line is: only a default --metrics-addr may move.
		f.Changed = true
	})
	return err
}

// warnLegacyEnv says, on standard error, that a variable of the former
// scheme is set and no longer read, with the name to use instead: an
// upgraded worker would otherwise quietly go back to its defaults. The
// value is not shown.
func warnLegacyEnv(cmd *cobra.Command, e env, flag, name string) {
	legacy := legacyEnvName(flag)
	if legacy == name {
		return
	}
	if v, ok := e.lookup(legacy); ok && v != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "coze-eraser: warning: %s is not read: set %s for %s\n",
			legacy, name, strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "))
	}
}

// tokenSource reads the Coze token from COZE_API_TOKEN or from the file
// COZE_API_TOKEN_FILE names. No error says what the token is. warn gets,
// once, the file's path and mode when others than its owner can read it.
func tokenSource(e env, warn func(msg string, args ...any)) (coze.TokenSource, error) {
	tok, file := e.get("COZE_API_TOKEN"), e.get("COZE_API_TOKEN_FILE")
	switch {
	case tok != "" && file != "":
		return nil, setupError("both COZE_API_TOKEN and COZE_API_TOKEN_FILE are set: keep one")
	case tok != "":
		src := coze.StaticToken(strings.TrimSpace(tok))
		if _, err := src.Token(); err != nil {
			return nil, setupError("COZE_API_TOKEN: %v", err)
		}
		return src, nil
	case file != "":
		src := coze.FileToken(file, coze.OnReadableByOthers(func(path string, perm fs.FileMode) {
			warn("COZE_API_TOKEN_FILE can be read by other users: make it 0600 or 0400 (Kubernetes: defaultMode 0400)",
				"path", path, "mode", fmt.Sprintf("%04o", perm))
		}))
		if _, err := src.Token(); err != nil {
			return nil, setupError("COZE_API_TOKEN_FILE: %v", err)
		}
		return src, nil
	}
	return nil, setupError("no Coze token: set COZE_API_TOKEN, or COZE_API_TOKEN_FILE to a file holding it")
}

// redisFlags are the flags of every command that talks to Redis.
type redisFlags struct {
	url        string
	urlDefault string
	wait       time.Duration
	tlsCA      string
	// sentinelAddrs and sentinelMaster name a Redis behind Sentinel, as a
	// redis-sentinel:// URL does.
	sentinelAddrs  string
	sentinelMaster string
	// replicas and replicaTimeout: wait for that many replicas to hold the
	// writes that matter (ledger.WithReplicas).
	replicas       int
	replicaTimeout time.Duration
}

// defaultRedisURL is --redis-url's default.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

func (f *redisFlags) register(cmd *cobra.Command, defaultWait time.Duration) {
	cmd.Flags().StringVar(&f.url, "redis-url", defaultRedisURL,
		"Redis to use: redis:// or rediss:// (TLS), with user:password@ and /db; or a primary behind Sentinel, "+
			"redis-sentinel://[:password@]host:26379,host:26379,host:26379/db?master=NAME (rediss-sentinel:// for TLS)")
	f.urlDefault = defaultRedisURL
	f.registerRest(cmd, defaultWait)
}

func (f *redisFlags) registerRest(cmd *cobra.Command, defaultWait time.Duration) {
	cmd.Flags().DurationVar(&f.wait, "redis-wait", defaultWait,
		"how long to keep trying to reach Redis at start before giving up")
	cmd.Flags().StringVar(&f.tlsCA, "redis-tls-ca", "",
		"PEM file of the CA that signed a rediss:// server's certificate (default: the system's CAs)")
	cmd.Flags().StringVar(&f.sentinelAddrs, "redis-sentinel-addrs", "",
		"the sentinels of a Redis behind Sentinel, host:port,host:port,… (with --redis-sentinel-master; a password goes in a redis-sentinel:// --redis-url instead)")
	cmd.Flags().StringVar(&f.sentinelMaster, "redis-sentinel-master", "", "the name the sentinels monitor the primary under (with --redis-sentinel-addrs)")
	cmd.Flags().IntVar(&f.replicas, "redis-replicas", 0,
		"wait until this many replicas hold the writes that matter (the ids a producer is told are queued, the outcomes a worker records) "+
			"before going on, so that a failover loses none of them; 0: do not wait")
	cmd.Flags().DurationVar(&f.replicaTimeout, "redis-replicas-timeout", ledger.DefaultReplicaTimeout,
		"how long a write waits for --redis-replicas: a producer then fails (enqueueing again is safe), a worker counts it in coze_eraser_replication_shortfalls_total")
}

// maxReplicas bounds --redis-replicas: more replicas than any deployment has.
const maxReplicas = 64

// ledgerOptions are the options of the ledger the commands that write
// (enqueue, worker, serve, erase-subject, sweep) use.
func (f *redisFlags) ledgerOptions() ([]ledger.Option, error) {
	switch {
	case f.replicas < 0 || f.replicas > maxReplicas:
		return nil, setupError("--redis-replicas %d: must be 0 (do not wait) to %d", f.replicas, maxReplicas)
	case f.replicas > 0 && (f.replicaTimeout < 10*time.Millisecond || f.replicaTimeout > time.Minute):
		return nil, setupError("--redis-replicas-timeout %v: must be 10ms to 1m", f.replicaTimeout)
	case f.replicas == 0:
		return nil, nil
	}
	return []ledger.Option{ledger.WithReplicas(f.replicas, f.replicaTimeout)}, nil
}

// writer is the ledger, and the enqueue client over it, of a command that
// writes ids or outcomes: with --redis-replicas, they wait for replicas.
func (f *redisFlags) writer(rdb *redis.Client, extra ...ledger.Option) (*ledger.Ledger, *enqueue.Client, error) {
	opts, err := f.ledgerOptions()
	if err != nil {
		return nil, nil, err
	}
	led := ledger.New(rdb, append(extra, opts...)...)
	return led, enqueue.NewClient(rdb, enqueue.WithLedger(led)), nil
}

// given reports whether a Redis was named (run uses an embedded one
// otherwise).
func (f *redisFlags) given() bool {
	return f.url != "" || f.sentinelAddrs != "" || f.sentinelMaster != ""
}

// shown is the Redis the flags name, for a log line: the password hidden.
func (f *redisFlags) shown() string {
	raw, err := f.target()
	if err != nil {
		return "(not valid)"
	}
	return redactURL(raw)
}

// target is the Redis URL the flags name: --redis-url, or the sentinel
// flags' redis-sentinel:// URL.
func (f *redisFlags) target() (string, error) {
	if f.sentinelAddrs == "" && f.sentinelMaster == "" {
		return f.url, nil
	}
	switch {
	case f.sentinelAddrs == "" || f.sentinelMaster == "":
		return "", setupError("--redis-sentinel-addrs and --redis-sentinel-master go together: give both")
	case f.url != "" && f.url != f.urlDefault:
		return "", setupError("--redis-url and --redis-sentinel-addrs both name a Redis: give one (a password goes in --redis-url as redis-sentinel://:PASSWORD@host:port,…/0?master=NAME)")
	}
	return sentinelURL(f.sentinelAddrs, f.sentinelMaster), nil
}

// maxRedisWait bounds --redis-wait: a day is longer than any deployment
// waits for its Redis on purpose.
const maxRedisWait = 24 * time.Hour

// connect opens the Redis client and checks that Redis answers, trying for
// up to the wait. The error is one line with the URL, password hidden.
func (f *redisFlags) connect(ctx context.Context) (*redis.Client, error) {
	if f.wait < 0 || f.wait > maxRedisWait {
		return nil, setupError("--redis-wait %v: must be 0s to %v", f.wait, maxRedisWait)
	}
	raw, err := f.target()
	if err != nil {
		return nil, err
	}
	rdb, err := f.client(raw)
	if err != nil {
		return nil, err
	}
	if err := f.ping(ctx, rdb); err != nil {
		_ = rdb.Close()
		if isSentinelURL(raw) {
			return nil, setupError("cannot reach Redis at %s: %v (do the sentinels answer there, and monitor a primary of that master name?)",
				redactURL(raw), err)
		}
		return nil, setupError("cannot reach Redis at %s: %v", redactURL(raw), err)
	}
	if clusterEnabled(ctx, rdb) {
		_ = rdb.Close()
		return nil, setupError("Redis at %s runs in cluster mode, which coze-eraser does not support: the ledger's scripts "+
			"read and write keys of several slots at once. Use one primary (with replicas, behind Sentinel if you like: "+
			"redis-sentinel://…); see docs/reliability.md#redis-cluster", redactURL(raw))
	}
	return rdb, nil
}

// clusterEnabled reports whether rdb is a node of a Redis Cluster. It is
// asked at start, so that an unsupported Redis is refused with a reason
// rather than failing at the first script. (A Redis that does not answer
// INFO is left to fail later with its own error.)
func clusterEnabled(ctx context.Context, rdb *redis.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	info, err := rdb.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}

// client makes the client of raw: a single Redis (or a primary with
// replicas), or a primary behind Sentinel, which the client follows
// through a failover.
func (f *redisFlags) client(raw string) (*redis.Client, error) {
	if isSentinelURL(raw) {
		opt, err := parseSentinelURL(raw)
		if err != nil {
			return nil, setupError("--redis-url %s: %v", redactURL(raw), err)
		}
		if err := f.trustCA(opt.TLSConfig); err != nil {
			return nil, err
		}
		opt.ContextTimeoutEnabled = true
		if opt.Protocol == 0 {
			opt.Protocol = redisProtocol
		}
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		// The parser's message can quote the URL, password included.
		return nil, setupError("--redis-url %s: not a Redis URL; use redis://[user:password@]host:port/db, rediss://…, "+
			"or redis-sentinel://host:port,…/db?master=NAME", redactURL(raw))
	}
	if err := f.trustCA(opt.TLSConfig); err != nil {
		return nil, err
	}
	// A context's deadline then bounds each command, reads from a Redis
	// that hangs included, not only go-redis's own 3 s read timeout.
	opt.ContextTimeoutEnabled = true
	if opt.Protocol == 0 { // a URL's protocol=3 wins
		opt.Protocol = redisProtocol
	}
	return redis.NewClient(opt), nil
}

// redisProtocol is the protocol the clients speak: RESP2. go-redis's
// default, RESP3, makes every command look for push notifications on its
// connection first, which the CPU profile of the work-down put at 8 % of a
// worker's CPU; coze-eraser uses none (its pub/sub has connections of its
// own, which RESP2 needs anyway).
const redisProtocol = 2

// trustCA makes a TLS connection trust --redis-tls-ca; cfg is nil without
// TLS.
func (f *redisFlags) trustCA(cfg *tls.Config) error {
	if f.tlsCA == "" {
		return nil
	}
	if cfg == nil {
		return setupError("--redis-tls-ca is for rediss:// (and rediss-sentinel://) URLs")
	}
	pem, err := os.ReadFile(f.tlsCA)
	if err != nil {
		return setupError("--redis-tls-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return setupError("--redis-tls-ca %s: no PEM certificate in it", f.tlsCA)
	}
	cfg.RootCAs = pool
	return nil
}

// redisPingTimeout bounds one attempt to reach Redis at start.
const redisPingTimeout = 2 * time.Second

// ping tries Redis until it answers or the wait is over. Each attempt is
// bounded by the time left, so that --redis-wait 2s gives up after about
// 2 s, not after the wait plus an attempt; a wait of 0 makes one attempt.
// The error is the most telling one seen: a refused connection says more
// than the last attempt cut short by the wait.
func (f *redisFlags) ping(ctx context.Context, rdb *redis.Client) error {
	deadline := time.Now().Add(f.wait)
	var telling error
	for {
		timeout := redisPingTimeout
		if f.wait > 0 {
			timeout = min(timeout, time.Until(deadline))
		}
		pingCtx, cancel := context.WithTimeout(ctx, timeout)
		err := rdb.Ping(pingCtx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if telling == nil || !errors.Is(err, context.DeadlineExceeded) {
			telling = err
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return telling
		}
		select {
		case <-ctx.Done():
			return telling
		case <-time.After(min(500*time.Millisecond, left)):
		}
	}
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL, not shown)"
	}
	return u.Redacted()
}

// logFlags choose the log format and level.
type logFlags struct {
	format string
	level  string
}

func (f *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.format, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&f.level, "log-level", "info", "log level: debug, info, warn or error")
}

// logger returns the logger the flags describe, writing to w through a
// buffer (a line per attempt would otherwise be a system call per attempt);
// flush must be called before the command returns.
func (f *logFlags) logger(w io.Writer) (log *slog.Logger, flush func(), err error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, nil, setupError("--log-level %q: use debug, info, warn or error", f.level)
	}
	buffered := logwriter.New(w, logwriter.DefaultInterval)
	w = buffered
	opts := &slog.HandlerOptions{Level: level}
	switch f.format {
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return nil, nil, setupError("--log-format %q: use text or json", f.format)
	}
	return log, func() { _ = buffered.Flush() }, nil
}

// redisLogger sends go-redis's own messages (a connection pool's dial
// errors, once per attempt) to the default slog logger at debug level: the
// commands report a Redis outage themselves, in one line, and the worker's
// /readyz and asynq's error lines cover it at run time.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, fmt.Sprintf(format, v...), "component", "redis")
}

// buildVersion is set at build time (-ldflags "-X main.buildVersion=…") by
// builds without module version information, such as the Docker image's.
var buildVersion string

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "devel"
}

// checkPersistence warns, once at start, when the Redis would lose the
// queue and the ledger on a restart; with require it refuses to go on.
func checkPersistence(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger, require bool) error {
	p, err := worker.CheckPersistence(ctx, rdb)
	switch {
	case err != nil && require:
		return setupError("--require-persistence: %v", err)
	case err != nil:
		log.Warn("could not check that Redis persists its data", "error", err)
	case !p.Durable() && require:
		return setupError("--require-persistence: %s", p.Risk())
	case p.Risk() != "":
		log.Warn(p.Risk(), "appendonly", p.AOF, "appendfsync", p.AOFFsync, "rdb", p.RDB)
	}
	return nil
}
