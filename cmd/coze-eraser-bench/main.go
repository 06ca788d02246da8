// Command coze-eraser-bench measures coze-eraser against what you would
// otherwise write with bare asynq, on this machine, in one run on one
// redis-server and a zero-latency fake API, each side in its own process.
//
//	go build -o bin/ ./cmd/coze-eraser ./cmd/coze-eraser-bench
//	bin/coze-eraser-bench --ids 50000 --runs 3 --big 2000000
//
// It is a command of its own so that the product binary carries no
// benchmark or bare-asynq code. It runs the coze-eraser binary given by
// --coze-eraser (default: the one beside it, else the one on PATH) for the
// product's side, and itself (the hidden bare-enqueue and bare-worker
// commands) for asynq's.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/internal/benchrun"
	"github.com/coze-eraser/coze-eraser/internal/cpuprofile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := cpuprofile.Start("coze-eraser-bench")
	err := rootCommand().ExecuteContext(ctx)
	stop()
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "coze-eraser-bench:", err)
		os.Exit(2)
	}
}

func rootCommand() *cobra.Command {
	var cfg benchrun.Config
	var product string
	cmd := &cobra.Command{
		Use:   "coze-eraser-bench",
		Short: "Measure coze-eraser against bare asynq on this machine",
		Long: `Measure coze-eraser against what you would otherwise write with bare asynq, in
one run on one redis-server (started for the bench; redis-server must be on
PATH) and a zero-latency fake API, each side in its own process:

  - enqueue --ids ids from a file with 'coze-eraser enqueue', and with a bare
    asynq Client.Enqueue loop of 16 goroutines;
  - work them down with 'coze-eraser worker --rate 0' (ledger, batch tallies,
    metrics, JSON logs, no budget) and with a bare asynq server whose handler
    only sends the DELETE, both at --concurrency;
  - Redis memory per pending task and per finished record, peak RSS, and CPU
    seconds per 1,000 deletions of each side and of Redis.

Each pass runs --runs times, alternating which side goes first; the table
shows medians and the ratios the project's targets are about.`,
		Example:       `  coze-eraser-bench --ids 50000 --runs 3 --big 2000000`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.IDs < 1 {
				return fmt.Errorf("--ids %d: must be 1 or more", cfg.IDs)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if cfg.Binary, err = productBinary(product, self); err != nil {
				return err
			}
			cfg.BareBinary, cfg.Out = self, cmd.OutOrStdout()
			_, err = benchrun.Run(cmd.Context(), cfg)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&product, "coze-eraser", "", "the coze-eraser binary to measure (default: the one beside this command, else the one on PATH)")
	fl.IntVar(&cfg.IDs, "ids", 50000, "ids per pass")
	fl.IntVar(&cfg.Runs, "runs", 3, "passes per side; figures are medians")
	fl.IntVar(&cfg.Concurrency, "concurrency", 50, "concurrency of both workers")
	fl.IntVar(&cfg.RSSConcurrency, "rss-concurrency", 200, "concurrency of an extra pass whose peak RSS is reported (0 skips it)")
	fl.IntVar(&cfg.Big, "big", 0, "also enqueue this many ids from a file and report time and peak RSS (e.g. 2000000)")
	fl.IntVar(&cfg.Behind, "behind", 0, "also work a batch of this many ids and time a small batch enqueued behind it to its first outcome (e.g. 2000000)")
	fl.IntVar(&cfg.BehindRate, "behind-rate", 100, "the worker's rate (calls/s) in the --behind pass")
	fl.StringVar(&cfg.ProfileDir, "profile", "", "write a CPU profile (pprof) of every measured process into this directory")
	fl.StringVar(&cfg.Dir, "dir", "", "where to keep id files and logs (default a temporary directory)")
	cmd.AddCommand(bareEnqueueCommand(), bareWorkerCommand())
	return cmd
}

// productBinary finds the coze-eraser to measure: the one given, else the
// one beside this command (go build -o bin/ builds both there), else the
// one on PATH.
func productBinary(given, self string) (string, error) {
	if given != "" {
		return given, nil
	}
	beside := filepath.Join(filepath.Dir(self), "coze-eraser")
	if info, err := os.Stat(beside); err == nil && info.Mode().IsRegular() {
		return beside, nil
	}
	if path, err := exec.LookPath("coze-eraser"); err == nil {
		return path, nil
	}
	return "", errors.New("no coze-eraser binary beside this command or on PATH: " +
		"build both (go build -o bin/ ./cmd/coze-eraser ./cmd/coze-eraser-bench) or give --coze-eraser PATH")
}

// bareEnqueueCommand and bareWorkerCommand are the bench's bare asynq side,
// run as processes of their own; they are not for users.
func bareEnqueueCommand() *cobra.Command {
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

func bareWorkerCommand() *cobra.Command {
	var redisURL, baseURL string
	var concurrency int
	cmd := &cobra.Command{
		Use:    "bare-worker",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchrun.BareWorker(cmd.Context(), redisURL, baseURL, os.Getenv("COZE_API_TOKEN"), concurrency)
		},
	}
	cmd.Flags().StringVar(&redisURL, "redis-url", "", "Redis")
	cmd.Flags().StringVar(&baseURL, "coze-base-url", "", "API")
	cmd.Flags().IntVar(&concurrency, "concurrency", 50, "concurrency")
	return cmd
}
