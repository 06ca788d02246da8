package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

type statusFlags struct {
	redis       redisFlags
	format      string
	watch       bool
	limit       int
	dismissLost bool
}

func (a *app) statusCommand() *cobra.Command {
	var f statusFlags
	cmd := &cobra.Command{
		Use:   "status [BATCH]",
		Short: "Show how far batches are: tallies, rate, ETA, state",
		Long: `Show batches, newest first, or one batch: created and due times, total,
deleted, not_found, failed and pending ids, the rate over the last minute,
the ETA, and the state: open, complete, overdue (ids pending past the due
time), verifying (a data subject's batch whose deletions are done, listed
again to see that none is still there), empty (its input was only invalid
lines: nothing to erase), or lost
(Redis lost the batch's records: enqueue its input again, or dismiss the loss
with --dismiss-lost once it is dealt with otherwise). When the pending ids
wait in queues no live worker serves, the ETA says "stalled: no worker serves
queue Q".

--watch redraws every second: a progress bar on a terminal, plain lines
otherwise. --format json prints the same fields for programs.`,
		Example: `  coze-eraser status
  coze-eraser status gdpr-2026-118 --watch`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runStatus(cmd.Context(), &f, args) },
	}
	f.redis.register(cmd, 0)
	cmd.Flags().StringVar(&f.format, "format", "table", "output format: "+strings.Join(report.StatusFormats, ", "))
	cmd.Flags().BoolVar(&f.watch, "watch", false, "redraw every second until interrupted (or until the batch completes)")
	cmd.Flags().IntVar(&f.limit, "limit", 50, "show at most this many batches")
	cmd.Flags().BoolVar(&f.dismissLost, "dismiss-lost", false,
		"with BATCH: stop reporting that Redis lost it (status, /readyz, metrics), once the loss is dealt with some other way than enqueueing its input again")
	return cmd
}

func (a *app) runStatus(ctx context.Context, f *statusFlags, args []string) error {
	if f.format != "table" && f.format != "json" {
		return setupError("--format %q: use table or json", f.format)
	}
	if f.limit < 0 {
		// Redis would read -5 as "all but the oldest four".
		return setupError("--limit %d: must be 0 (all batches) or more", f.limit)
	}
	if f.dismissLost && len(args) != 1 {
		return setupError("--dismiss-lost needs the batch: coze-eraser status BATCH --dismiss-lost")
	}
	rdb, err := f.redis.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	led := ledger.New(rdb)
	if f.dismissLost {
		return a.dismissLost(ctx, led, args[0])
	}
	readStatus := func() ([]ledger.Batch, error) {
		if len(args) == 0 {
			return report.ReadBatches(ctx, rdb, led, f.limit)
		}
		b, ok, err := report.ReadBatch(ctx, rdb, led, args[0])
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, setupError("%v", report.NoBatchError(args[0]))
		}
		return []ledger.Batch{b}, nil
	}
	read := func() ([]ledger.Batch, error) {
		batches, err := readStatus()
		if err == nil && f.format == "json" && len(args) == 0 {
			err = report.WithHistory(ctx, led, batches)
		}
		return batches, err
	}
	if !f.watch {
		batches, err := read()
		if err != nil {
			return err
		}
		return report.WriteStatus(a.stdout, batches, time.Now(), f.format)
	}
	return a.watchStatus(ctx, read, len(args) == 1, f.format)
}

// dismissLost takes a lost batch off the lost list.
func (a *app) dismissLost(ctx context.Context, led *ledger.Ledger, batch string) error {
	ok, err := led.DismissLost(ctx, batch)
	if err != nil {
		return err
	}
	if !ok {
		return setupError("--dismiss-lost: batch %q is not lost", batch)
	}
	fmt.Fprintf(a.stdout, "batch %s: loss dismissed; the outcomes kept since the loss stay until they expire\n", report.Printable(batch))
	return nil
}

// watchStatus redraws every second. One batch on a terminal is a progress
// bar redrawn in place; otherwise each refresh prints plain lines (or a
// JSON array), which logs and pipes can keep.
func (a *app) watchStatus(ctx context.Context, read func() ([]ledger.Batch, error), single bool, format string) error {
	tty := isTerminal(a.stdout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		batches, err := read()
		if err != nil {
			return err
		}
		now := time.Now()
		switch {
		case format == "json":
			err = report.WriteStatus(a.stdout, batches, now, format)
		case single && tty:
			fmt.Fprintf(a.stdout, "\r\033[K%s", report.ProgressBar(batches[0], now, terminalWidth()))
		case tty:
			fmt.Fprint(a.stdout, "\033[H\033[2J")
			err = report.WriteStatus(a.stdout, batches, now, "table")
		default:
			for _, b := range batches {
				fmt.Fprintln(a.stdout, report.ProgressLine(b, now))
			}
		}
		if err != nil {
			return err
		}
		if single && watchDone(batches[0], now) {
			if tty {
				fmt.Fprintln(a.stdout)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(a.stdout)
			}
			return nil
		case <-tick.C:
		}
	}
}

// watchDone reports whether a watched batch is at its end: complete, lost,
// or empty once its enqueue sealed it (a batch is empty for a moment
// while its first ids are added).
func watchDone(b ledger.Batch, now time.Time) bool {
	switch b.State(now) {
	case ledger.StateComplete, ledger.StateLost:
		return true
	case ledger.StateEmpty:
		return !b.CompletedAt.IsZero()
	}
	return false
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// terminalWidth reads $COLUMNS, defaulting to 100.
func terminalWidth() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("COLUMNS"), &n); err == nil && n > 40 {
		return n
	}
	return 100
}
