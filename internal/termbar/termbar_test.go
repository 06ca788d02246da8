package termbar_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/internal/termbar"
)

func TestTerminalLogClearsAndRedrawsTheBar(t *testing.T) {
	t.Parallel()
	var out logbuf.Buffer
	b := termbar.New(&out, true)
	fmt.Fprint(b, "before any bar\n")
	b.Draw("[#--] 33.3%")
	fmt.Fprint(b, "time=1 level=WARN msg=one\ntime=2 level=WARN msg=two\n")
	b.Draw("[##-] 66.6%")
	fmt.Fprint(b, "no newline")
	b.Done()
	fmt.Fprint(b, "after\n")
	b.Draw("ignored after Done")
	want := "before any bar\n" +
		"\r\033[K[#--] 33.3%" +
		"\r\033[Ktime=1 level=WARN msg=one\ntime=2 level=WARN msg=two\n[#--] 33.3%" +
		"\r\033[K[##-] 66.6%" +
		"\r\033[Kno newline\n[##-] 66.6%" +
		"\n" +
		"after\n"
	if got := out.String(); got != want {
		t.Errorf("terminal output\n got %q\nwant %q", got, want)
	}
}

func TestPipeIsPlainLines(t *testing.T) {
	t.Parallel()
	var out logbuf.Buffer
	b := termbar.New(&out, false)
	b.Draw("progress 1")
	fmt.Fprint(b, "a log line\n")
	b.Draw("progress 2")
	b.Done()
	if got, want := out.String(), "progress 1\na log line\nprogress 2\n"; got != want {
		t.Errorf("pipe output %q, want %q", got, want)
	}
}

// TestConcurrentWritesStayWhole: logs and redraws from many goroutines
// never split one another.
func TestConcurrentWritesStayWhole(t *testing.T) {
	t.Parallel()
	var out logbuf.Buffer
	b := termbar.New(&out, true)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 200 {
				fmt.Fprintf(b, "log %d %d\n", g, i)
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 200 {
				b.Draw(fmt.Sprintf("bar %d %d", g, i))
			}
		}()
	}
	wg.Wait()
	b.Done()
	for _, chunk := range strings.Split(out.String(), "\r\033[K") {
		for _, l := range strings.Split(chunk, "\n") {
			if l != "" && !strings.HasPrefix(l, "log ") && !strings.HasPrefix(l, "bar ") {
				t.Fatalf("a torn line %q", l)
			}
			if strings.Count(l, "log ")+strings.Count(l, "bar ") > 1 {
				t.Fatalf("two writes on one line: %q", l)
			}
		}
	}
}
