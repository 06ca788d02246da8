// Package benchrun is the `coze-eraser-bench` command: it measures the full pipeline
// against what a user would otherwise write with bare asynq, in one run on
// one redis-server, with every side in its own process so that CPU and
// memory are measured per process:
//
//   - enqueue N ids from a file with `coze-eraser enqueue`, and the same N
//     with a bare asynq Client.Enqueue loop of 16 goroutines;
//   - work them down with `coze-eraser worker` (ledger, batch tallies,
//     metrics, JSON logs to a file, no limiter) and with a bare asynq server
//     whose handler only sends the same DELETE to the same zero-latency fake,
//     both at the same concurrency;
//   - Redis memory per pending task and per finished record, worker peak
//     RSS, and CPU seconds per 1,000 deletions of each side and of Redis.
//
// Each pass runs Runs times, alternating which side goes first, and the
// figures are medians.
package benchrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// Config configures a bench.
type Config struct {
	// Binary is the coze-eraser executable to measure.
	Binary string
	// BareBinary runs the bare asynq side: a program whose bare-enqueue and
	// bare-worker subcommands call BareEnqueue and BareWorker (the
	// coze-eraser-bench command itself).
	BareBinary string
	// IDs per pass, Runs passes; Concurrency of both workers.
	IDs         int
	Runs        int
	Concurrency int
	// RSSConcurrency is the concurrency of an extra pass of the full worker
	// whose peak RSS is reported (0 skips it).
	RSSConcurrency int
	// Big, when positive, is the size of an extra enqueue from a file whose
	// time and peak RSS are reported.
	Big int
	// Behind, when positive, is the size of a batch that a worker at
	// BehindRate works while two small batches are enqueued behind it (one
	// in its queue, one in a queue of higher weight): the time from each
	// small enqueue to its batch's first outcome is reported.
	Behind     int
	BehindRate int
	// Dir holds the id files and logs (default a temporary directory).
	Dir string
	// ProfileDir, when set, receives a CPU profile of every process the
	// bench measures, named for its pass.
	ProfileDir string
	// Out receives progress lines and the results.
	Out io.Writer
}

// Sample is one process's figures for one pass.
type Sample struct {
	Rate      float64 // ids per second
	CPU       float64 // process CPU seconds per 1,000 ids
	RedisCPU  float64 // Redis CPU seconds per 1,000 ids
	PeakRSSMB float64
	// MemPerID is Redis memory per id after the pass, in bytes.
	MemPerID float64
}

// Result holds every sample, by pass name.
type Result map[string][]Sample

// env is a bench's running redis-server and fake API.
type env struct {
	// notes are result lines that are not table rows (the behind pass).
	notes    []string
	cfg      Config
	redisURL string
	rdb      *redis.Client
	fakeURL  string
	passes   int // id files written, one per pass
	procs    []*exec.Cmd
	profiles int
}

// Run runs the bench and writes its results to cfg.Out.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Runs < 1 {
		cfg.Runs = 3
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "coze-eraser-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir) //nolint:errcheck // a temporary directory: a leftover is harmless
		cfg.Dir = dir
	} else if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, err
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o750); err != nil {
			return nil, err
		}
	}
	e := &env{cfg: cfg}
	defer e.stop()
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	res := Result{}
	for run := range cfg.Runs {
		// The three sides take turns going first.
		passes := []func(context.Context, Result) error{e.comparePass(e.ours()), e.comparePass(e.bare()), e.comparePass(e.upFront())}
		passes = append(passes[run%3:], passes[:run%3]...)
		for _, pass := range passes {
			if err := pass(ctx, res); err != nil {
				return res, err
			}
		}
		e.logf("run %d of %d done", run+1, cfg.Runs)
	}
	if cfg.RSSConcurrency > 0 {
		if err := e.rssPass(ctx, res); err != nil {
			return res, err
		}
	}
	if cfg.Big > 0 {
		if err := e.bigPass(ctx, res); err != nil {
			return res, err
		}
	}
	if cfg.Behind > 0 {
		if err := e.behindPass(ctx, res); err != nil {
			return res, err
		}
	}
	res.write(cfg)
	for _, note := range e.notes {
		fmt.Fprintln(cfg.Out, note)
	}
	return res, nil
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.cfg.Out, "bench: "+format+"\n", args...)
}

