package enqueue_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestEnqueueOptionsAreBounded is issue 11, point 7: a retry budget that
// overflowed into none, a ledger that expired before its tasks ran, a due
// time in the past and a 130 KB note were all taken. Each is refused with
// the allowed range; the values at the edges are taken.
func TestEnqueueOptionsAreBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c := enqueue.NewClient(redistest.Start(t).Client(), enqueue.WithClock(func() time.Time { return now }))
	t.Cleanup(func() { c.Close() })
	bad := []struct {
		name string
		opts []enqueue.Option
		want string
	}{
		{"max retry overflow", []enqueue.Option{enqueue.MaxRetry(2147483647)}, "max retry 2147483647: must be 0 to 1000"},
		{"max retry above the bound", []enqueue.Option{enqueue.MaxRetry(1001)}, "must be 0 to 1000"},
		{"max retry negative", []enqueue.Option{enqueue.MaxRetry(-1)}, "must be 0 to 1000"},
		{"long note", []enqueue.Option{enqueue.Note(strings.Repeat("n", 130<<10))}, "at most 1024 bytes"},
		{"note with ESC", []enqueue.Option{enqueue.Note("ticket \x1b[31m118")}, "control character U+001B at byte 8"},
		{"note with a newline", []enqueue.Option{enqueue.Note("a\nb")}, "control character U+000A"},
		{"note not UTF-8", []enqueue.Option{enqueue.Note("ticket \xff")}, "not valid UTF-8"},
		{"retention too short", []enqueue.Option{enqueue.Retention(30 * time.Minute), enqueue.DueIn(time.Minute)}, "must be 1h0m0s to 87600h0m0s"},
		{"retention too long", []enqueue.Option{enqueue.Retention(87601 * time.Hour)}, "must be 1h0m0s to 87600h0m0s"},
		{"retention negative", []enqueue.Option{enqueue.Retention(-time.Hour)}, "must be 1h0m0s to 87600h0m0s"},
		{"expires before a delayed run", []enqueue.Option{enqueue.Retention(time.Hour), enqueue.DueIn(time.Minute), enqueue.In(48 * time.Hour)},
			"records would expire before the tasks run"},
		{"expires before a scheduled run", []enqueue.Option{enqueue.Retention(2 * time.Hour), enqueue.DueIn(time.Minute), enqueue.At(now.Add(48 * time.Hour))},
			"records would expire before the tasks run"},
		{"expires before the default due time", []enqueue.Option{enqueue.Retention(2 * time.Hour)}, "records would expire before the batch is due"},
		{"expires before the due time", []enqueue.Option{enqueue.DueIn(ledger.DefaultTTL)}, "records would expire before the batch is due"},
		{"due in the past", []enqueue.Option{enqueue.Due(now.Add(-time.Minute))}, "is in the past"},
	}
	for i, tt := range bad {
		_, err := c.Enqueue(t.Context(), "1", append(tt.opts, enqueue.Batch(fmt.Sprintf("bad-%d", i)))...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to say %q", tt.name, err, tt.want)
		}
	}
	good := [][]enqueue.Option{
		{enqueue.MaxRetry(0)},
		{enqueue.MaxRetry(1000)},
		{enqueue.Note(strings.Repeat("é", 512))}, // 1024 bytes
		{enqueue.Note("ticket GDPR-118, subject 4711 — ünïcode")},
		{enqueue.Retention(time.Hour), enqueue.DueIn(time.Minute)},
		{enqueue.Retention(87600 * time.Hour), enqueue.In(87599 * time.Hour), enqueue.DueIn(87599 * time.Hour)},
		{enqueue.Retention(3 * time.Hour), enqueue.Due(now.Add(2 * time.Hour)), enqueue.At(now.Add(2 * time.Hour))},
		{enqueue.At(now.Add(-time.Hour))}, // a past time runs now
	}
	for i, opts := range good {
		if _, err := c.Enqueue(t.Context(), "1", append(opts, enqueue.Batch(fmt.Sprintf("good-%d", i)))...); err != nil {
			t.Errorf("options %d: %v", i, err)
		}
	}
}

// TestRetryFailuresChecksOptionsFirst: a bad retry budget is refused before
// any failure is touched, not after the first archived task was deleted.
func TestRetryFailuresChecksOptionsFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.client.RetryFailures(b.ctx, ledger.Filter{}, false, enqueue.MaxRetry(5000))
	if err == nil || !strings.Contains(err.Error(), "must be 0 to 1000") {
		t.Errorf("err = %v, want the retry budget refused", err)
	}
}
