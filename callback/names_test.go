package callback_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestCallbackQueueIsReserved: no deletion may be queued on the callback
// queue, whose server has no handler for deletions. The reserved list lives
// in tasks, which must not import this package.
func TestCallbackQueueIsReserved(t *testing.T) {
	t.Parallel()
	if err := tasks.ValidateQueue(callback.Queue); !errors.Is(err, tasks.ErrInvalidQueue) {
		t.Errorf("ValidateQueue(callback.Queue %q) = %v, want ErrInvalidQueue", callback.Queue, err)
	}
}

// TestIdempotencyKeysCannotCollide: a callback's task id and Idempotency-Key
// is "batch:completion"; two completions never share it (valid batch names
// hold no ':', and the completion is a number after the last one).
func TestIdempotencyKeysCannotCollide(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, b := range []string{"a", "a-1", "a.1", "a_1", "a1", "1", "a:1", "a:1:2", "b"} {
		if tasks.ValidateBatch(b) != nil {
			continue
		}
		for _, n := range []int{1, 2, 12} {
			key := callback.Summary{Batch: b, Completion: n}.IdempotencyKey()
			who := fmt.Sprintf("%s #%d", b, n)
			if prev, dup := seen[key]; dup {
				t.Errorf("completions %s and %s share the key %q", prev, who, key)
			}
			seen[key] = who
		}
	}
}
