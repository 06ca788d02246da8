package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelMaster is the name the sentinels monitor the primary under.
const sentinelMaster = "mymaster"

// sentinelPoll is how often the waits below look again: short, because a
// failover's duration is what tests measure.
const sentinelPoll = 50 * time.Millisecond

// Sentinel is a Redis Sentinel topology owned by one test: a primary, a
// replica of it and three sentinels (quorum 2), all on free loopback ports
// and all killed when the test ends. Its methods are for the test's own
// goroutine.
type Sentinel struct {
	t         testing.TB
	nodes     []*Server // the primary at start, then the replica
	sentinels []*Server
	user      string
	password  string

	mu       sync.Mutex
	killed   *Server
	killedAt time.Time
}

// StartSentinel starts a primary, a replica of it and three sentinels, with
// short timings (down after 1s, failover timeout 5s) so that a failover takes
// seconds. It returns once every sentinel sees the primary, the replica and
// the two other sentinels. Data nodes run with AOF (fsync every second) so a
// killed one comes back with its data; opts apply to them (WithArgs,
// WithPassword, WithUser; not WithTLS). It fails the test, with an install
// hint, when redis-server is missing.
func StartSentinel(t testing.TB, opts ...Option) *Sentinel {
	t.Helper()
	bin, cfg := prepare(t, opts)
	if cfg.tls != nil {
		t.Fatal("redistest: StartSentinel does not support WithTLS")
	}
	// The replica announces 127.0.0.1 so that the primary's INFO, which the
	// sentinels discover replicas from, names a loopback address. A full sync
	// starts at once rather than after the 5 seconds a primary waits by
	// default for more replicas to share a diskless transfer.
	nodeArgs := []string{"--appendonly", "yes", "--appendfsync", "everysec", "--replica-announce-ip", "127.0.0.1",
		"--repl-diskless-sync-delay", "0"}
	if cfg.password != "" {
		nodeArgs = append(nodeArgs, "--masterauth", cfg.password)
	}
	if cfg.user != "" {
		nodeArgs = append(nodeArgs, "--masteruser", cfg.user)
	}
	// Ours first, so that the caller's WithArgs win.
	nodeOpts := append([]Option{WithArgs(nodeArgs...)}, opts...)
	s := &Sentinel{t: t, user: cfg.user, password: cfg.password}
	primary := Start(t, nodeOpts...)
	host, port, _ := net.SplitHostPort(primary.Addr)
	replica := Start(t, append(nodeOpts, WithArgs("--replicaof", host, port))...)
	s.nodes = []*Server{primary, replica}

	// The replica must be in sync before the sentinels start: a sentinel
	// learns replicas from the primary's INFO, which it asks for at once and
	// then only every 10 seconds.
	s.waitFor(t, 30*time.Second, "the replica to sync", func(ctx context.Context) error {
		return s.isReplicaOf(ctx, replica, primary.Addr)
	})

	for range 3 {
		s.sentinels = append(s.sentinels, startSentinelProcess(t, bin, primary.Addr, &cfg))
	}
	s.waitFor(t, 30*time.Second, "the sentinels to see the primary, the replica and each other", func(ctx context.Context) error {
		for _, sn := range s.sentinels {
			if err := sentinelReady(ctx, sn); err != nil {
				return err
			}
		}
		return nil
	})
	return s
}