// start launches redis-server and the fake API, and writes the ids.
func (e *env) start(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)")
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	redisCmd := exec.CommandContext(ctx, bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
		"--appendonly", "no", "--dir", e.cfg.Dir, "--logfile", filepath.Join(e.cfg.Dir, "redis.log"))
	if err := redisCmd.Start(); err != nil {
		return err
	}
	e.procs = append(e.procs, redisCmd)
	e.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	opt, _ := redis.ParseURL(e.redisURL)
	e.rdb = redis.NewClient(opt)
	if err := waitUntil(ctx, 10*time.Second, func() bool { return e.rdb.Ping(ctx).Err() == nil }); err != nil {
		log, _ := os.ReadFile(filepath.Join(e.cfg.Dir, "redis.log"))
		return fmt.Errorf("redis-server did not start (%w): %s", err, strings.TrimSpace(string(log)))
	}
	fakeAddr, err := freeAddr()
	if err != nil {
		return err
	}
	fake := exec.CommandContext(ctx, e.cfg.Binary, "fake-api", "--addr", fakeAddr)
	fake.Env = os.Environ()
	if err := fake.Start(); err != nil {
		return err
	}
	e.procs = append(e.procs, fake)
	e.fakeURL = "http://" + fakeAddr
	if err := waitUntil(ctx, 10*time.Second, func() bool { return dialable(fakeAddr) }); err != nil {
		return fmt.Errorf("fake API did not start: %w", err)
	}
	return nil
}

// newIDs writes n ids no earlier pass used to a file and returns its path:
// the fake API remembers what it deleted and answers "not found" the
// second time, which would give the second side of a run other work.
func (e *env) newIDs(n int) (string, error) {
	e.passes++
	path := filepath.Join(e.cfg.Dir, fmt.Sprintf("ids-%d.txt", e.passes))
	// 19-digit ids, 10^13 apart per pass, 13 apart within one.
	return path, writeIDs(path, n, 7379996104798150001-int64(e.passes)*10_000_000_000_000)
}

func (e *env) stop() {
	for _, p := range e.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	if e.rdb != nil {
		e.rdb.Close()
	}
}

// side is one of the two things the bench compares: how it enqueues a
// file of ids, how it works them down, and how to tell it is done.
type side struct {
	name    string // in pass names: "coze-eraser" or "bare asynq"
	enqueue func(path string) []string
	work    func(concurrency int) []string
	done    func(ctx context.Context, n int) bool
	log     string // the worker's log file
	// prepare, when set, runs between the enqueue and the work, untimed;
	// the enqueue's memory per id is read after it.
	prepare func(ctx context.Context) error
}

func (e *env) ours() side {
	led := ledger.New(e.rdb)
	return side{
		name: "coze-eraser",
		enqueue: func(path string) []string {
			return []string{e.cfg.Binary, "enqueue", "--file", path, "--batch", "bench", "--redis-url", e.redisURL}
		},
		work: func(concurrency int) []string {
			return []string{e.cfg.Binary, "worker", "--redis-url", e.redisURL, "--coze-base-url", e.fakeURL, "--rate", "0", "--concurrency", strconv.Itoa(concurrency),
				"--metrics-addr", "", "--log-format", "json"}
		},
		done: func(ctx context.Context, n int) bool {
			b, _, _ := led.Batch(ctx, "bench")
			return b.Total == n && b.Pending() == 0
		},
		log: "worker",
	}
}

