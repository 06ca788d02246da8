package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// FailureCSVHeader is the header row of the CSV failure listing.
var FailureCSVHeader = []string{"conversation_id", "batch", "outcome", "code", "msg", "http_status", "logid", "attempts", "first_at", "last_at"}

// FailureWriter writes failure records in one format. Call Flush at the end.
type FailureWriter interface {
	Write(ledger.Failure) error
	Flush() error
}

// FailureFormats lists the names NewFailureWriter accepts.
var FailureFormats = []string{"table", "csv", "jsonl"}

// NewFailureWriter returns a writer for format: "table" (aligned columns for
// a terminal), "csv" (with [FailureCSVHeader]) or "jsonl" (one JSON object a
// line). Times are RFC 3339 in UTC.
func NewFailureWriter(w io.Writer, format string) (FailureWriter, error) {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(FailureCSVHeader); err != nil {
			return nil, err
		}
		return &csvFailures{w: cw}, nil
	case "jsonl":
		return &jsonFailures{enc: json.NewEncoder(w)}, nil
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CONVERSATION_ID\tBATCH\tOUTCOME\tCODE\tHTTP\tATTEMPTS\tLAST_AT\tLOGID\tMSG")
		return &tableFailures{w: tw}, nil
	}
	return nil, fmt.Errorf("unknown format %q: use table, csv or jsonl", format)
}

func rfc3339(t time.Time) string {
	if t.IsZero() || t.UnixMilli() == 0 {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func statusText(s int) string {
	if s == 0 {
		return ""
	}
	return strconv.Itoa(s)
}

type csvFailures struct{ w *csv.Writer }

func (c *csvFailures) Write(f ledger.Failure) error {
	return c.w.Write([]string{SafeCell(f.ConversationID), SafeCell(f.Batch), string(f.Outcome), numberCell(f.Code),
		SafeCell(f.Msg), statusText(f.HTTPStatus), SafeCell(f.LogID), strconv.Itoa(f.Attempts), rfc3339(f.FirstAt),
		rfc3339(f.LastAt)})
}

func (c *csvFailures) Flush() error { c.w.Flush(); return c.w.Error() }

type jsonFailures struct{ enc *json.Encoder }

func (j *jsonFailures) Write(f ledger.Failure) error { return j.enc.Encode(f) }
func (j *jsonFailures) Flush() error                 { return nil }

type tableFailures struct{ w *tabwriter.Writer }

func (t *tableFailures) Write(f ledger.Failure) error {
	_, err := fmt.Fprintf(t.w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", Printable(f.ConversationID),
		Printable(f.Batch), f.Outcome, dash(Printable(f.Code)), dash(statusText(f.HTTPStatus)), f.Attempts,
		rfc3339(f.LastAt), dash(Printable(f.LogID)), Printable(f.Msg))
	return err
}

func (t *tableFailures) Flush() error { return t.w.Flush() }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