// startSentinelProcess starts `redis-server sentinel.conf --sentinel`. The
// config file must come first and be writable: a sentinel refuses to start
// without one, and rewrites it with what it learns.
func startSentinelProcess(t testing.TB, bin, primary string, cfg *config) *Server {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	s := &Server{t: t, bin: bin, dir: dir, args: []string{conf, "--sentinel"}}
	host, port, _ := net.SplitHostPort(primary)
	var lastErr error
	for range 5 {
		p, err := freePort()
		if err != nil {
			t.Fatalf("redistest: no free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		s.URL = "redis://" + s.Addr + "/0"
		lines := []string{
			"port " + strconv.Itoa(p),
			"bind 127.0.0.1",
			"protected-mode no",
			"daemonize no",
			`logfile ""`,
			"dir " + dir,
			// Addresses are IPs; announcing 127.0.0.1 keeps the hello
			// messages the sentinels find each other by on loopback.
			"sentinel resolve-hostnames no",
			"sentinel announce-ip 127.0.0.1",
			fmt.Sprintf("sentinel monitor %s %s %s 2", sentinelMaster, host, port),
			"sentinel down-after-milliseconds " + sentinelMaster + " 1000",
			"sentinel failover-timeout " + sentinelMaster + " 5000",
			"sentinel parallel-syncs " + sentinelMaster + " 1",
		}
		if cfg.user != "" {
			lines = append(lines, "sentinel auth-user "+sentinelMaster+" "+cfg.user)
		}
		if cfg.password != "" {
			lines = append(lines, "sentinel auth-pass "+sentinelMaster+" "+cfg.password)
		}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("redistest: sentinel.conf: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: sentinel did not start: %v", lastErr)
	return nil
}

// sentinelReady is nil once sn sees the primary up, a replica and the two
// other sentinels.
func sentinelReady(ctx context.Context, sn *Server) error {
	c := redis.NewSentinelClient(pollOptions(sn.Options()))
	defer func() { _ = c.Close() }()
	m, err := c.Master(ctx, sentinelMaster).Result()
	if err != nil {
		return fmt.Errorf("sentinel %s: %w", sn.Addr, err)
	}
	if m["flags"] != "master" || m["num-slaves"] == "0" || m["num-other-sentinels"] != "2" {
		return fmt.Errorf("sentinel %s: flags %s, %s replicas, %s other sentinels",
			sn.Addr, m["flags"], m["num-slaves"], m["num-other-sentinels"])
	}
	return nil
}

// MasterName returns the name the sentinels monitor the primary under.
func (s *Sentinel) MasterName() string { return sentinelMaster }

// SentinelAddrs returns the sentinels' host:port addresses.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr
	}
	return addrs
}

// URL returns redis-sentinel://h1:p1,h2:p2,h3:p3/0?master=mymaster, with
// the data nodes' user and password before the hosts when set (as Server.URL
// carries them); the sentinels themselves ask for none.
func (s *Sentinel) URL() string {
	auth := ""
	if s.password != "" {
		auth = s.user + ":" + s.password + "@"
	}
	return "redis-sentinel://" + auth + strings.Join(s.SentinelAddrs(), ",") + "/0?master=" + sentinelMaster
}

// Primary returns the current primary's host:port as the first sentinel
// that answers reports it (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (s *Sentinel) Primary() string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, sn := range s.sentinels {
		addr, err := masterAddr(ctx, sn)
		if err == nil {
			return addr
		}
		errs = append(errs, err)
	}
	s.t.Fatalf("redistest: no sentinel names the primary: %v", errors.Join(errs...))
	return ""
}

// KillPrimary kills the current primary with SIGKILL, as a crash would,
// whichever of the two data nodes it is now, and notes the time for
// WaitFailover.
func (s *Sentinel) KillPrimary() {
	s.t.Helper()
	node := s.node(s.Primary())
	node.Kill()
	s.mu.Lock()
	s.killed, s.killedAt = node, time.Now()
	s.mu.Unlock()
}

