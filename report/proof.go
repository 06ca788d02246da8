package report

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// ProofCSVHeader is the header row of the CSV proof of erasure.
var ProofCSVHeader = []string{"conversation_id", "outcome", "code", "logid", "attempts", "finished_at"}

// ProofFormats lists the formats WriteProof accepts.
var ProofFormats = []string{"csv", "jsonl"}

// ErrNoBatch is returned for a batch that does not exist (or expired);
// [NoBatchError] wraps it with the batch's name.
var ErrNoBatch = errors.New("no batch")

// Summary is a batch's fields and tallies as a report states them.
type Summary struct {
	Batch       string     `json:"batch"`
	Note        string     `json:"note"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	DueAt       time.Time  `json:"due_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Total       int        `json:"total"`
	Deleted     int        `json:"deleted"`
	NotFound    int        `json:"not_found"`
	Failed      int        `json:"failed"`
	// Cancelled counts the ids a cancel of the batch ended (left out when
	// none).
	Cancelled int `json:"cancelled,omitempty"`
	Pending   int `json:"pending"`
	// Invalid counts the input lines refused as not conversation ids: a
	// batch in state "empty" had only those, and nothing to erase.
	Invalid     int       `json:"invalid"`
	GeneratedAt time.Time `json:"generated_at"`
	// LostAt is set when Redis lost the batch (state "lost"): its records
	// are gone, and LostOutcomes counts the outcomes recorded after it.
	LostAt       *time.Time `json:"lost_at,omitempty"`
	LostOutcomes int        `json:"lost_outcomes,omitempty"`
	// Profile is the identity the batch's deletions acted as ("default"
	// for a batch that named none).
	Profile string `json:"profile,omitempty"`
	// Session is [SessionHeld] while the batch holds the end user's
	// session name its deletions act as, and empty otherwise: a report
	// never shows the name, which is personal data.
	Session string `json:"session,omitempty"`
	// SessionHash is, once the ledger erased the session name (the batch
	// completed), its keyed hash (ledger.SessionHash): whoever holds the
	// key and the name can check which user the batch acted for.
	SessionHash string `json:"session_hash,omitempty"`
	// History is the batch's control actions (cancel, pause, resume,
	// extend), oldest first, when the reader read them.
	History []ledger.Action `json:"history,omitempty"`
}

// SessionHeld is what [Summary.Session] says while the ledger holds the
// batch's session name.
const SessionHeld = "held until the batch completes"

// SummaryOf states batch b at now.
func SummaryOf(b ledger.Batch, now time.Time) Summary {
	s := Summary{
		Batch: b.Name, Note: b.Note, State: string(b.State(now)),
		CreatedAt: b.CreatedAt, DueAt: b.DueAt,
		Total: b.Total, Deleted: b.Deleted, NotFound: b.NotFound, Failed: b.Failed, Pending: b.Pending(),
		Invalid: b.Invalid, GeneratedAt: now.UTC().Truncate(time.Second),
		Profile: b.Profile, SessionHash: b.SessionHash, Cancelled: b.Cancelled, History: b.History,
	}
	if b.HasSession {
		s.Session = SessionHeld
	}
	if !b.CompletedAt.IsZero() && b.Pending() == 0 && b.Verification.State != ledger.VerificationPending {
		at := b.CompletedAt
		s.CompletedAt = &at
	}
	if !b.LostAt.IsZero() {
		at := b.LostAt
		s.LostAt, s.LostOutcomes, s.CompletedAt = &at, b.LostOutcomes, nil
	}
	return s
}

// proofRow is one id in the JSONL proof.
type proofRow struct {
	ConversationID string     `json:"conversation_id"`
	Outcome        string     `json:"outcome"`
	Code           string     `json:"code"`
	LogID          string     `json:"logid"`
	Attempts       int        `json:"attempts"`
	FinishedAt     *time.Time `json:"finished_at"`
	// Msg is a failed id's last message: the API's, or "still listed" when
	// a data subject's verification found it (the failure record's msg).
	Msg string `json:"msg,omitempty"`
}

