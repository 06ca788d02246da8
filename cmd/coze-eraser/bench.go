package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/internal/benchrun"
)

func (a *app) benchCommand() *cobra.Command {
	var cfg benchrun.Config
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline against bare asynq on this machine",
		Long: `Measure coze-eraser against what you would otherwise write with bare asynq, in
one run on one redis-server (started for the bench; redis-server must be on
PATH) and a zero-latency fake API, each side in its own process:

  - enqueue --ids ids from a file with 'coze-eraser enqueue', and with a bare
    asynq Client.Enqueue loop of 16 goroutines;
  - work them down with 'coze-eraser worker' (ledger, batch tallies,
    metrics, JSON logs, no limiter) and with a bare asynq server whose handler
    only sends the DELETE, both at --concurrency;
  - Redis memory per pending task and per finished record, peak RSS, and CPU
    seconds per 1,000 deletions of each side and of Redis.

Each pass runs --runs times, alternating which side goes first; the table
shows medians and the ratios the project's targets are about.`,
		Example: `  coze-eraser bench --ids 50000 --runs 3 --big 2000000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return setupError("%v", err)
			}
			cfg.Binary, cfg.Out = bin, a.stdout
			if cfg.IDs < 1 {
				return setupError("--ids %d: must be 1 or more", cfg.IDs)
			}
			_, err = benchrun.Run(cmd.Context(), cfg)
			return err
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.IDs, "ids", 50000, "ids per pass")
	fl.IntVar(&cfg.Runs, "runs", 3, "passes per side; figures are medians")
	fl.IntVar(&cfg.Concurrency, "concurrency", 50, "concurrency of both workers")
	fl.IntVar(&cfg.RSSConcurrency, "rss-concurrency", 200, "concurrency of an extra pass whose peak RSS is reported (0 skips it)")
	fl.IntVar(&cfg.Big, "big", 0, "also enqueue this many ids from a file and report time and peak RSS (e.g. 2000000)")
	fl.StringVar(&cfg.ProfileDir, "profile", "", "write a CPU profile (pprof) of every measured process into this directory")
	fl.StringVar(&cfg.Dir, "dir", "", "where to keep id files and logs (default a temporary directory)")
	cmd.AddCommand(a.bareEnqueueCommand(), a.bareWorkerCommand())
	return cmd
}

// bareEnqueueCommand and bareWorkerCommand are the bench's bare asynq side,
// run as processes of their own; they are not for users.
func (a *app) bareEnqueueCommand() *cobra.Command {
	var redisURL, file string
	var goroutines int
	cmd := &cobra.Command{
		Use:    "bare-enqueue",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchrun.BareEnqueue(cmd.Context(), redisURL, file, goroutines)
		},
	}
	cmd.Flags().StringVar(&redisURL, "redis-url", "", "Redis")
	cmd.Flags().StringVar(&file, "file", "", "ids")
	cmd.Flags().IntVar(&goroutines, "goroutines", 16, "enqueue goroutines")
	return cmd
}

func (a *app) bareWorkerCommand() *cobra.Command {
	var redisURL, baseURL string
	var concurrency int
	cmd := &cobra.Command{
		Use:    "bare-worker",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchrun.BareWorker(cmd.Context(), redisURL, baseURL, a.env.get("COZE_API_TOKEN"), concurrency)
		},
	}
	cmd.Flags().StringVar(&redisURL, "redis-url", "", "Redis")
	cmd.Flags().StringVar(&baseURL, "coze-base-url", "", "API")
	cmd.Flags().IntVar(&concurrency, "concurrency", 50, "concurrency")
	return cmd
}
