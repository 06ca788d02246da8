package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

func (a *app) reportCommand() *cobra.Command {
	var (
		rf     redisFlags
		format string
		output string
	)
	cmd := &cobra.Command{
		Use:   "report BATCH",
		Short: "Write a batch's proof of erasure: one row per id",
		Long: `Write a batch's proof of erasure, one row per id:

  conversation_id,outcome,code,logid,attempts,finished_at

logid is the log id of the final attempt, the successful DELETE's included:
Coze support can trace each one. CSV starts with the batch's summary (name,
note, state, created, due and completion times, tallies) as "# " comment
lines; JSONL ends with a {"summary": …} line. Rows come in no particular
order. A CSV cell that starts with =, +, -, @, a tab or a CR (a log id is
the API's choice) gets a leading ', so that a spreadsheet shows it as text;
JSONL has every string exact. The report is streamed: a batch of millions
of ids takes little memory.`,
		Example: `  coze-eraser report gdpr-2026-118 --output gdpr-2026-118.csv
  coze-eraser report cleanup-2026-11 --format jsonl | gzip > proof.jsonl.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "csv" && format != "jsonl" {
				return setupError("--format %q: use csv or jsonl", format)
			}
			rdb, err := rf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer rdb.Close()
			return a.writeReport(cmd.Context(), ledger.New(rdb), args[0], format, output)
		},
	}
	rf.register(cmd, 0)
	cmd.Flags().StringVar(&format, "format", "csv", "output format: "+strings.Join(report.ProofFormats, ", "))
	cmd.Flags().StringVar(&output, "output", "", "write to this file instead of standard output")
	return cmd
}

// writeReport writes to a temporary file beside output and renames it once
// complete, so a half-written proof never stands under the final name.
func (a *app) writeReport(ctx context.Context, led *ledger.Ledger, batch, format, output string) error {
	if output == "" || output == "-" {
		return reportError(report.WriteProof(ctx, led, batch, format, a.stdout, time.Now()))
	}
	tmp, err := os.CreateTemp(dirOf(output), ".report-*")
	if err != nil {
		return setupError("--output: %v", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // fails once renamed: nothing left to remove
	if err := report.WriteProof(ctx, led, batch, format, tmp, time.Now()); err != nil {
		_ = tmp.Close() // the write's error is the one to report
		return reportError(err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

// reportError gives a report's errors their exit status: no such batch is
// a setup error; a lost batch (no proof exists) exits 1.
func reportError(err error) error {
	switch {
	case errors.Is(err, report.ErrNoBatch):
		return setupError("%v", err)
	case errors.Is(err, ledger.ErrBatchLost):
		return &exitError{code: exitPartial, err: err}
	}
	return err
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, os.PathSeparator); i >= 0 {
		return path[:i+1]
	}
	return "."
}
