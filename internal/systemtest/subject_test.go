package systemtest

import (
	"crypto/rsa"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
)

// listingScenario is acceptance 6 of the subjects issue: one bot with n
// conversations of one session, listed by an erase-subject process into a
// batch with the profile's rate at rate list calls a second. It checks that
// every conversation is held in the batch, waiting to be fed, and gets its
// task once fed; it returns the process's peak RSS, the run's time and the
// list calls the fake answered.
func listingScenario(t *testing.T, n int, rate float64) (peakRSS int64, took time.Duration, pages int) {
	const app, kid, bot, session = "1127900106117", "kid-1", "7300000000000000001", "PERSONAL-subject-4711"
	dir := t.TempDir()
	keyFile, _, pub := appKey(t, dir)
	b := setup(t, nil, cozetest.WithJWTApp(app, map[string]*rsa.PublicKey{kid: pub}), cozetest.WithoutCallLog())
	base := time.Now().Add(-time.Duration(n) * time.Second)
	chunk := make([]cozetest.Conversation, 0, 1000)
	for i := range n {
		chunk = append(chunk, cozetest.Conversation{ID: fmt.Sprint(7379996104000000000 + int64(i)), BotID: bot,
			CreatedAt: base.Add(time.Duration(i) * time.Second), Owner: cozetest.Identity{App: app, Session: session}})
		if len(chunk) == cap(chunk) || i == n-1 {
			b.fake.AddConversations(chunk...)
			chunk = chunk[:0]
		}
	}
	profiles := writeFile(t, dir, "profiles.yaml", "profiles:\n"+jwtProfile("app-cn", b.fake.URL, app, kid, keyFile, rate))
	began := time.Now()
	p := start(t, map[string]string{"REDIS_URL": b.redis.URL, "COZE_ERASER_ERASE_SUBJECT_SESSION": session},
		"erase-subject", "--profiles", profiles, "--profile", "app-cn", "--bot-id", bot, "--batch", "big-subject")
	hwm := watchPeakRSS(p)
	code, _ := p.wait(10 * time.Minute)
	took = time.Since(began)
	out := p.out.String()
	want := fmt.Sprintf("found=%d enqueued=%d duplicate=0 batch=big-subject", n, n)
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("erase-subject: exit %d, want %q in:\n%s", code, want, out)
	}
	if strings.Contains(out, session) {
		t.Error("erase-subject printed the session name")
	}
	bt := b.batch("big-subject")
	if bt.Total != n || bt.Pending() != n {
		t.Errorf("batch total %d pending %d, want %d", bt.Total, bt.Pending(), n)
	}
	// The ids wait in the ledger to be fed; fed, each gets its task.
	if unfed, err := b.ledger.Unfed(b.ctx); err != nil || unfed["default"] != n {
		t.Errorf("%d ids waiting to be fed (%v), want %d", unfed["default"], err, n)
	}
	if _, err := enqueue.NewClient(b.rdb).Feed(b.ctx, "default", 1<<30); err != nil {
		t.Fatal(err)
	}
	if queued, err := b.rdb.LLen(b.ctx, asynqwire.StateKey("default", "pending")).Result(); err != nil || queued != int64(n) {
		t.Errorf("%d tasks queued once fed (%v), want %d", queued, err, n)
	}
	return hwm(), took, b.fake.ListCalls()
}

// watchPeakRSS follows the process's peak resident set (VmHWM) until it
// exits, and returns the last value read. (The rusage of a waited child is
// no good here: its peak counts the test process's memory, copied at the
// fork before the exec.)
func watchPeakRSS(p *proc) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if kb := vmHWM(p.cmd.Process.Pid); kb > 0 {
				peak.Store(kb * 1024)
			}
			select {
			case <-p.exited:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() int64 { <-done; return peak.Load() }
}

// vmHWM reads a process's peak resident set in kB, 0 when it cannot.
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// TestListingIntoABatch is acceptance 6 at CI size: 5,000 conversations of
// one session listed into a batch at 200 list calls a second.
func TestListingIntoABatch(t *testing.T) {
	t.Parallel()
	rss, took, pages := listingScenario(t, 5000, 200)
	if pages != 100 {
		t.Errorf("%d list calls, want 100 pages of 50", pages)
	}
	t.Logf("5,000 conversations: %d pages in %v, peak RSS %.1f MB", pages, took.Round(10*time.Millisecond), float64(rss)/1e6)
}
