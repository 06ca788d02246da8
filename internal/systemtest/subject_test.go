package systemtest

import (
	"crypto/rsa"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
)

// listingScenario is acceptance 6 of the subjects issue: one bot with n
// conversations of one session, listed by an erase-subject process into a
// batch with the profile's rate at rate list calls a second. It checks that
// every conversation is held in the batch with a task, and returns the
// process's peak RSS, the run's time and the list calls the fake answered.
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
	if queued, err := b.rdb.LLen(b.ctx, asynqwire.StateKey("default", "pending")).Result(); err != nil || queued != int64(n) {
		t.Errorf("%d tasks queued (%v), want %d", queued, err, n)
	}
	usage, _ := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if usage != nil {
		peakRSS = usage.Maxrss * 1024 // kilobytes on Linux
	}
	return peakRSS, took, b.fake.ListCalls()
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
