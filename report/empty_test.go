package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// TestProofOfAnEmptyBatchCountsRefusedLines: a batch whose input was only
// invalid lines is "empty", not "complete", and its proof says how many
// lines were refused.
func TestProofOfAnEmptyBatchCountsRefusedLines(t *testing.T) {
	t.Parallel()
	led := ledger.New(redistest.Start(t).Client())
	ctx := context.Background()
	adder, err := led.OpenBatch(ctx, ledger.BatchSpec{Name: "junk", Created: now, Due: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adder.SealWithInvalid(ctx, 3); err != nil {
		t.Fatal(err)
	}
	var csvOut, jsonOut bytes.Buffer
	if err := report.WriteProof(ctx, led, "junk", "csv", &csvOut, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# state: empty\n", "# invalid: 3\n", "# total: 0\n"} {
		if !strings.Contains(csvOut.String(), want) {
			t.Errorf("CSV proof lacks %q:\n%s", want, csvOut.String())
		}
	}
	if err := report.WriteProof(ctx, led, "junk", "jsonl", &jsonOut, now); err != nil {
		t.Fatal(err)
	}
	var last struct{ Summary report.Summary }
	if err := json.Unmarshal(bytes.TrimSpace(jsonOut.Bytes()), &last); err != nil {
		t.Fatal(err)
	}
	if last.Summary.State != "empty" || last.Summary.Invalid != 3 || last.Summary.CompletedAt == nil {
		t.Errorf("JSONL summary %+v: want state empty, invalid 3, a completion time", last.Summary)
	}
}
