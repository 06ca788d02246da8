package worker

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// ParseQueues reads a weighted queue list such as "gdpr=6,bulk=1": the
// worker takes tasks from each queue in proportion to its weight. A name
// without a weight has weight 1. Each name must pass tasks.ValidateQueue: in
// particular the callback queue is refused, because the worker serves it
// with a server of its own, and a deletion server listening on it too would
// take callback deliveries it has no handler for.
func ParseQueues(s string) (map[string]int, error) {
	queues := map[string]int{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, weightText, hasWeight := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		weight := 1
		if hasWeight {
			w, err := strconv.Atoi(strings.TrimSpace(weightText))
			if err != nil || w < 1 {
				return nil, fmt.Errorf("queue %q: weight %q must be a whole number of 1 or more", name, weightText)
			}
			weight = w
		}
		if name == "" {
			return nil, fmt.Errorf("queue list %q has an empty name", s)
		}
		if err := tasks.ValidateQueue(name); err != nil {
			return nil, err
		}
		if _, dup := queues[name]; dup {
			return nil, fmt.Errorf("queue %q is listed twice", name)
		}
		queues[name] = weight
	}
	if len(queues) == 0 {
		return nil, fmt.Errorf("no queue in %q", s)
	}
	return queues, nil
}
