package tasks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// separators are the characters that delimit a name inside a Redis key or
// an index member: ':' in keys (batch:{name}:ids:{k}, failure:{batch}:{id},
// asynq:{queue}:t:{id}), '/' in failure and callback members, '@' and ' ' in
// link entries and the batch's queue list, '{' and '}' in asynq's hash tags.
var separators = []string{":", "/", "@", " ", "{", "}"}

// hostileNames embed each separator in an otherwise valid name, the way an
// attacker would aim a name at another object's key.
func hostileNames() []string {
	names := []string{"evil:ids:1", "evil:adders", "evil:1", "x}:t:del:1", "{evil}", "a\tb", "a\nb", "a\x00b"}
	for _, sep := range separators {
		names = append(names, "evil"+sep, "evil"+sep+"1", sep+"evil")
	}
	return names
}

func TestValidateBatchRefusesSeparators(t *testing.T) {
	t.Parallel()
	for _, name := range hostileNames() {
		err := tasks.ValidateBatch(name)
		if !errors.Is(err, tasks.ErrInvalidBatch) {
			t.Errorf("ValidateBatch(%q) = %v, want ErrInvalidBatch", name, err)
			continue
		}
		if want := "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"; !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateBatch(%q) = %q, want the rule %q", name, err, want)
		}
	}
}

func TestValidateQueue(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"default", "gdpr", "bulk-2026.11_a", "Q", "9", strings.Repeat("q", 64)} {
		if err := tasks.ValidateQueue(ok); err != nil {
			t.Errorf("ValidateQueue(%q) = %v, want nil", ok, err)
		}
	}
	rule := "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
	bad := append(hostileNames(), "", "-q", ".q", "_q", "é", strings.Repeat("q", 65))
	for _, name := range bad {
		err := tasks.ValidateQueue(name)
		if !errors.Is(err, tasks.ErrInvalidQueue) || !strings.Contains(err.Error(), rule) {
			t.Errorf("ValidateQueue(%q) = %v, want ErrInvalidQueue naming the rule %q", name, err, rule)
		}
	}
	for _, name := range tasks.ReservedQueues {
		err := tasks.ValidateQueue(name)
		if !errors.Is(err, tasks.ErrInvalidQueue) || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("ValidateQueue(%q) = %v, want a reserved-name error", name, err)
		}
	}
	if err := tasks.ValidateQueue(strings.Repeat("é", 100)); err == nil || len(err.Error()) > 200 {
		t.Errorf("long input: %v", err)
	}
}

// TestQueueKeysCannotCollide: asynq names a task's hash after its queue and
// id; two different valid queues never name the same hash, whatever task id
// another producer chose.
func TestQueueKeysCannotCollide(t *testing.T) {
	t.Parallel()
	queues := []string{"default", "a", "a.t", "a-t", "a_t", "t", "del", "a1"}
	queues = append(queues, hostileNames()...)
	ids := []string{tasks.TaskID("1"), tasks.TaskID("12"), "1", "t:del:1", "}:t:del:1", "del:1:t"}
	seen := map[string]string{}
	for _, q := range queues {
		if tasks.ValidateQueue(q) != nil {
			continue
		}
		for _, id := range ids {
			key := asynqwire.TaskKey(q, id)
			who := q + " / " + id
			if prev, dup := seen[key]; dup {
				t.Errorf("queue/task %s and %s share the key %q", prev, who, key)
			}
			seen[key] = who
		}
	}
}
