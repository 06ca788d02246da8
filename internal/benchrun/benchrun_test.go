package benchrun

import (
	"bytes"
	"strings"
	"testing"
)

func TestFileName(t *testing.T) {
	t.Parallel()
	tests := []struct{ pass, want string }{
		{"work/bare asynq", "work-bare-asynq"},
		{"enqueue/coze-eraser", "enqueue-coze-eraser"},
		{"work/coze-eraser at concurrency 200", "work-coze-eraser-at-concurrency-200"},
	}
	for _, tt := range tests {
		if got := fileName(tt.pass); got != tt.want {
			t.Errorf("fileName(%q) = %q, want %q", tt.pass, got, tt.want)
		}
	}
}

// TestWriteShowsMediansAndRatios checks the table's figures are medians and
// the ratios divide ours by bare asynq's.
func TestWriteShowsMediansAndRatios(t *testing.T) {
	t.Parallel()
	res := Result{
		"enqueue/coze-eraser": {{Rate: 90000, MemPerID: 550}, {Rate: 10, MemPerID: 540}, {Rate: 95000, MemPerID: 560}},
		"enqueue/bare asynq":  {{Rate: 40000, MemPerID: 500}, {Rate: 45000, MemPerID: 500}, {Rate: 50000, MemPerID: 500}},
		"work/coze-eraser":    {{Rate: 4000, CPU: 0.2, PeakRSSMB: 25}, {Rate: 4500, CPU: 0.3, PeakRSSMB: 24}, {Rate: 100, CPU: 9, PeakRSSMB: 23}},
		"work/bare asynq":     {{Rate: 5000, CPU: 0.1}, {Rate: 5000, CPU: 0.1}, {Rate: 5000, CPU: 0.1}},
	}
	var out bytes.Buffer
	res.write(Config{Runs: 3, Out: &out})
	text := out.String()
	for _, want := range []string{
		"pass (median of 3)",
		"enqueue rate, coze-eraser / bare asynq: 2.00 (target at least 0.90; per run 2.25, 0.00, 1.90)",
		"work-down rate, coze-eraser / bare asynq: 0.80 (target at least 0.90; per run 0.80, 0.90, 0.02)",
		"Redis memory per pending task, coze-eraser / bare asynq: 1.10 (target at most 1.10; per run 1.10, 1.08, 1.12)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	var workLine string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "work/coze-eraser") {
			workLine = line
		}
	}
	if got := strings.Fields(workLine); len(got) < 6 || got[1] != "4000" || got[2] != "0.300" || got[4] != "24.0" {
		t.Errorf("work/coze-eraser row = %q, want rate 4000, CPU 0.300 and RSS 24.0 (the medians)", workLine)
	}
}
