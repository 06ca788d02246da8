package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

func (a *app) batchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "batch",
		Short: "Cancel, pause, resume a batch, or extend its due time",
		Long: `Steer a batch while it runs. Each action is kept, with its time and note, in
the batch's history, which status --format json and report show.

  cancel   its pending ids end "cancelled" (ids with an outcome keep it), its
           queued tasks are removed, and it completes, with its callback
  pause    its tasks are held: workers hand them back without calling the API
           or using up a retry; its due time still counts
  resume   lets a paused batch's tasks run again (within half a minute)
  extend   moves its due time later, at most 60 days past the original one
           (GDPR's extension by two more months), with the reason in --note

A missing, lost or complete batch is an error (exit 2).`,
	}
	cmd.AddCommand(
		a.batchActionCommand("cancel", "Cancel a batch: its pending ids end cancelled", func(ctx context.Context, c *enqueue.Client, name, note string) (string, error) {
			r, err := c.Cancel(ctx, name, note)
			if err != nil {
				return "", err
			}
			done := "it completes once the ids being added to it are sealed"
			if r.Completed {
				done = "it is complete"
			}
			return fmt.Sprintf("batch %s cancelled: %d pending ids ended cancelled, %d queued tasks removed; %s",
				name, r.Cancelled, r.TasksRemoved, done), nil
		}),
		a.batchActionCommand("pause", "Hold a batch's tasks without calling the API", func(ctx context.Context, c *enqueue.Client, name, note string) (string, error) {
			return "batch " + name + " paused: its due time still counts", c.Pause(ctx, name, note)
		}),
		a.batchActionCommand("resume", "Let a paused batch's tasks run again", func(ctx context.Context, c *enqueue.Client, name, note string) (string, error) {
			return "batch " + name + " resumed", c.Resume(ctx, name, note)
		}),
		a.batchExtendCommand(),
	)
	return cmd
}

// batchAction is one control action on the named batch; it returns the
// line to print.
type batchAction func(ctx context.Context, c *enqueue.Client, name, note string) (string, error)

func (a *app) batchActionCommand(use, short string, act batchAction) *cobra.Command {
	var (
		rf   redisFlags
		note string
	)
	cmd := &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.batchRun(cmd.Context(), &rf, args[0], note, act)
		},
	}
	rf.register(cmd, 0)
	cmd.Flags().StringVar(&note, "note", "", "why, kept in the batch's history")
	return cmd
}

func (a *app) batchExtendCommand() *cobra.Command {
	var (
		rf        redisFlags
		note, due string
	)
	cmd := &cobra.Command{
		Use:     "extend NAME --due RFC3339 --note REASON",
		Short:   "Move a batch's due time later (at most 60 days past the original)",
		Example: `  coze-eraser batch extend gdpr-118 --due 2027-02-01T00:00:00Z --note "complex request: several systems"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if due == "" {
				return setupError("--due: required: the new due time, RFC 3339")
			}
			t, err := time.Parse(time.RFC3339, due)
			if err != nil {
				return setupError("--due %q: not an RFC 3339 time (2027-02-01T00:00:00Z)", due)
			}
			if note == "" {
				return setupError("--note: required: the reason for the extension, which the requester must be given")
			}
			return a.batchRun(cmd.Context(), &rf, args[0], note, func(ctx context.Context, c *enqueue.Client, name, note string) (string, error) {
				old, err := c.Extend(ctx, name, t, note)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("batch %s due %s (was %s)", name, t.UTC().Format(time.RFC3339), old.Format(time.RFC3339)), nil
			})
		},
	}
	rf.register(cmd, 0)
	cmd.Flags().StringVar(&due, "due", "", "the new due time, RFC 3339")
	cmd.Flags().StringVar(&note, "note", "", "the reason for the extension (required)")
	return cmd
}

// batchRun connects, runs act on the batch and prints its line. Every
// refusal is exit 2, naming the batch.
func (a *app) batchRun(ctx context.Context, rf *redisFlags, name, note string, act batchAction) error {
	if err := enqueue.ValidateBatch(name); err != nil {
		return setupError("batch name %q: %v", name, err)
	}
	if err := enqueue.CheckNote(note); err != nil {
		return setupError("--note: %v", err)
	}
	rdb, err := rf.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	c := enqueue.NewClient(rdb)
	defer c.Close()
	line, err := act(ctx, c, name, note)
	switch {
	case errors.Is(err, ledger.ErrNoBatch):
		if b, ok, lerr := ledger.New(rdb).BatchOrLost(ctx, name); lerr == nil && ok && !b.LostAt.IsZero() {
			return setupError("%v", &ledger.LostError{Batch: name, Reason: "found lost at " + b.LostAt.Format(time.RFC3339)})
		}
		return setupError("%v", report.NoBatchError(name))
	case errors.Is(err, ledger.ErrBatchLost):
		return setupError("%v", err)
	case err != nil:
		return setupError("batch %s: %v", name, err)
	}
	fmt.Fprintln(a.stdout, line)
	return nil
}
