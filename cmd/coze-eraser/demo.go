package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/runner"
	"github.com/coze-eraser/coze-eraser/worker"
)

type demoFlags struct {
	ids         int
	concurrency int
	metricsAddr string
	seed        uint64
	outDir      string
}

func (a *app) demoCommand() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See the whole pipeline work in seconds: no Redis, no token, no network",
		Long: `Run 'coze-eraser run' on generated ids against the fake Coze API, in this
process, with an embedded Redis: the real enqueue, worker, ledger and report.
The fake injects rate limits, 5xx answers, not-found ids, lost answers and
one auth outage. The demo prints the tallies, a few failure rows with their
log ids, and where the metrics were.

The embedded Redis keeps nothing after the demo exits, so 'failures list'
cannot find the demo's rows afterwards: the demo writes every failure row
(failures.csv) and the proof of erasure (proof.csv) to --out-dir, by
default a new temporary directory, and prints their paths.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runDemo(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.ids, "ids", 3000, "how many conversation ids to generate")
	fl.IntVar(&f.concurrency, "concurrency", 50, "tasks worked at once")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:9464", "address for /metrics while the demo runs (another free port if taken)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the fake's random faults")
	fl.StringVar(&f.outDir, "out-dir", "", "directory for the failure rows and the proof, created if missing (default: a new temporary directory)")
	return cmd
}

// demoFaults is the mix the demo's fake API injects.
var demoFaults = map[cozetest.Fault]float64{
	cozetest.RateLimited:           0.01,
	cozetest.RateLimitedRetryAfter: 0.0005,
	cozetest.SystemLimit:           0.005,
	cozetest.BadGateway:            0.02,
	cozetest.InternalError:         0.02,
	cozetest.NotFound:              0.02,
	cozetest.ConnReset:             0.005,
	cozetest.LostAnswer:            0.01,
}

func (a *app) runDemo(ctx context.Context, f *demoFlags) error {
	if f.ids < 1 || f.ids > 1_000_000 {
		return setupError("--ids %d: use 1 to 1000000", f.ids)
	}
	if f.concurrency < 1 || f.concurrency > maxConcurrency {
		return setupError("--concurrency %d: must be 1 to %d", f.concurrency, maxConcurrency)
	}
	outDir, err := demoOutDir(f.outDir)
	if err != nil {
		return err
	}
	mini, err := miniredis.Run()
	if err != nil {
		return setupError("embedded Redis: %v", err)
	}
	defer mini.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	defer rdb.Close()

	fake := cozetest.NewServer(cozetest.WithSeed(f.seed), cozetest.WithFaults(demoFaults), cozetest.WithoutCallLog())
	defer fake.Close()
	ids := demoIDs(f.ids)
	for _, id := range ids[:min(5, len(ids))] {
		fake.ScriptForever(id, cozetest.BadParameter) // a few permanent failures to show
	}
	stopBlip := authBlip(ctx, fake, int64(f.ids/3))
	defer stopBlip()

	api, err := coze.NewClient(fake.URL, coze.StaticToken("pat_demo"), coze.WithTimeout(2*time.Second))
	if err != nil {
		return setupError("%v", err)
	}
	ln, err := listenMetrics(f.metricsAddr, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "demo: %d generated conversation ids, a fake Coze API injecting faults, and an embedded Redis\n", f.ids)
	fmt.Fprintf(a.stdout, "demo: the embedded Redis keeps nothing after exit; metrics at http://%s/metrics while it runs\n", ln.Addr())

	logs := slog.New(slog.NewTextHandler(io.Discard, nil))
	progress, err := a.runToEnd(ctx, runJob{
		rdb: rdb,
		worker: worker.Config{
			API:              api,
			Concurrency:      f.concurrency,
			RetryBackoff:     worker.Backoff{Base: 20 * time.Millisecond, Cap: 500 * time.Millisecond},
			RateLimitBackoff: worker.Backoff{Base: 50 * time.Millisecond, Cap: time.Second},
			AuthProbe:        worker.Backoff{Base: 100 * time.Millisecond, Cap: time.Second},
			ShutdownTimeout:  2 * time.Second,
			PollInterval:     50 * time.Millisecond,
			ForwardInterval:  100 * time.Millisecond,
			Logger:           logs,
		},
		batch:   "demo",
		opts:    []enqueue.Option{enqueue.MaxRetry(10)},
		input:   runner.Input{IDs: slices.Values(ids)},
		metrics: ln,
		every:   time.Second,
		log:     logs,
	})
	if err != nil {
		return &exitError{code: exitPartial, err: err}
	}
	b := progress.Batch
	fmt.Fprintf(a.stdout, "\ndone in %.1fs: total=%d deleted=%d not_found=%d failed=%d (%d API calls, %s)\n",
		progress.Elapsed.Seconds(), b.Total, b.Deleted, b.NotFound, b.Failed, fake.Counts()["total"], answerSummary(fake.Counts()))
	return a.saveDemoResults(ctx, rdb, b.Name, outDir)
}

// demoOutDir makes the directory of --out-dir, or a new temporary one.
func demoOutDir(dir string) (string, error) {
	if dir == "" {
		dir, err := os.MkdirTemp("", "coze-eraser-demo-")
		if err != nil {
			return "", setupError("--out-dir: a temporary directory: %v", err)
		}
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", setupError("--out-dir: %v", err)
	}
	return dir, nil
}

// saveDemoResults shows a few failure records (what an operator would send
// to Coze support) and writes all of them, and the proof, to files in dir:
// the embedded Redis that holds them is gone once the demo exits.
func (a *app) saveDemoResults(ctx context.Context, rdb *redis.Client, batch, dir string) error {
	led := ledger.New(rdb)
	failuresPath := filepath.Join(dir, "failures.csv")
	shown, total, err := a.writeDemoFailures(ctx, led, batch, failuresPath)
	if err != nil {
		return err
	}
	proofPath := filepath.Join(dir, "proof.csv")
	if err := writeDemoProof(ctx, led, batch, proofPath); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\n(%d of %d failure records shown; the embedded Redis is gone when the demo exits, so "+
		"'failures list' cannot show them: these files keep them)\n", shown, total)
	fmt.Fprintf(a.stdout, "failure rows (%d): %s\n", total, failuresPath)
	fmt.Fprintf(a.stdout, "proof of erasure: %s\n", proofPath)
	return nil
}

// writeDemoProof writes batch's proof of erasure to path as CSV.
func writeDemoProof(ctx context.Context, led *ledger.Ledger, batch, path string) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // it lists conversation ids
	if err != nil {
		return setupError("--out-dir: %v", err)
	}
	defer fh.Close() //nolint:errcheck // for the early returns; success returns Close's error
	if err := report.WriteProof(ctx, led, batch, "csv", fh, time.Now()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return fh.Close()
}

// writeDemoFailures writes every failure record of batch to path as CSV and
// a few of them to standard output as a table.
func (a *app) writeDemoFailures(ctx context.Context, led *ledger.Ledger, batch, path string) (shown, total int, err error) {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // it lists conversation ids
	if err != nil {
		return 0, 0, setupError("--out-dir: %v", err)
	}
	defer fh.Close() //nolint:errcheck // for the early returns; success returns Close's error
	all, _ := report.NewFailureWriter(fh, "csv")
	table, _ := report.NewFailureWriter(a.stdout, "table")
	fmt.Fprintln(a.stdout, "\nsome failure records:")
	err = led.Failures(ctx, ledger.Filter{Batch: batch}, func(r ledger.Failure) error {
		total++
		if shown < 3 && r.Outcome == ledger.Failed || shown >= 3 && shown < 6 && r.Outcome == ledger.NotFound {
			shown++
			if err := table.Write(r); err != nil {
				return err
			}
		}
		return all.Write(r)
	})
	if err != nil {
		return shown, total, err
	}
	if err := table.Flush(); err != nil {
		return shown, total, err
	}
	if err := all.Flush(); err != nil {
		return shown, total, fmt.Errorf("%s: %w", path, err)
	}
	return shown, total, fh.Close()
}

func answerSummary(counts map[string]int64) string {
	return fmt.Sprintf("%d rate limited, %d 5xx/5000, %d lost or reset, %d rejected token",
		counts["429"]+counts["429-retry-after"]+counts["4009"], counts["502"]+counts["5000"],
		counts["lost"]+counts["reset"], counts["unauthorized"])
}

// authBlip takes the fake's auth down for half a second once it has
// answered after calls, to show the worker pausing and resuming by itself.
func authBlip(ctx context.Context, fake *cozetest.Server, after int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for fake.Counts()["total"] < after {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		fake.SetAuthDown(true)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
		fake.SetAuthDown(false)
	}()
	return cancel
}

// demoIDs returns n distinct ids shaped like real ones.
func demoIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.FormatInt(7379996104798150000+int64(i)*7919, 10)
	}
	return ids
}
