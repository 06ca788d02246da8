package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// chromium finds Debian's chromium, or fails saying how to install it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("no chromium: the console's browser test needs it; run scripts/ensure-chromium (apt-get install chromium), or make test, which does")
	return ""
}

// screenshotDir is where the browser test leaves its screenshots:
// $COZE_ERASER_SCREENSHOTS when set (the closing note's), else a
// temporary directory.
func screenshotDir(t *testing.T) string {
	if dir := os.Getenv("COZE_ERASER_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// statusJSON runs `coze-eraser status BATCH --format json`, as an operator
// would, and returns the batch's fields.
func (b *bundle) statusJSON(t *testing.T, batch string) map[string]any {
	t.Helper()
	cmd := exec.Command(binary, "status", batch, "--format", "json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + b.redis.URL}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status --format json: %v", err)
	}
	var st []map[string]any
	if err := json.Unmarshal(out, &st); err != nil || len(st) != 1 {
		t.Fatalf("status --format json: %v: %s", err, out)
	}
	return st[0]
}

// statusFields are the page's data-field names and status's JSON names
// that must agree.
var statusFields = []string{"state", "total", "deleted", "not_found", "failed", "cancelled", "pending", "invalid"}

// tallies is status's values of statusFields, as the page prints them:
// status leaves out a zero "cancelled"; any other field missing is an
// error (a renamed field must not pass as two zeros).
func tallies(t *testing.T, status map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range statusFields {
		switch v := status[f].(type) {
		case string:
			out[f] = v
		case float64:
			out[f] = strconv.FormatFloat(v, 'f', -1, 64)
		case nil:
			if f != "cancelled" {
				t.Fatalf("status --format json has no %q", f)
			}
			out[f] = "0"
		}
	}
	return out
}

// agree fails the test for every number of page that status disagrees
// with, and for its state (the page shows "complete (cancelled)" where
// status's JSON says "complete": the element carries the state itself in
// data-value).
func agree(t *testing.T, where string, page, status map[string]string) {
	t.Helper()
	for _, f := range statusFields {
		if f == "invalid" && strings.HasPrefix(where, "row") {
			continue // the front page's rows leave the invalid input lines to the batch's page
		}
		if page[f] != status[f] {
			t.Errorf("%s: %s is %q on the page, %q in status --format json", where, f, page[f], status[f])
		}
	}
}

// TestConsoleInABrowser is the console's acceptance: Debian's chromium,
// headless, signs in with a write key to a worker running a live batch,
// checks every number of the batch's row and page against `status
// --format json`, pauses the batch and cancels it through the console,
// and checks again.
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	browserPath := chromium(t)
	shots := screenshotDir(t)
	b := setup(t, nil, cozetest.WithFaults(map[cozetest.Fault]float64{cozetest.BadParameter: 0.1}))
	secret, line, err := httpapi.NewSecret("ops", []httpapi.Scope{httpapi.ScopeRead, httpapi.ScopeWrite})
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	w := startWorker(t, b.env(), "--rate", "20", "--concurrency", "4", "--api-addr", addr, "--api-keys", keys, "--console-refresh", "1h")
	b.enqueue(t, "done-1", ids(100, 7379996104798150001))
	waitFor(t, 30*time.Second, "done-1 to complete", func() bool { return b.batch("done-1").Pending() == 0 })
	b.enqueue(t, "live-1", ids(3000, 7379996104799150001))
	waitFor(t, 30*time.Second, "live-1 to start", func() bool { return b.batch("live-1").Finished() >= 20 })

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserPath), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, for as long as ctx lasts
		t.Fatalf("starting %s: %v", browserPath, err)
	}
	base := "http://" + addr
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		step, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(step, steps...); err != nil {
			where, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			t.Fatalf("browser: %s: %v\nthe page: %s\nthe worker:\n%s", what, err, where, w.out.String())
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fields := func(selector string) map[string]string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](fmt.Sprintf(
			`Object.fromEntries([...document.querySelectorAll(%q)].map(e => [e.dataset.field, e.dataset.value ?? e.textContent.trim()]))`, selector)))
		if err != nil {
			t.Fatalf("reading %s: %v", selector, err)
		}
		return out
	}
	// checkAgainstStatus loads path and checks the fields under selector
	// against status of batch, read before and after the page: when the
	// two reads differ (a task finished meanwhile) it loads the page
	// again, until the batch stands still.
	checkAgainstStatus := func(where, path, selector, batch string) map[string]string {
		t.Helper()
		var page, before, after map[string]string
		waitFor(t, 30*time.Second, batch+" to stand still", func() bool {
			before = tallies(t, b.statusJSON(t, batch))
			run("load "+path, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
			page = fields(selector)
			after = tallies(t, b.statusJSON(t, batch))
			return maps.Equal(before, after)
		})
		agree(t, where, page, after)
		return page
	}
	text := func(selector string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
		if err != nil {
			t.Fatalf("reading %s: %v", selector, err)
		}
		return out
	}

	run("sign in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name=secret]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=secret]`), secret), chromedp.Submit(chromedp.CSS(`form.login`)), chromedp.WaitVisible(chromedp.CSS(`table.batches`)))
	shot("batches-running")

	run("open live-1", chromedp.Navigate(base+"/batches/live-1"), chromedp.WaitVisible(chromedp.CSS(`dl.tallies`)))
	run("pause", chromedp.Click(chromedp.CSS(`form[action="/batches/live-1/pause"] button`)), chromedp.WaitVisible(chromedp.CSS(`p.done[data-done=pause]`)))
	if got := fields(`h1 [data-field]`)["state"]; got != "paused" {
		t.Errorf("after pause, the page's state is %q", got)
	}
	// Tasks already running when the batch paused finish; then nothing
	// moves, and the page and status must agree to the id.
	checkAgainstStatus("live-1's page, paused", "/batches/live-1", `main [data-field]`, "live-1")
	checkAgainstStatus("row of live-1, paused", "/", `tr[data-batch="live-1"] [data-field]`, "live-1")
	checkAgainstStatus("row of done-1", "/", `tr[data-batch="done-1"] [data-field]`, "done-1")
	shot("batches-paused")

	checkAgainstStatus("done-1's page", "/batches/done-1", `main [data-field]`, "done-1")
	failureRows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('table.failures tbody tr').length`))
	if err != nil {
		t.Fatal(err)
	}
	if want := b.batch("done-1").Failed; failureRows != want || want == 0 {
		t.Errorf("done-1's page lists %d failures; the ledger has %d (the fake fails 10%% with 4000)", failureRows, want)
	}
	shot("batch-done-failures")

	run("resume and cancel", chromedp.Navigate(base+"/batches/live-1"), chromedp.WaitVisible(chromedp.CSS(`dl.tallies`)),
		chromedp.Click(chromedp.CSS(`form[action="/batches/live-1/resume"] button`)), chromedp.WaitVisible(chromedp.CSS(`p.done[data-done=resume]`)),
		chromedp.SendKeys(chromedp.CSS(`form.cancel input[name=note]`), "ticket OPS-12: wrong export"),
		chromedp.Click(chromedp.CSS(`#cancel`)), chromedp.WaitVisible(chromedp.CSS(`p.done[data-done=cancel]`)))
	waitFor(t, 30*time.Second, "live-1's running tasks to end", func() bool {
		bt := b.batch("live-1")
		return bt.Pending() == 0 && bt.Control == ledger.ControlCancelled
	})
	page := checkAgainstStatus("live-1's page, cancelled", "/batches/live-1", `main [data-field]`, "live-1")
	if page["cancelled"] == "0" || page["pending"] != "0" {
		t.Errorf("cancelled through the console: cancelled %s pending %s", page["cancelled"], page["pending"])
	}
	history := text(`ul.history`)
	if !strings.Contains(history, "cancel: ticket OPS-12") || !strings.Contains(history, "pause") {
		t.Errorf("history %q lacks the console's pause and cancel", history)
	}
	shot("batch-cancelled")

	run("queues", chromedp.Navigate(base+"/queues"), chromedp.WaitVisible(chromedp.CSS(`table.workers`)))
	if depth := text(`tr[data-queue="default"] [data-field="pending"]`); depth != "0" {
		t.Errorf("after the cancel, queue default holds %s pending tasks", depth)
	}
	shot("queues")
	run("profiles", chromedp.Navigate(base+"/profiles"), chromedp.WaitVisible(chromedp.CSS(`table.profiles`)))
	auth := text(`tr[data-profile="default"] [data-field="auth"]`)
	if auth != "ok" {
		t.Errorf("profile default's auth: %q", auth)
	}
	shot("profiles")
	run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`table.batches`)))
	shot("batches-phone")
}
