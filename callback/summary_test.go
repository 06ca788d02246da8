package callback_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestSummaryCarriesInvalid: the callback of a batch whose input was only
// invalid lines says how many were refused, so that its requester sees why
// nothing was erased.
func TestSummaryCarriesInvalid(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	s := callback.SummaryOf(ledger.Batch{Name: "junk", Invalid: 4, DueAt: at.Add(time.Hour)},
		ledger.Completion{Batch: "junk", N: 1, CompletedAt: at})
	body, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"invalid":4`) || !strings.Contains(string(body), `"total":0`) {
		t.Errorf("callback body %s: want total 0 and invalid 4", body)
	}
}
