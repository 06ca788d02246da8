package maintenance

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
)

//go:embed lua/repair.lua
var repairSource string

var repairScript = script(repairSource)

// Orphan is a linked id whose task is no longer live while the id is still
// pending in Batch: it needs a new task in Queue.
type Orphan struct {
	ConversationID string
	Batch          string
	Queue          string
}

// Orphans finds the links (see ledger.Ledger.Link) whose task is no longer
// live (it finished just before the link was made, or failed and was
// archived) while the id is still pending in the linked batch: each needs
// a new task, whose outcome then clears the link. Spent links are dropped.
// There are only as many links as ids enqueued into a second batch while
// their task was queued. taskID gives an id's asynq task id.
func (s *Store) Orphans(ctx context.Context, taskID func(string) string) ([]Orphan, error) {
	var out []Orphan
	iter := s.rdb.HScan(ctx, s.ks.Also(), 0, "", 500).Iterator()
	var ids []string
	for iter.Next(ctx) {
		ids = append(ids, iter.Val())
		iter.Next(ctx) // skip the value
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("maintenance: links: %w", err)
	}
	for _, id := range ids {
		entries, err := s.run(ctx, repairScript, id, taskID(id)).StringSlice()
		if err != nil {
			return out, fmt.Errorf("maintenance: repair links of %s: %w", id, err)
		}
		for _, e := range entries {
			batch, queue, _ := strings.Cut(e, "@")
			out = append(out, Orphan{ConversationID: id, Batch: batch, Queue: queue})
		}
	}
	return out, nil
}
