package systemtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// barPattern matches the progress bar of `run` on a terminal.
var barPattern = regexp.MustCompile(`\[[#-]+\] +\d+\.\d% \d+/\d+`)

// runOnTerminal runs `coze-eraser run` on n ids against a slow fake, with a
// log line per attempt, under util-linux script(1): its standard error is a
// pseudo-terminal. It returns what the terminal received.
func runOnTerminal(t *testing.T, n int) string {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("script(1) is not on PATH: it gives the command a pseudo-terminal; install it (Debian/Ubuntu: apt-get install -y bsdutils)")
	}
	// Slow enough that the bar is redrawn (every second on a terminal)
	// while attempts are being logged.
	fake := cozetest.NewServer(cozetest.WithLatency(150 * time.Millisecond))
	t.Cleanup(fake.Close)
	file := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(file, []byte(strings.Join(ids(n, 7379996104798150000), "\n")+"\nnot-an-id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	command := strings.Join([]string{binary, "run", "--file", file, "--coze-base-url", fake.URL,
		"--log-level", "debug", "--concurrency", "2", "--rate", "0", "--metrics-addr="}, " ")
	cmd := exec.Command(script, "--quiet", "--return", "--command", command, "/dev/null")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "COZE_API_TOKEN=pat_test", "COLUMNS=120", "TERM=xterm"}
	cmd.Stdin = nil // script(1) reads /dev/null: nothing is typed
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("run under a pseudo-terminal did not exit in 90s; output:\n%q", out)
	}
	// Exit 1: the one invalid line, there to be reported under the bar.
	if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("run under a pseudo-terminal: %v, want exit status 1; output:\n%s", err, out)
	}
	return string(out)
}

// screen replays what a terminal received and returns its lines as they
// stand at the end: \r returns to the first column, ESC[K clears to the end
// of the line, and other characters overwrite what is under the cursor.
func screen(t *testing.T, raw string) []string {
	t.Helper()
	var (
		lines []string
		cur   []rune
		col   int
	)
	rs := []rune(raw)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '\r':
			col = 0
		case '\n':
			lines, cur, col = append(lines, string(cur)), nil, 0
		case '\x1b':
			if i+2 >= len(rs) || rs[i+1] != '[' || rs[i+2] != 'K' {
				t.Fatalf("an escape sequence other than ESC[K at %d: %q", i, string(rs[i:min(i+10, len(rs))]))
			}
			cur = cur[:col]
			i += 2
		default:
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col++
		}
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// TestRunLogLinesNeverShareTheBarsLine is issue 12's terminal point: on a
// terminal, each log line stands on a line of its own, none is lost, and
// the bar is drawn again below the logs.
func TestRunLogLinesNeverShareTheBarsLine(t *testing.T) {
	t.Parallel()
	const n = 24
	raw := runOnTerminal(t, n)
	firstBar := barPattern.FindStringIndex(raw)
	if firstBar == nil {
		t.Fatalf("no progress bar on the terminal:\n%q", raw)
	}
	if !strings.Contains(raw[firstBar[1]:], "level=DEBUG") {
		t.Fatalf("no log line after the first bar, nothing tested:\n%q", raw)
	}
	lines := screen(t, raw)
	logs, bars := 0, 0
	for i, l := range lines {
		isLog, isBar := strings.Contains(l, "level="), barPattern.MatchString(l)
		if isLog && (isBar || !strings.HasPrefix(l, "time=")) {
			t.Errorf("screen line %d mixes a log line with something else: %q", i, l)
		}
		if isLog {
			logs++
		}
		if isBar {
			bars++
		}
	}
	if want := strings.Count(raw, "level="); logs != want {
		t.Errorf("%d log lines on the screen, %d written: the bar wiped some", logs, want)
	}
	if logs < n {
		t.Errorf("%d log lines, want at least one per id (%d)", logs, n)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, fmt.Sprintf("line %d: invalid", n+1)) }) {
		t.Errorf("the invalid line is not reported on a line of its own")
	}
	if bars != 1 {
		t.Errorf("%d bars left on the screen, want one (the last):\n%s", bars, strings.Join(lines, "\n"))
	}
	if !t.Failed() {
		return
	}
	t.Logf("screen:\n%s", strings.Join(lines, "\n"))
}

// TestRunInAPipeHasNoControlCharacters: with standard error a pipe, run
// prints plain lines, logs and progress alike: no \r, no escape sequence.
func TestRunInAPipeHasNoControlCharacters(t *testing.T) {
	t.Parallel()
	fake := cozetest.NewServer(cozetest.WithLatency(50 * time.Millisecond))
	t.Cleanup(fake.Close)
	file := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(file, []byte(strings.Join(ids(20, 7379996104798150000), "\n")+"\nnot-an-id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, map[string]string{"COZE_API_TOKEN": "pat_test"}, "run", "--file", file, "--coze-base-url", fake.URL,
		"--log-level", "debug", "--concurrency", "2", "--rate", "0", "--metrics-addr=", "--progress-every", "100ms")
	if code, _ := p.wait(60 * time.Second); code != 1 { // 1: the invalid line
		t.Fatalf("run exit %d, want 1; output:\n%s", code, p.out.String())
	}
	out := p.out.String()
	if i := strings.IndexAny(out, "\r\x1b"); i >= 0 {
		t.Errorf("a control character at %d of the piped output:\n%q", i, out)
	}
	for _, want := range []string{"level=DEBUG", "done (", "line 21:"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the piped output:\n%s", want, out)
		}
	}
}
