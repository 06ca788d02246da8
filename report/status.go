package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// StatusFormats lists the formats WriteStatus accepts.
var StatusFormats = []string{"table", "json"}

// Status is a batch as `coze-eraser status --format json` shows it.
type Status struct {
	Summary
	// RatePerSecond is the ids finished per second over the last minute.
	RatePerSecond float64 `json:"rate_per_second"`
	// ETASeconds is how long the pending ids will take at that rate; null
	// when nothing is finishing.
	ETASeconds *float64 `json:"eta_seconds"`
	// UnservedQueues are the batch's queues that no live worker serves,
	// when the reader asked (ledger.Batch.UnservedQueues); with ids
	// pending, they wait there until a worker serves them.
	UnservedQueues []string `json:"unserved_queues,omitempty"`
	// Verification is a data subject's batch's verification; absent for
	// other batches.
	Verification *StatusVerification `json:"verification,omitempty"`
}

// StatusOf states batch b at now, with its rate and ETA.
func StatusOf(b ledger.Batch, now time.Time) Status {
	s := Status{Summary: SummaryOf(b, now), RatePerSecond: math.Round(b.Rate(now)*100) / 100}
	if b.Pending() > 0 {
		s.UnservedQueues = b.UnservedQueues
	}
	if eta, ok := b.ETA(now); ok {
		secs := math.Round(eta.Seconds())
		s.ETASeconds = &secs
	}
	if v := b.Verification; v.State != ledger.VerificationNone {
		s.Verification = &StatusVerification{State: string(v.State), StillListed: v.StillListed}
	}
	return s
}

// WriteStatus writes batches as a table or as JSON (an array).
func WriteStatus(w io.Writer, batches []ledger.Batch, now time.Time, format string) error {
	switch format {
	case "json":
		out := make([]Status, len(batches))
		for i, b := range batches {
			out[i] = StatusOf(b, now)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BATCH\tSTATE\tCREATED\tDUE\tTOTAL\tDELETED\tNOT_FOUND\tFAILED\tPENDING\tCANCELLED\tRATE/S\tETA\tNOTE")
		for _, b := range batches {
			s := StatusOf(b, now)
			if s.LostAt != nil {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tRedis lost it at %s (%d outcomes kept since): enqueue its input again\n",
					Printable(b.Name), s.State, ShortTime(b.LostAt), b.LostOutcomes)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%s\t%s\n", Printable(b.Name), controlText(b, stateText(b, s.State)),
				ShortTime(b.CreatedAt), ShortTime(b.DueAt), b.Total, b.Deleted, b.NotFound, b.Failed, b.Pending(), b.Cancelled,
				s.RatePerSecond, etaText(b, now), Printable(b.Note))
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown format %q: use table or json", format)
}

// controlText adds "cancelled" to the state of a cancelled batch, and
// "paused" to that of a paused one whose state does not say it (past its
// due time it is overdue).
func controlText(b ledger.Batch, state string) string {
	if b.Control == ledger.ControlRunning || state == string(b.Control) {
		return state
	}
	return state + " (" + string(b.Control) + ")"
}

// ProgressLine is one plain line about a batch, for logs and for --watch
// when the output is not a terminal. A data subject's batch's line ends
// with its verification: "verification=STATE still_listed=N", and why it
// failed when it did.
func ProgressLine(b ledger.Batch, now time.Time) string {
	return fmt.Sprintf("%s %s: %d/%d done (%.1f%%) deleted=%d not_found=%d failed=%d pending=%d rate=%.1f/s eta=%s%s",
		now.UTC().Format(time.TimeOnly), Printable(b.Name), b.Finished(), b.Total, Percent(b), b.Deleted, b.NotFound, b.Failed,
		b.Pending(), b.Rate(now), etaText(b, now), verificationFields(b))
}

// ProgressBar draws a batch's progress in width columns for a terminal,
// and a data subject's batch's verification note ("verifying",
// "verified", "verification failed").
func ProgressBar(b ledger.Batch, now time.Time, width int) string {
	bar := max(width-60, 10)
	filled := int(float64(bar) * Percent(b) / 100)
	line := fmt.Sprintf("%s [%s%s] %5.1f%% %d/%d failed=%d %.0f/s ETA %s",
		Printable(b.Name), strings.Repeat("#", filled), strings.Repeat("-", bar-filled), Percent(b), b.Finished(), b.Total,
		b.Failed, b.Rate(now), etaText(b, now))
	if note := verificationNote(b); note != "" {
		line += " " + note
	}
	return line
}

// Percent is the share of b finished, floored to a tenth of a percent:
// rounding would show 100.0% with an id still pending (3999 of 4000).
// Integer arithmetic, so no float error can lift 99.9 to 100.0 either.
func Percent(b ledger.Batch) float64 {
	if b.Total <= 0 {
		return 0
	}
	return float64(int64(b.Finished())*1000/int64(b.Total)) / 10
}

// etaText is the ETA of b's pending ids, or why there is none: "stalled"
// when they wait in queues no live worker serves (all of the batch's
// queues, or some while nothing finishes), "?" when nothing finishes for
// another reason.
func etaText(b ledger.Batch, now time.Time) string {
	if b.Pending() == 0 {
		return "-"
	}
	if b.Control == ledger.ControlPaused {
		return "paused" // held on purpose: neither an ETA nor a stall
	}
	eta, ok := b.ETA(now)
	if len(b.UnservedQueues) > 0 && (!ok || len(b.UnservedQueues) >= len(b.Queues)) {
		return "stalled: no worker serves queue " + Printable(strings.Join(b.UnservedQueues, ", "))
	}
	if !ok {
		return "?"
	}
	return eta.Round(time.Second).String()
}

// ShortTime is a time as status shows it: UTC to the minute, "-" for none.
func ShortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}