// upFront is the product as it was before feeding: the same enqueue, then
// every task made at once (untimed, as the enqueue made them), so that the
// worker's feeder finds nothing to feed. Its work-down is what feeding is
// measured against, and its memory per id is what a pending id cost with
// its task.
func (e *env) upFront() side {
	s := e.ours()
	s.name = upFrontSide
	s.prepare = func(ctx context.Context) error {
		c := enqueue.NewClient(e.rdb)
		for {
			fed, err := c.Feed(ctx, "default", 1<<40)
			if err != nil || fed.Tasks == 0 {
				return err
			}
		}
	}
	return s
}

// upFrontSide names the side of [env.upFront] in pass names.
const upFrontSide = "coze-eraser, tasks up front"

func (e *env) bare() side {
	return side{
		name: "bare asynq",
		enqueue: func(path string) []string {
			return []string{e.cfg.BareBinary, "bare-enqueue", "--file", path, "--redis-url", e.redisURL}
		},
		work: func(concurrency int) []string {
			return []string{e.cfg.BareBinary, "bare-worker", "--redis-url", e.redisURL, "--coze-base-url", e.fakeURL,
				"--concurrency", strconv.Itoa(concurrency)}
		},
		done: func(ctx context.Context, _ int) bool { return e.bareQueueEmpty(ctx) },
		log:  "bare-worker",
	}
}

// pass empties Redis, enqueues n fresh ids from a file with s and, when
// concurrency is positive, works them down. Each sample carries Redis's
// memory per id after it.
func (e *env) pass(ctx context.Context, s side, n, concurrency int) (enq, work Sample, err error) {
	base, err := e.reset(ctx)
	if err != nil {
		return enq, work, err
	}
	ids, err := e.newIDs(n)
	if err != nil {
		return enq, work, err
	}
	memPerID := func() float64 { return float64(e.usedMemory(ctx)-base) / float64(n) }
	if enq, err = e.measure(ctx, "enqueue/"+s.name, s.enqueue(ids), n, nil, ""); err != nil {
		return enq, work, err
	}
	if s.prepare != nil {
		if err := s.prepare(ctx); err != nil {
			return enq, work, err
		}
	}
	enq.MemPerID = memPerID()
	if concurrency <= 0 {
		return enq, work, nil
	}
	done := func() bool { return s.done(ctx, n) }
	if work, err = e.measure(ctx, "work/"+s.name, s.work(concurrency), n, done, e.logFile(s.log)); err != nil {
		return enq, work, err
	}
	work.MemPerID = memPerID()
	return enq, work, nil
}

// comparePass runs one pass of s at the bench's size and concurrency.
func (e *env) comparePass(s side) func(context.Context, Result) error {
	return func(ctx context.Context, res Result) error {
		enq, work, err := e.pass(ctx, s, e.cfg.IDs, e.cfg.Concurrency)
		if err != nil {
			return err
		}
		res["enqueue/"+s.name] = append(res["enqueue/"+s.name], enq)
		res["work/"+s.name] = append(res["work/"+s.name], work)
		return nil
	}
}

// bareQueueEmpty reports whether asynq's default queue has no task left to
// run. (Not Inspector.GetQueueInfo: it samples memory use with MEMORY USAGE
// calls, which polled every 10 ms would load the bare side's Redis more
// than the ledger poll loads ours.)
func (e *env) bareQueueEmpty(ctx context.Context) bool {
	key := func(state string) string { return asynqwire.StateKey("default", state) }
	pipe := e.rdb.Pipeline()
	counts := []*redis.IntCmd{pipe.LLen(ctx, key("pending")), pipe.LLen(ctx, key("active")), pipe.ZCard(ctx, key("retry")),
		pipe.ZCard(ctx, key("scheduled"))}
	if _, err := pipe.Exec(ctx); err != nil {
		return false
	}
	for _, c := range counts {
		if c.Val() != 0 {
			return false
		}
	}
	return true
}

// rssPass works a batch with the full worker at RSSConcurrency.
func (e *env) rssPass(ctx context.Context, res Result) error {
	_, work, err := e.pass(ctx, e.ours(), e.cfg.IDs, e.cfg.RSSConcurrency)
	if err != nil {
		return err
	}
	res[fmt.Sprintf("work/coze-eraser at concurrency %d", e.cfg.RSSConcurrency)] = []Sample{work}
	return nil
}

