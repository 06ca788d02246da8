package worker_test

import (
	"maps"
	"testing"

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
