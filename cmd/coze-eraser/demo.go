package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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

The embedded Redis keeps nothing after the demo exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runDemo(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.ids, "ids", 3000, "how many conversation ids to generate")
	fl.IntVar(&f.concurrency, "concurrency", 50, "tasks worked at once")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:9464", "address for /metrics while the demo runs (another free port if taken)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the fake's random faults")
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
	return a.printDemoFailures(ctx, rdb, b.Name)
}

// printDemoFailures shows a few failure records: what an operator would
// send to Coze support.
func (a *app) printDemoFailures(ctx context.Context, rdb *redis.Client, batch string) error {
	w, err := report.NewFailureWriter(a.stdout, "table")
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "\nsome failure records (coze-eraser failures list shows them all):")
	shown := 0
	err = ledger.New(rdb).Failures(ctx, ledger.Filter{Batch: batch}, func(r ledger.Failure) error {
		if shown < 3 && r.Outcome == ledger.Failed || shown >= 3 && shown < 6 && r.Outcome == ledger.NotFound {
			shown++
			return w.Write(r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return w.Flush()
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
