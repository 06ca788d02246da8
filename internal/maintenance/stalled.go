package maintenance

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

//go:embed lua/stalled.lua
var stalledSource string

var stalledScript = script(stalledSource)

// Stalled is a page of a batch's pending ids that no live task will finish.
type Stalled struct {
	// Queue is the first queue the batch's tasks were put in.
	Queue string
	IDs   []string
	// Next is the bucket to read next; 0 when the batch has been read to
	// its end.
	Next int
}

// PendingWithoutTask reads up to buckets buckets of batch b from bucket
// from and returns its pending ids that have no live task in any queue
// (and that no link covers). A pending id whose live task is another
// batch's, in a queue this batch never used, is linked to it on the way.
// taskIDPrefix is the part of the task id before the conversation id
// (tasks.TaskID("")).
func (s *Store) PendingWithoutTask(ctx context.Context, b ledger.Batch, from, buckets int, taskIDPrefix string, now time.Time) (Stalled, error) {
	var page Stalled
	end := min(from+buckets, b.BucketCount())
	for k := from; k < end; k++ {
		res, err := s.run(ctx, stalledScript, b.Name, k, taskIDPrefix, now.UnixMilli()).StringSlice()
		if err != nil {
			return page, fmt.Errorf("maintenance: stalled ids of %s: %w", b.Name, err)
		}
		if len(res) == 0 {
			return page, fmt.Errorf("maintenance: stalled.lua replied nothing for %s, not its queue and ids", b.Name)
		}
		page.Queue = res[0]
		page.IDs = append(page.IDs, res[1:]...)
	}
	if end < b.BucketCount() {
		page.Next = end
	}
	return page, nil
}
