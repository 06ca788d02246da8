package report_test

import (
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
)

// TestProgressNeverShowsDoneEarly: the percentage is floored, so a batch
// with one id left never reads 100.0% (issue 12: `100.0% 3999/4000`).
func TestProgressNeverShowsDoneEarly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		finished, total int
		want            string
	}{
		{3999, 4000, "99.9%"},
		{999_999, 1_000_000, "99.9%"},
		{2, 3, "66.6%"},
		{4000, 4000, "100.0%"},
		{0, 4000, "0.0%"},
	}
	for _, c := range cases {
		b := ledger.Batch{Name: "p", Total: c.total, Deleted: c.finished}
		if line := report.ProgressLine(b, now); !strings.Contains(line, "("+c.want+")") {
			t.Errorf("%d/%d: progress line %q, want %s", c.finished, c.total, line, c.want)
		}
		bar := report.ProgressBar(b, now, 100)
		if !strings.Contains(bar, " "+c.want+" ") {
			t.Errorf("%d/%d: progress bar %q, want %s", c.finished, c.total, bar, c.want)
		}
		if c.finished < c.total && strings.Contains(bar, "[#") && !strings.Contains(bar, "#-") {
			t.Errorf("%d/%d: bar full before the last id: %q", c.finished, c.total, bar)
		}
	}
}
