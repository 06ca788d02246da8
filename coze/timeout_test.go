package coze_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// TestNewClientRefusesNoTimeout is issue 11, point 7: a zero timeout meant
// no timeout at all, and a call hung for as long as the server liked.
func TestNewClientRefusesNoTimeout(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, -time.Second} {
		_, err := coze.NewClient("http://127.0.0.1:1", coze.StaticToken("t"), coze.WithTimeout(d))
		if err == nil || !strings.Contains(err.Error(), "timeout") || !strings.Contains(err.Error(), "positive") {
			t.Errorf("WithTimeout(%v): err = %v, want a refusal saying the timeout must be positive", d, err)
		}
	}
	if _, err := coze.NewClient("http://127.0.0.1:1", coze.StaticToken("t"), coze.WithTimeout(time.Millisecond)); err != nil {
		t.Errorf("WithTimeout(1ms): %v", err)
	}
}