// WriteProof writes batch's proof of erasure to w: one row per id with its
// outcome, the final attempt's code and log id (the successful DELETE's too),
// the number of attempts and the finishing time (and, in JSONL, a failed
// id's message, such as "still listed"). CSV starts with the batch's
// summary as "# " comment lines (its identity among them: the profile, and
// whether the session name is held or its hash; never the name), then the
// header; JSONL ends with a
// {"summary": …} line. Rows come in no particular order. The batch is read a
// page at a time, so memory does not grow with it.
//
// A data subject's batch adds its listings and its verification: CSV
// comment lines "# discovery: bot=… connector=… pages=… found=… at=…
// log_ids=…" (one per listing; "# verification round N: …" for a
// verification round's) and "# verification: state=… rounds=…
// still_listed=… unverified=… reason="…" verified_at=…"; in JSONL, the
// summary's "discovery" (the discovery's listings) and "verification"
// ([ProofVerification]).
func WriteProof(ctx context.Context, led *ledger.Ledger, batch, format string, w io.Writer, now time.Time) error {
	b, ok, err := led.BatchOrLost(ctx, batch)
	if err != nil {
		return err
	}
	if !ok {
		return NoBatchError(batch)
	}
	if !b.LostAt.IsZero() {
		// What is left is no proof: never write one.
		return &ledger.LostError{Batch: batch, Reason: fmt.Sprintf("found lost at %s; %d outcomes recorded since are kept",
			b.LostAt.Format(time.RFC3339), b.LostOutcomes)}
	}
	listings, err := led.Listings(ctx, batch)
	if err != nil {
		return err
	}
	if b.History, err = led.History(ctx, batch); err != nil {
		return err
	}
	sum := proofSummary{Summary: SummaryOf(b, now)}
	sum.Discovery, sum.Verification = verificationOf(b, listings)
	bw := bufio.NewWriterSize(w, 64<<10)
	switch format {
	case "csv":
		err = writeCSVProof(ctx, led, sum, bw)
	case "jsonl":
		err = writeJSONLProof(ctx, led, sum, bw)
	default:
		return fmt.Errorf("unknown format %q: use csv or jsonl", format)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

func writeCSVProof(ctx context.Context, led *ledger.Ledger, s proofSummary, w *bufio.Writer) error {
	for _, kv := range append(summaryLines(s.Summary), listingLines(s.Discovery, s.Verification)...) {
		fmt.Fprintf(w, "# %s: %s\n", kv[0], commentText(kv[1]))
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(ProofCSVHeader); err != nil {
		return err
	}
	row := make([]string, 6)
	err := led.Entries(ctx, s.Batch, func(e ledger.Entry) error {
		row[0], row[1], row[2], row[3] = SafeCell(e.ConversationID), string(e.Outcome), numberCell(e.Code), SafeCell(e.LogID)
		row[4], row[5] = "", ""
		if e.Outcome.Terminal() {
			row[4], row[5] = strconv.Itoa(e.Attempts), rfc3339(e.FinishedAt)
		}
		return cw.Write(row)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// summaryLines are the CSV proof's comment lines: name and value. The
// session lines are there only for a batch that had a session.
func summaryLines(s Summary) [][2]string {
	completed := ""
	if s.CompletedAt != nil {
		completed = rfc3339(*s.CompletedAt)
	}
	lines := [][2]string{{"batch", s.Batch}, {"note", strconv.Quote(s.Note)}, {"profile", s.Profile}}
	if s.Session != "" {
		lines = append(lines, [2]string{"session", s.Session})
	}
	if s.SessionHash != "" {
		lines = append(lines, [2]string{"session_hash", s.SessionHash})
	}
	lines = append(lines, [][2]string{
		{"state", s.State}, {"created_at", rfc3339(s.CreatedAt)}, {"due_at", rfc3339(s.DueAt)}, {"completed_at", completed},
		{"total", strconv.Itoa(s.Total)}, {"deleted", strconv.Itoa(s.Deleted)}, {"not_found", strconv.Itoa(s.NotFound)},
		{"failed", strconv.Itoa(s.Failed)},
	}...)
	if s.Cancelled > 0 {
		lines = append(lines, [2]string{"cancelled", strconv.Itoa(s.Cancelled)})
	}
	lines = append(lines, [][2]string{
		{"pending", strconv.Itoa(s.Pending)}, {"invalid", strconv.Itoa(s.Invalid)}, {"generated_at", rfc3339(s.GeneratedAt)},
	}...)
	for _, a := range s.History {
		lines = append(lines, [2]string{"history", historyText(a)})
	}
	return lines
}

// historyText is one control action as a CSV comment line states it:
// "2026-12-01T10:00:00Z extend due=… old_due=… note="…"".
func historyText(a ledger.Action) string {
	t := rfc3339(a.At) + " " + a.Action
	if !a.Due.IsZero() {
		t += " due=" + rfc3339(a.Due) + " old_due=" + rfc3339(a.OldDue)
	}
	if a.Note != "" {
		t += " note=" + strconv.Quote(a.Note)
	}
	return t
}

func writeJSONLProof(ctx context.Context, led *ledger.Ledger, s proofSummary, w *bufio.Writer) error {
	enc := json.NewEncoder(w)
	err := led.Entries(ctx, s.Batch, func(e ledger.Entry) error {
		row := proofRow{ConversationID: e.ConversationID, Outcome: string(e.Outcome), Code: e.Code, LogID: e.LogID, Attempts: e.Attempts}
		if e.Outcome.Terminal() {
			at := e.FinishedAt
			row.FinishedAt = &at
		}
		if e.Outcome == ledger.Failed {
			f, ok, err := led.Failure(ctx, s.Batch, e.ConversationID)
			if err != nil {
				return err
			}
			if ok {
				row.Msg = f.Msg
			}
		}
		return enc.Encode(row)
	})
	if err != nil {
		return err
	}
	return enc.Encode(struct {
		Summary proofSummary `json:"summary"`
	}{s})
}
