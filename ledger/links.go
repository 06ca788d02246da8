package ledger

import (
	"context"
	_ "embed"
	"fmt"
)

//go:embed lua/link.lua
var linkSource string

var linkScript = script(linkSource)

// Link asks the live task of id (task id taskID), in queue or in any other
// queue, to record its outcome in batch as well: asynq's task ids are
// unique per queue only, and an id is called once whatever queues its
// batches use. It returns "finished" when the id has its outcome in batch
// already (nothing to do), else the live task's state: "pending",
// "scheduled", "retry" or "active" (linked); or, when no queue holds a
// live task, the state of the task in queue, "archived", "completed" or
// "gone" (not linked: the caller should queue a new task).
func (l *Ledger) Link(ctx context.Context, batch, id, queue, taskID string) (string, error) {
	state, err := l.run(ctx, linkScript, id, batch, queue, taskID).Text()
	if err != nil {
		return "", fmt.Errorf("ledger: link %s: %w", id, err)
	}
	return state, nil
}
