// Package redistest starts a real redis-server for a test, on a free loopback
// port, and stops it when the test ends. Each test gets its own server, so
// tests run in parallel without sharing keys, and the Redis a machine runs
// on 6379 is never touched.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/logbuf"
)

// InstallHint says how to get redis-server; tests print it when it is missing.
const InstallHint = "redis-server is not on PATH: install it (Debian/Ubuntu: sudo apt-get install -y redis-server; " +
	"macOS: brew install redis) or run `make test`, which installs it first"

// Server is a redis-server process owned by one test.
type Server struct {
	// Addr is host:port, for example 127.0.0.1:40123.
	Addr string
	// URL is redis://Addr/0 (with the password, when one is set).
	URL string

	t    testing.TB
	bin  string
	args []string
	dir  string
	tls  *TLSFiles

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *logbuf.Buffer
}

// Option adds redis-server arguments.
type Option func(*config)

type config struct {
	args     []string
	password string
	user     string
	tls      *TLSFiles
}

// WithArgs passes extra redis-server arguments, such as
// "--appendonly", "yes".
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithPassword sets requirepass; URL then carries the password.
func WithPassword(pw string) Option {
	return func(c *config) {
		c.password = pw
		c.args = append(c.args, "--requirepass", pw)
	}
}

// prepare finds redis-server, failing t with the install hint without
// it, and applies opts.
func prepare(t testing.TB, opts []Option) (bin string, cfg config) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(InstallHint)
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	return bin, cfg
}

// Start starts a redis-server and registers its stop with t.Cleanup. It
// fails the test, with an install hint, when redis-server is missing.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, cfg := prepare(t, opts)
	s := &Server{t: t, bin: bin, dir: t.TempDir(), tls: cfg.tls}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: no free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		scheme, portArgs := "redis", []string{"--port", strconv.Itoa(port)}
		if cfg.tls != nil {
			scheme = "rediss"
			portArgs = []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", cfg.tls.Cert,
				"--tls-key-file", cfg.tls.Key, "--tls-ca-cert-file", cfg.tls.CA, "--tls-auth-clients", "no"}
		}
		auth := ""
		if cfg.password != "" {
			auth = cfg.user + ":" + cfg.password + "@"
		}
		s.URL = scheme + "://" + auth + s.Addr + "/0"
		s.args = append(append([]string{
			"--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--logfile", "",
		}, portArgs...), cfg.args...)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: redis-server did not start: %v", lastErr)
	return nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = &logbuf.Buffer{}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("redis-server exited at start: %s", s.out.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			if s.ping() == nil {
				return nil
			}
		}
		if s.tls != nil && strings.Contains(s.out.String(), "TLS") && strings.Contains(s.out.String(), "not supported") {
			return fmt.Errorf("this redis-server was built without TLS: %s", s.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	s.cmd = nil
	return fmt.Errorf("redis-server did not answer on %s within 10s: %s", s.Addr, s.out.String())
}

// Options returns go-redis options for the server, TLS included.
func (s *Server) Options() *redis.Options {
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.tls != nil {
		opt.TLSConfig = s.tls.Client.Clone()
	}
	return opt
}

func (s *Server) ping() error {
	c := redis.NewClient(s.Options())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Client returns a new go-redis client for the server, closed at cleanup.
func (s *Server) Client() *redis.Client {
	s.t.Helper()
	c := redis.NewClient(s.Options())
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server with SIGKILL, as a crash would. It is safe to call
// twice.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Stop suspends the server with SIGSTOP: it keeps its connections open and
// answers nothing, as a Redis that hangs (swapping, a stuck disk) would.
// Continue resumes it; the test's cleanup resumes it too, before anything
// registered earlier (a worker's shutdown) runs.
func (s *Server) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
	s.t.Cleanup(s.Continue)
}

// Continue resumes a server suspended by Stop (SIGCONT). It is safe to call
// when the server runs or was killed.
func (s *Server) Continue() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Errorf("redistest: %v: %v", sig, err)
	}
}

// Restart starts the server again on the same port and directory after
// Kill, so that a persisted dataset (AOF, RDB) is loaded again.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Log returns what redis-server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("listening on %v: not a TCP address", ln.Addr())
	}
	return addr.Port, nil
}