// bigPass enqueues cfg.Big ids from a file.
func (e *env) bigPass(ctx context.Context, res Result) error {
	enq, _, err := e.pass(ctx, e.ours(), e.cfg.Big, 0)
	if err != nil {
		return err
	}
	res[fmt.Sprintf("enqueue/coze-eraser of %d ids", e.cfg.Big)] = []Sample{enq}
	return nil
}

// measure runs args (the program, then its arguments) until it exits or, with done, until
// done reports true (then it is stopped with SIGTERM), and returns its rate
// over n ids, its CPU and Redis's, and its peak RSS.
func (e *env) measure(ctx context.Context, pass string, args []string, n int, done func() bool, logPath string) (Sample, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "COZE_API_TOKEN=pat_bench", "COZE_ERASER_REDIS_WAIT=10s")
	if e.cfg.ProfileDir != "" {
		e.profiles++
		name := filepath.Join(e.cfg.ProfileDir, fmt.Sprintf("%02d-%s", e.profiles, fileName(pass)))
		cmd.Env = append(cmd.Env, "COZE_ERASER_CPUPROFILE="+name+".pprof")
		_ = e.rdb.ConfigResetStat(ctx).Err()
		defer e.saveCommandStats(ctx, name+".commandstats")
	}
	var logFile *os.File
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return Sample{}, err
		}
		defer f.Close() //nolint:errcheck // the process's log: a lost tail is a short log, not a wrong result
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	redisBefore := e.redisCPU(ctx)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Sample{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var cpu time.Duration
	var rss int64
	if done == nil {
		for {
			cpu, rss = procStats(cmd.Process.Pid, cpu, rss)
			select {
			case err := <-exited:
				if err != nil {
					return Sample{}, fmt.Errorf("%s: %w", strings.Join(args[:2], " "), err)
				}
				// The final figures, from the exited process.
				if usage, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					cpu = time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
					rss = max(rss, usage.Maxrss*1024)
				}
				return e.sample(ctx, n, time.Since(start), cpu, rss, redisBefore), nil
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for !done() {
		cpu, rss = procStats(cmd.Process.Pid, cpu, rss)
		select {
		case err := <-exited:
			return Sample{}, fmt.Errorf("%s exited early (%w); see %s", args[0], err, logFileName(logFile))
		case <-ctx.Done():
			return Sample{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	cpu, rss = procStats(cmd.Process.Pid, cpu, rss)
	s := e.sample(ctx, n, elapsed, cpu, rss, redisBefore)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited: //nolint:errcheck // told to stop: its exit status is not the sample
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // killed: its exit status is not the sample
	}
	return s, nil
}

func (e *env) sample(ctx context.Context, n int, elapsed, cpu time.Duration, rss int64, redisBefore float64) Sample {
	k := float64(n) / 1000
	return Sample{
		Rate:      float64(n) / elapsed.Seconds(),
		CPU:       cpu.Seconds() / k,
		RedisCPU:  (e.redisCPU(ctx) - redisBefore) / k,
		PeakRSSMB: float64(rss) / (1 << 20),
	}
}

func logFileName(f *os.File) string {
	if f == nil {
		return "(no log)"
	}
	return f.Name()
}

// saveCommandStats writes Redis's per-command call counts and times since
// the last reset, next to the profile of the process that caused them.
func (e *env) saveCommandStats(ctx context.Context, path string) {
	info, err := e.rdb.Info(ctx, "commandstats").Result()
	if err == nil {
		_ = os.WriteFile(path, []byte(info), 0o600)
	}
}

func (e *env) logFile(name string) string { return filepath.Join(e.cfg.Dir, name+".log") }

// reset empties Redis and returns its used memory then.
func (e *env) reset(ctx context.Context) (int64, error) {
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		return 0, err
	}
	return e.usedMemory(ctx), nil
}

func (e *env) usedMemory(ctx context.Context) int64 {
	return infoField(ctx, e.rdb, "memory", "used_memory")
}

func (e *env) redisCPU(ctx context.Context) float64 {
	info, _ := e.rdb.Info(ctx, "cpu").Result()
	total := 0.0
	for _, line := range strings.Split(info, "\r\n") {
		for _, f := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, f); ok {
				x, _ := strconv.ParseFloat(v, 64)
				total += x
			}
		}
	}
	return total
}

func infoField(ctx context.Context, rdb *redis.Client, section, field string) int64 {
	info, _ := rdb.Info(ctx, section).Result()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// procStats reads a process's CPU time and peak RSS (VmHWM) from /proc,
// keeping the previous figures when it is gone.
func procStats(pid int, cpu time.Duration, rss int64) (time.Duration, int64) {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) > 12 {
			utime, _ := strconv.ParseInt(fields[11], 10, 64)
			stime, _ := strconv.ParseInt(fields[12], 10, 64)
			cpu = time.Duration(utime+stime) * 10 * time.Millisecond
		}
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = max(rss, kb*1024)
			}
		}
		_ = f.Close() // read only: nothing to lose
	}
	return cpu, rss
}

