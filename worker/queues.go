package worker

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseQueues reads a weighted queue list such as "gdpr=6,bulk=1": the
// worker takes tasks from each queue in proportion to its weight. A name
// without a weight has weight 1.
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
