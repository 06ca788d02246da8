// Package logwriter batches a process's log lines into few writes.
//
// A worker logs a line per attempt: thousands a second, each a write system
// call when the logger writes straight to a file or pipe, which costs more
// than formatting the line. A Writer keeps lines in memory and writes them
// out a short interval after the first of them, when the buffer fills, and
// on Flush; the process flushes before it exits. A crash loses at most the
// last interval's lines, never an outcome: outcomes are in the ledger.
package logwriter

import (
	"io"
	"sync"
	"time"
)

// DefaultInterval is how long a line may wait in the buffer.
const DefaultInterval = 100 * time.Millisecond

// DefaultSize is how many bytes the buffer holds before it is written out.
const DefaultSize = 64 << 10

// Writer is an io.Writer that batches writes to another. It is safe for
// concurrent use; each Write is written out whole, never split or
// interleaved with another.
type Writer struct {
	mu       sync.Mutex
	out      io.Writer
	buf      []byte
	interval time.Duration
	size     int
	timer    *time.Timer // armed while buf holds lines
	err      error       // the first write error, returned by Flush
}

// New returns a Writer to out that holds lines for at most interval and
// DefaultSize bytes.
func New(out io.Writer, interval time.Duration) *Writer {
	return &Writer{out: out, interval: interval, size: DefaultSize}
}

// Write appends p to the buffer; it writes the buffer out first when p
// would not fit. It never returns an error: a logger has nowhere to report
// one (Flush returns the first).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf)+len(p) > w.size {
		w.flushLocked()
	}
	if len(p) >= w.size {
		w.writeLocked(p)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if w.timer == nil {
		w.timer = time.AfterFunc(w.interval, func() { _ = w.Flush() })
	}
	return len(p), nil
}

// Flush writes out what is buffered and returns the first write error seen
// since the Writer was made.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	return w.err
}

func (w *Writer) flushLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.buf) > 0 {
		w.writeLocked(w.buf)
		w.buf = w.buf[:0]
	}
}

func (w *Writer) writeLocked(p []byte) {
	if _, err := w.out.Write(p); err != nil && w.err == nil {
		w.err = err
	}
}