// fileName turns a pass name into a file name: "work/bare asynq" becomes
// "work-bare-asynq".
func fileName(pass string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '-'
		}
		return r
	}, pass)
}

func writeIDs(path string, n int, base int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		w.WriteString(strconv.FormatInt(base+int64(i)*13, 10))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil { // bufio keeps the first write error for Flush
		_ = f.Close() // the write's error is the one to report
		return err
	}
	return f.Close()
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

func freeAddr() (string, error) {
	p, err := freePort()
	return fmt.Sprintf("127.0.0.1:%d", p), err
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// write prints the medians and the ratios the targets are about.
func (r Result) write(cfg Config) {
	med := func(name string, f func(Sample) float64) float64 {
		var xs []float64
		for _, s := range r[name] {
			xs = append(xs, f(s))
		}
		if len(xs) == 0 {
			return 0
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	rate := func(s Sample) float64 { return s.Rate }
	tw := tabwriter.NewWriter(cfg.Out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "pass (median of %d)\tids/s\tCPU s/1000\tRedis CPU s/1000\tpeak RSS MB\tRedis B/id after\t\n", cfg.Runs)
	names := make([]string, 0, len(r))
	for name := range r {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%.3f\t%.1f\t%.0f\t\n", name, med(name, rate),
			med(name, func(s Sample) float64 { return s.CPU }), med(name, func(s Sample) float64 { return s.RedisCPU }),
			med(name, func(s Sample) float64 { return s.PeakRSSMB }), med(name, func(s Sample) float64 { return s.MemPerID }))
	}
	_ = tw.Flush() // to the terminal, like every line above
	// Each ratio line also gives the ratio of every run's pair of passes,
	// so that the noise between runs shows next to the median.
	ratio := func(what, pass, other, target string, f func(Sample) float64) {
		ours, them := pass+"/coze-eraser", pass+"/"+other
		var perRun []string
		for i := range min(len(r[ours]), len(r[them])) {
			perRun = append(perRun, fmt.Sprintf("%.2f", f(r[ours][i])/f(r[them][i])))
		}
		fmt.Fprintf(cfg.Out, "%s, coze-eraser / %s: %.2f (target %s; per run %s)\n",
			what, other, med(ours, f)/med(them, f), target, strings.Join(perRun, ", "))
	}
	memPerID := func(s Sample) float64 { return s.MemPerID }
	fmt.Fprintln(cfg.Out)
	ratio("enqueue rate", "enqueue", "bare asynq", "at least 0.90", rate)
	ratio("work-down rate", "work", "bare asynq", "at least 0.90", rate)
	ratio("Redis memory per pending task", "enqueue", "bare asynq", "at most 1.10", memPerID)
	ratio("work-down rate", "work", upFrontSide, "at least 0.95", rate)
	for _, name := range names {
		if strings.HasPrefix(name, "enqueue/coze-eraser") && name != "enqueue/"+upFrontSide {
			fmt.Fprintf(cfg.Out, "Redis bytes per pending id, %s: %.0f (target at most 64)\n", strings.TrimPrefix(name, "enqueue/"), med(name, memPerID))
		}
	}
	fmt.Fprintf(cfg.Out, "Redis bytes per pending id with its task made up front (as before feeding): %.0f\n", med("enqueue/"+upFrontSide, memPerID))
}

// behindPass enqueues cfg.Behind ids into the default queue and starts a
// worker at cfg.BehindRate on the default queue (weight 1) and gdpr
// (weight 6). While it works them, it enqueues a batch of 10 ids behind
// them in each queue and notes how long each took from the start of its
// enqueue to its first outcome.
func (e *env) behindPass(ctx context.Context, res Result) error {
	n := e.cfg.Behind
	base, err := e.reset(ctx)
	if err != nil {
		return err
	}
	path, err := e.newIDs(n)
	if err != nil {
		return err
	}
	enq, err := e.measure(ctx, "enqueue/behind", e.ours().enqueue(path), n, nil, "")
	if err != nil {
		return err
	}
	enq.MemPerID = float64(e.usedMemory(ctx)-base) / float64(n)
	res[fmt.Sprintf("enqueue/coze-eraser of %d ids to work behind", n)] = []Sample{enq}
	logFile, err := os.Create(e.logFile("worker-behind"))
	if err != nil {
		return err
	}
	defer logFile.Close() //nolint:errcheck // the worker's log: a lost tail is a short log, not a wrong result
	worker := exec.CommandContext(ctx, e.cfg.Binary, "worker", "--redis-url", e.redisURL, "--coze-base-url", e.fakeURL,
		"--rate", strconv.Itoa(e.cfg.BehindRate), "--concurrency", strconv.Itoa(max(e.cfg.Concurrency, 1)),
		"--queues", "default=1,gdpr=6", "--metrics-addr", "", "--log-format", "json")
	worker.Env = append(os.Environ(), "COZE_API_TOKEN=pat_bench")
	worker.Stdout, worker.Stderr = logFile, logFile
	if err := worker.Start(); err != nil {
		return err
	}
	defer func() {
		_ = worker.Process.Signal(syscall.SIGTERM)
		_ = worker.Wait()
	}()
	led := ledger.New(e.rdb)
	finished := func(batch string) func() bool {
		return func() bool {
			b, _, _ := led.Batch(ctx, batch)
			return b.Finished() > 0
		}
	}
	if err := waitUntil(ctx, time.Minute, finished("bench")); err != nil {
		return fmt.Errorf("the worker made no progress on the big batch (see %s): %w", logFileName(logFile), err)
	}
	for _, q := range []string{"default", "gdpr"} {
		small, err := e.newIDs(10)
		if err != nil {
			return err
		}
		batch := "behind-" + q
		start := time.Now()
		out, err := exec.CommandContext(ctx, e.cfg.Binary, "enqueue", "--file", small, "--batch", batch, "--queue", q,
			"--redis-url", e.redisURL).CombinedOutput()
		if err != nil {
			return fmt.Errorf("enqueue behind: %w: %s", err, out)
		}
		enqueued := time.Since(start)
		if err := waitUntil(ctx, time.Minute, finished(batch)); err != nil {
			return fmt.Errorf("no outcome for a batch behind %d pending ids in %s: %w", n, q, err)
		}
		e.notes = append(e.notes, fmt.Sprintf("first outcome of a batch of 10 ids enqueued behind %d pending ids, queue %s: "+
			"%.2f s after its enqueue began (the enqueue took %.2f s; target under 5 s)", n, q, time.Since(start).Seconds(), enqueued.Seconds()))
	}
	return nil
}
