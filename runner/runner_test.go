package runner_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/runner"
	"github.com/coze-eraser/coze-eraser/worker"
)

func TestRunWorksTheBatchToTheEnd(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake := cozetest.NewServer(cozetest.WithFaults(map[cozetest.Fault]float64{cozetest.InternalError: 0.2}))
	t.Cleanup(fake.Close)
	fake.ScriptForever("1", cozetest.BadParameter)
	api, err := coze.NewClient(fake.URL, coze.StaticToken("pat_x"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 1; i <= 200; i++ {
		ids = append(ids, strconv.Itoa(i))
	}
	var reports int
	progress, err := runner.Run(context.Background(), runner.Config{
		Redis:   srv.Client(),
		Batch:   "r",
		Enqueue: []enqueue.Option{enqueue.MaxRetry(20)},
		Worker: worker.Config{
			API:             api,
			RetryBackoff:    worker.Backoff{Base: time.Millisecond, Cap: 10 * time.Millisecond},
			PollInterval:    20 * time.Millisecond,
			ForwardInterval: 50 * time.Millisecond,
		},
		ProgressEvery: 50 * time.Millisecond,
		OnProgress:    func(runner.Progress) { reports++ },
	}, runner.Input{IDs: slices.Values(ids)})
	if err != nil {
		t.Fatal(err)
	}
	if b := progress.Batch; b.Total != 200 || b.Finished() != 200 || b.Failed != 1 || b.Name != "r" {
		t.Errorf("progress %+v", progress)
	}
	if reports == 0 {
		t.Error("no progress reported")
	}
	if got := len(fake.Deletions()); got != progress.Batch.Deleted+progress.Batch.NotFound {
		t.Errorf("fake deleted %d, tally %+v", got, progress.Batch)
	}
}
