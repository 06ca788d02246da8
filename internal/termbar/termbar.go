// Package termbar shares one output between a progress bar and log lines.
//
// On a terminal the bar is redrawn in place (a carriage return, then "clear
// to the end of the line", then the bar, with no newline). A log line
// written straight to the same terminal would land after the bar, on its
// line. A Bar owns the output while the bar is shown: every write, bar or
// log, goes through it under one mutex, and a log line first clears the
// bar, then prints, then draws the bar again below it. In a pipe a Bar
// writes plain lines and never a control character.
package termbar

import (
	"bytes"
	"io"
	"sync"
)

// clearLine returns the cursor to the first column and clears the line.
const clearLine = "\r\033[K"

// Bar is a progress bar and a log writer on one output. It is safe for
// concurrent use.
type Bar struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	shown string // the bar on the terminal's last line; "" when none
	done  bool
}

// New returns a Bar writing to out; tty says whether out is a terminal
// (redraw in place) or not (one plain line per Draw).
func New(out io.Writer, tty bool) *Bar {
	return &Bar{out: out, tty: tty}
}

// Terminal reports whether the Bar draws in place.
func (b *Bar) Terminal() bool { return b.tty }

// Draw shows line as the bar: in place on a terminal, as a line of its own
// otherwise. After Done it does nothing.
func (b *Bar) Draw(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	if !b.tty {
		_, _ = io.WriteString(b.out, line+"\n")
		return
	}
	_, _ = io.WriteString(b.out, clearLine+line)
	b.shown = line
}

// Write writes log lines. On a terminal with a bar shown it clears the bar,
// writes p (ending it with a newline if it has none, so the bar cannot
// follow on its line) and draws the bar again below.
func (b *Bar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shown == "" {
		return b.out.Write(p)
	}
	buf := make([]byte, 0, len(clearLine)+len(p)+1+len(b.shown))
	buf = append(buf, clearLine...)
	buf = append(buf, p...)
	if !bytes.HasSuffix(p, []byte("\n")) {
		buf = append(buf, '\n')
	}
	buf = append(buf, b.shown...)
	// One write, so the terminal never shows the log without its bar.
	if _, err := b.out.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Done leaves the last bar on its line and ends that line; later writes
// go straight to the output.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shown != "" {
		_, _ = io.WriteString(b.out, "\n")
	}
	b.shown, b.done = "", true
}