// WaitFailover waits until every sentinel reports the same primary, other
// than the one KillPrimary killed, and that node answers ROLE as a master.
// It returns the new primary and the time since KillPrimary, and fails the
// test after timeout.
func (s *Sentinel) WaitFailover(t testing.TB, timeout time.Duration) (newPrimary string, took time.Duration) {
	t.Helper()
	s.mu.Lock()
	killed, at := s.killed, s.killedAt
	s.mu.Unlock()
	if killed == nil {
		t.Fatal("redistest: WaitFailover before KillPrimary")
	}
	s.waitFor(t, timeout, "a failover", func(ctx context.Context) error {
		addr, err := s.agreedPrimary(ctx)
		if err != nil {
			return err
		}
		if addr == killed.Addr {
			return fmt.Errorf("the sentinels still name the killed %s", addr)
		}
		role, err := nodeRole(ctx, s.node(addr))
		if err != nil {
			return err
		}
		if role != "master" {
			return fmt.Errorf("%s, named primary, says ROLE %s", addr, role)
		}
		newPrimary, took = addr, time.Since(at)
		return nil
	})
	return newPrimary, took
}

// FailoverClient returns a go-redis client that finds the primary through
// the sentinels, closed at cleanup.
func (s *Sentinel) FailoverClient() *redis.Client {
	s.t.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            sentinelMaster,
		SentinelAddrs:         s.SentinelAddrs(),
		Username:              s.user,
		Password:              s.password,
		ContextTimeoutEnabled: true,
	})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// node returns the data node at addr.
func (s *Sentinel) node(addr string) *Server {
	s.t.Helper()
	for _, n := range s.nodes {
		if n.Addr == addr {
			return n
		}
	}
	s.t.Fatalf("redistest: the sentinels name %s, which is none of the data nodes", addr)
	return nil
}

// agreedPrimary returns the primary when every sentinel names the same one:
// until the new configuration has spread, a client may still be sent to the
// old primary.
func (s *Sentinel) agreedPrimary(ctx context.Context) (string, error) {
	var first string
	for _, sn := range s.sentinels {
		addr, err := masterAddr(ctx, sn)
		if err != nil {
			return "", err
		}
		if first == "" {
			first = addr
		} else if addr != first {
			return "", fmt.Errorf("the sentinels disagree: %s and %s", first, addr)
		}
	}
	return first, nil
}

// isReplicaOf is nil once node replicates primary with its link up.
func (s *Sentinel) isReplicaOf(ctx context.Context, node *Server, primary string) error {
	c := redis.NewClient(pollOptions(node.Options()))
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("%s: %w", node.Addr, err)
	}
	fields := map[string]string{}
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	master := net.JoinHostPort(fields["master_host"], fields["master_port"])
	if fields["role"] != "slave" || master != primary || fields["master_link_status"] != "up" {
		return fmt.Errorf("%s: role %s, master %s, link %s (want a replica of %s, link up)",
			node.Addr, fields["role"], master, fields["master_link_status"], primary)
	}
	return nil
}

// waitFor calls cond every sentinelPoll until it returns nil, and fails t
// with cond's last error after timeout.
func (s *Sentinel) waitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: waited %v for %s: %v", timeout, what, err)
		}
		time.Sleep(sentinelPoll)
	}
}

func masterAddr(ctx context.Context, sn *Server) (string, error) {
	c := redis.NewSentinelClient(pollOptions(sn.Options()))
	defer func() { _ = c.Close() }()
	hp, err := c.GetMasterAddrByName(ctx, sentinelMaster).Result()
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", sn.Addr, err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: GET-MASTER-ADDR-BY-NAME: %q", sn.Addr, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

func nodeRole(ctx context.Context, node *Server) (string, error) {
	c := redis.NewClient(pollOptions(node.Options()))
	defer c.Close()
	reply, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", fmt.Errorf("%s: ROLE: %w", node.Addr, err)
	}
	if len(reply) == 0 {
		return "", fmt.Errorf("%s: empty ROLE reply", node.Addr)
	}
	role, _ := reply[0].(string)
	return role, nil
}

// pollOptions makes a one-shot client give up fast, so that a dead node
// costs a poll, not a retry loop.
func pollOptions(opt *redis.Options) *redis.Options {
	opt.MaxRetries = -1
	opt.DialTimeout = 500 * time.Millisecond
	opt.ContextTimeoutEnabled = true
	return opt
}
