package report_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// TestStatusSaysStalledWhenNoWorkerServesTheQueue: pending ids in a queue
// no live worker serves show as stalled, naming the queue, not as ETA "?".
func TestStatusSaysStalledWhenNoWorkerServesTheQueue(t *testing.T) {
	t.Parallel()
	b := ledger.Batch{Name: "s", CreatedAt: now.Add(-time.Hour), DueAt: now.Add(time.Hour), Total: 3, Deleted: 1,
		Queues: []string{"gdpr\x1b"}, UnservedQueues: []string{"gdpr\x1b"}}
	var out bytes.Buffer
	if err := report.WriteStatus(&out, []ledger.Batch{b}, now, "table"); err != nil {
		t.Fatal(err)
	}
	if want := `stalled: no worker serves queue gdpr\x1b`; !strings.Contains(out.String(), want) {
		t.Errorf("status table lacks %q:\n%s", want, out.String())
	}
	if line := report.ProgressLine(b, now); !strings.Contains(line, "eta=stalled: no worker serves queue") {
		t.Errorf("progress line %q", line)
	}
	b.UnservedQueues = nil
	if line := report.ProgressLine(b, now); !strings.Contains(line, "eta=?") {
		t.Errorf("served queue, nothing finishing: progress line %q", line)
	}
}
