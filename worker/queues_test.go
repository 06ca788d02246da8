package worker_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/tasks"
	"github.com/coze-eraser/coze-eraser/worker"
)

func TestParseQueues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want map[string]int
		err  bool
	}{
		{in: "default", want: map[string]int{"default": 1}},
		{in: "gdpr=6,bulk=1", want: map[string]int{"gdpr": 6, "bulk": 1}},
		{in: " gdpr = 6 , bulk ", want: map[string]int{"gdpr": 6, "bulk": 1}},
		{in: "", err: true},
		{in: "gdpr=0", err: true},
		{in: "gdpr=x", err: true},
		{in: "=3", err: true},
		{in: "a,a", err: true},
	}
	for _, tt := range tests {
		got, err := worker.ParseQueues(tt.in)
		if (err != nil) != tt.err || (!tt.err && !maps.Equal(got, tt.want)) {
			t.Errorf("ParseQueues(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// TestParseQueuesRefusesBadNames: every queue name follows
// tasks.ValidateQueue, and the callback queue, which the worker serves on its
// own with a handler for callbacks only, cannot be listed: the deletion
// server would take its deliveries and fail them.
func TestParseQueuesRefusesBadNames(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"a b", "gdpr=6,a b=1", callback.Queue, "gdpr," + callback.Queue + "=2", "q}", "{q}",
		"q@x", "q:1", "q/1", "-q", strings.Repeat("q", 65)} {
		_, err := worker.ParseQueues(in)
		if !errors.Is(err, tasks.ErrInvalidQueue) {
			t.Errorf("ParseQueues(%q) = %v, want ErrInvalidQueue", in, err)
			continue
		}
		if !strings.Contains(err.Error(), "letters, digits") && !strings.Contains(err.Error(), "reserved") {
			t.Errorf("ParseQueues(%q) = %q, want the rule", in, err)
		}
	}
	if got, err := worker.ParseQueues(" gdpr.eu-1 = 6 , bulk_2 "); err != nil || !maps.Equal(got, map[string]int{"gdpr.eu-1": 6, "bulk_2": 1}) {
		t.Errorf("ParseQueues: %v, %v", got, err)
	}
}
