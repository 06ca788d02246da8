package main

import (
	"context"
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
	"github.com/coze-eraser/coze-eraser/internal/logwriter"
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
	"redis-url":     "REDIS_URL",
	"coze-base-url": "COZE_BASE_URL",
	"redis-wait":    "COZE_ERASER_REDIS_WAIT",
	"redis-tls-ca":  "COZE_ERASER_REDIS_TLS_CA",
	"log-format":    "COZE_ERASER_LOG_FORMAT",
	"log-level":     "COZE_ERASER_LOG_LEVEL",
	"profiles":      "COZE_ERASER_PROFILES",
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
	url   string
	wait  time.Duration
	tlsCA string
}

func (f *redisFlags) register(cmd *cobra.Command, defaultWait time.Duration) {
	cmd.Flags().StringVar(&f.url, "redis-url", "redis://127.0.0.1:6379/0",
		"Redis to use: redis:// or rediss:// (TLS), with user:password@ and /db")
	f.registerRest(cmd, defaultWait)
}

func (f *redisFlags) registerRest(cmd *cobra.Command, defaultWait time.Duration) {
	cmd.Flags().DurationVar(&f.wait, "redis-wait", defaultWait,
		"how long to keep trying to reach Redis at start before giving up")
	cmd.Flags().StringVar(&f.tlsCA, "redis-tls-ca", "",
		"PEM file of the CA that signed a rediss:// server's certificate (default: the system's CAs)")
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
	opt, err := redis.ParseURL(f.url)
	if err != nil {
		// The parser's message can quote the URL, password included.
		return nil, setupError("--redis-url %s: not a Redis URL; use redis://[user:password@]host:port/db or rediss://…", redactURL(f.url))
	}
	if f.tlsCA != "" {
		if opt.TLSConfig == nil {
			return nil, setupError("--redis-tls-ca is for rediss:// URLs")
		}
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, setupError("--redis-tls-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, setupError("--redis-tls-ca %s: no PEM certificate in it", f.tlsCA)
		}
		opt.TLSConfig.RootCAs = pool
	}
	// A context's deadline then bounds each command, reads from a Redis
	// that hangs included, not only go-redis's own 3 s read timeout.
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	if err := f.ping(ctx, rdb); err != nil {
		_ = rdb.Close()
		return nil, setupError("cannot reach Redis at %s: %v", redactURL(f.url), err)
	}
	return rdb, nil
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
