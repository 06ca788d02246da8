package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/tasks"
)

func (a *app) failuresCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "failures",
		Short: "List and retry conversations that did not end deleted",
		Long: `The failure ledger keeps a record for every conversation that did not end
deleted: not_found, failed, or retrying while it still has retries. Each
record has the last code, msg, HTTP status and log id (what Coze support asks
for), the number of attempts, and the first and last attempt times.`,
	}
	cmd.AddCommand(a.failuresListCommand(), a.failuresRetryCommand())
	return cmd
}

type failureFilterFlags struct {
	batch   string
	outcome string
}

func (f *failureFilterFlags) register(cmd *cobra.Command, defaultOutcome string) {
	cmd.Flags().StringVar(&f.batch, "batch", "", "only this batch")
	cmd.Flags().StringVar(&f.outcome, "outcome", defaultOutcome, "only this outcome: not_found, failed or retrying")
}

func (f *failureFilterFlags) filter() (ledger.Filter, error) {
	filter := ledger.Filter{Batch: f.batch}
	if f.outcome != "" {
		o, err := ledger.ParseOutcome(f.outcome)
		if err != nil || o == ledger.Deleted {
			return filter, setupError("--outcome %q: use not_found, failed or retrying", f.outcome)
		}
		filter.Outcome = o
	}
	return filter, nil
}

// checkBatch refuses a --batch that Redis does not hold, as status and
// report do: an empty listing would read as "no failures". A lost batch
// is held (its kept outcomes may have failures).
func checkBatch(ctx context.Context, led *ledger.Ledger, batch string) error {
	if batch == "" {
		return nil
	}
	_, ok, err := led.BatchOrLost(ctx, batch)
	switch {
	case err != nil:
		return err
	case !ok:
		return setupError("--batch: %v", report.NoBatchError(batch))
	}
	return nil
}

func (a *app) failuresListCommand() *cobra.Command {
	var (
		rf     redisFlags
		ff     failureFilterFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Print the failure records",
		Long: `Print the failure records, oldest last attempt first.

CSV has the header
  conversation_id,batch,outcome,code,msg,http_status,logid,attempts,first_at,last_at
with times in RFC 3339, UTC; JSONL has the same fields, one object a line.

The API chooses msg and logid, so no format lets them act: a CSV cell that
starts with =, +, -, @, a tab or a CR gets a leading ' (a spreadsheet shows
it as text, not a formula), and the table writes control characters as Go
escapes (\x1b, \n). JSONL has every string exact.`,
		Example: `  coze-eraser failures list --outcome failed --format csv > failed.csv`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			w, err := report.NewFailureWriter(a.stdout, format)
			if err != nil {
				return setupError("--format: %v", err)
			}
			rdb, err := rf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer rdb.Close()
			led := ledger.New(rdb)
			if err := checkBatch(cmd.Context(), led, filter.Batch); err != nil {
				return err
			}
			if err := led.Failures(cmd.Context(), filter, w.Write); err != nil {
				return setupError("%v", err)
			}
			return w.Flush()
		},
	}
	rf.register(cmd, 0)
	ff.register(cmd, "")
	cmd.Flags().StringVar(&format, "format", "table", "output format: "+strings.Join(report.FailureFormats, ", "))
	return cmd
}

func (a *app) failuresRetryCommand() *cobra.Command {
	var (
		rf       redisFlags
		ff       failureFilterFlags
		maxRetry int
		dryRun   bool
	)
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Queue the selected failures again",
		Long: `Queue the selected failures again, in their own batch and queue, with a fresh
retry budget. A failed id's archived task is replaced; an id that already
has a task waiting is left alone. Use it after fixing what made them fail
(a permission, the account's balance).

--outcome retrying re-queues records left retrying without a task, as after
a retry run interrupted by a Redis outage.

The new tasks act as their batch's identity (its profile and session). A
batch that acted as an end user's session and completed has had its session
name erased from the ledger: its failures cannot be retried in it; enqueue
those ids in a new batch with --profile and --session.`,
		Example: `  coze-eraser failures retry --batch gdpr-2026-118`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := enqueue.CheckMaxRetry(maxRetry); err != nil {
				return setupError("--max-retry %d: %v", maxRetry, err)
			}
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			rdb, err := rf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer rdb.Close()
			if err := checkBatch(cmd.Context(), ledger.New(rdb), filter.Batch); err != nil {
				return err
			}
			client := enqueue.NewClient(rdb)
			defer client.Close()
			sum, err := client.RetryFailures(cmd.Context(), filter, dryRun, enqueue.MaxRetry(maxRetry))
			fmt.Fprintln(a.stdout, sum)
			if err != nil {
				return setupError("%v", err)
			}
			return nil
		},
	}
	rf.register(cmd, 0)
	ff.register(cmd, string(ledger.Failed))
	cmd.Flags().IntVar(&maxRetry, "max-retry", tasks.DefaultMaxRetry, "retry budget of the new tasks")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be retried, change nothing")
	return cmd
}
