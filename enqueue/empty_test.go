package enqueue_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/maintenance"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// TestNoBatchWithoutInput: input that cannot be read, or that holds no
// line at all, creates no batch; empty input is ErrNoIDs.
func TestNoBatchWithoutInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close() //nolint:errcheck // read only: nothing to lose
	if _, err := b.client.EnqueueFrom(b.ctx, dir, enqueue.Batch("from-dir")); err == nil {
		t.Fatal("reading a directory: no error")
	}
	if _, err := b.client.EnqueueFrom(b.ctx, strings.NewReader("\n  \n"), enqueue.Batch("blank")); !errors.Is(err, enqueue.ErrNoIDs) {
		t.Fatalf("blank input: err %v, want ErrNoIDs", err)
	}
	led := ledger.New(b.redis.Client())
	for _, name := range []string{"from-dir", "blank"} {
		if _, ok, err := led.Batch(b.ctx, name); err != nil || ok {
			t.Errorf("batch %s exists (%v, %v): a command that queued nothing created it", name, ok, err)
		}
	}
}

// TestOnlyInvalidLinesMakeAnEmptyBatch: a batch whose input was only
// invalid lines says there was nothing to erase and counts the refusals;
// it is not complete.
func TestOnlyInvalidLinesMakeAnEmptyBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sum, err := b.client.EnqueueFrom(b.ctx, strings.NewReader("abc\nxyz\n"), enqueue.Batch("junk"),
		enqueue.CallbackURL("https://example.com/hook"))
	if err != nil || sum.Invalid != 2 {
		t.Fatalf("EnqueueFrom = %+v, %v", sum, err)
	}
	led := ledger.New(b.redis.Client())
	bt, ok, err := led.Batch(b.ctx, "junk")
	if err != nil || !ok {
		t.Fatalf("batch junk: %v %v", ok, err)
	}
	if st := bt.State(time.Now()); st != ledger.StateEmpty || bt.Invalid != 2 || bt.CompletedAt.IsZero() {
		t.Errorf("state %s invalid %d completed %v; want empty, 2, a completion", st, bt.Invalid, bt.CompletedAt)
	}
	cbs, err := maintenance.NewStore(b.redis.Client(), ledger.DefaultPrefix).PendingCallbacks(b.ctx)
	if err != nil || len(cbs) != 1 || cbs[0].Batch != "junk" {
		t.Errorf("callbacks %+v, %v: want the empty batch's", cbs, err)
	}
	// A mixed input counts its refusals too, on top of the first ones.
	if _, err := b.client.EnqueueFrom(b.ctx, strings.NewReader("7379996104798150001\nnope\n"), enqueue.Batch("junk")); err != nil {
		t.Fatal(err)
	}
	if bt, _, _ = led.Batch(b.ctx, "junk"); bt.Invalid != 3 || bt.Total != 1 || bt.State(time.Now()) != ledger.StateOpen {
		t.Errorf("after a mixed input: %+v state %s", bt, bt.State(time.Now()))
	}
}
