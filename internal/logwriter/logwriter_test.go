package logwriter_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/logbuf"
	"github.com/coze-eraser/coze-eraser/internal/logwriter"
)

// countingWriter records what it is given and how many writes it took.
type countingWriter struct {
	logbuf.Buffer
	mu     sync.Mutex
	writes int
	err    error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Buffer.Write(p)
}

func (c *countingWriter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

func TestLinesWaitForFlush(t *testing.T) {
	t.Parallel()
	out := &countingWriter{}
	w := logwriter.New(out, time.Hour)
	for i := range 100 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if out.count() != 0 {
		t.Fatalf("%d writes before a flush, want 0", out.count())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.count() != 1 || strings.Count(out.String(), "\n") != 100 || !strings.HasPrefix(out.String(), "line 0\nline 1\n") {
		t.Errorf("after Flush: %d writes, output %q…", out.count(), out.String()[:20])
	}
}

func TestIntervalWritesOut(t *testing.T) {
	t.Parallel()
	out := &countingWriter{}
	w := logwriter.New(out, 10*time.Millisecond)
	fmt.Fprintln(w, "one")
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "one\n" {
		if time.Now().After(deadline) {
			t.Fatal("the line was not written out after the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintln(w, "two")
	for out.String() != "one\ntwo\n" {
		if time.Now().After(deadline) {
			t.Fatal("a line after the first write-out waited forever")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFullBufferWritesOut(t *testing.T) {
	t.Parallel()
	out := &countingWriter{}
	w := logwriter.New(out, time.Hour)
	line := strings.Repeat("x", 1000) + "\n"
	for range 200 { // 200 KB through a 64 KB buffer
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if n := out.count(); n < 2 || n > 4 {
		t.Errorf("%d writes for 200 KB, want 3", n)
	}
	if _, err := w.Write([]byte(strings.Repeat("y", logwriter.DefaultSize+1))); err != nil { // bigger than the buffer: written whole
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := len(out.String()); got != 200*len(line)+logwriter.DefaultSize+1 {
		t.Errorf("%d bytes out, want every byte in", got)
	}
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	t.Parallel()
	out := &countingWriter{}
	w := logwriter.New(out, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				fmt.Fprintf(w, "goroutine %d line %d %s\n", g, i, strings.Repeat("z", 100))
			}
		}()
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4000 {
		t.Fatalf("%d lines, want 4000", len(lines))
	}
	for _, l := range lines {
		var g, i int
		var rest string
		if n, _ := fmt.Sscanf(l, "goroutine %d line %d %s", &g, &i, &rest); n != 3 || len(rest) != 100 {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestWriteErrorReportedByFlush(t *testing.T) {
	t.Parallel()
	out := &countingWriter{err: errors.New("disk full")}
	w := logwriter.New(out, time.Hour)
	if _, err := fmt.Fprintln(w, "lost"); err != nil {
		t.Fatalf("Write returned %v; a logger cannot use it", err)
	}
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Errorf("Flush = %v, want the write error", err)
	}
}
