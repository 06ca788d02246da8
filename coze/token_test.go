//go:build unix

package coze_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// tokenResult is what one Token call returned.
type tokenResult struct {
	tok string
	err error
}

// tokenWithin calls src.Token in a goroutine and fails the test if it has
// not returned within a generous bound: a token file must never hang its
// reader (a FIFO without a writer, a device that never ends).
func tokenWithin(t *testing.T, src coze.TokenSource) tokenResult {
	t.Helper()
	done := make(chan tokenResult, 1)
	go func() {
		tok, err := src.Token()
		done <- tokenResult{tok, err}
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Token() has not returned after 10s: reading the token file hangs")
		return tokenResult{}
	}
}

// TestFileTokenRefusesAFIFO is issue 11, point 8: a FIFO as token file hung
// the worker before its first log line.
func TestFileTokenRefusesAFIFO(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Should the test fail, wake the reader blocked in open so that the
	// goroutine ends with the test.
	t.Cleanup(func() {
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = w.Close() // opened only to wake the reader
		}
	})
	r := tokenWithin(t, coze.FileToken(path))
	if r.err == nil || !strings.Contains(r.err.Error(), "not a regular file") || !strings.Contains(r.err.Error(), path) {
		t.Errorf("Token() = %q, %v; want an error naming the file and saying it is not a regular file", r.tok, r.err)
	}
}

// TestFileTokenRefusesADevice: /dev/zero never ends; reading it whole
// grew the worker by 370 MB/s.
func TestFileTokenRefusesADevice(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	r := tokenWithin(t, coze.FileToken("/dev/zero"))
	if r.err == nil || !strings.Contains(r.err.Error(), "not a regular file") {
		t.Errorf("Token() = %q, %v; want an error saying /dev/zero is not a regular file", r.tok, r.err)
	}
}

// TestFileTokenRefusesALargeFile: a token is a few hundred bytes; a file of
// a megabyte is not a token file, and its content stays out of the error.
func TestFileTokenRefusesALargeFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	big := strings.Repeat("pat_secret", (1<<20)/10+1)
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	r := tokenWithin(t, coze.FileToken(path))
	want := fmt.Sprintf("at most %d bytes", coze.MaxTokenFileBytes)
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Fatalf("Token() = %.20q, %v; want an error saying %q", r.tok, r.err, want)
	}
	if strings.Contains(r.err.Error(), "pat_secret") {
		t.Errorf("the error quotes the file's content: %v", r.err)
	}
}

// TestFileTokenAtTheSizeLimit: a file of exactly the limit is read.
func TestFileTokenAtTheSizeLimit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	tok := "pat_" + strings.Repeat("x", coze.MaxTokenFileBytes-5)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := tokenWithin(t, coze.FileToken(path)); r.err != nil || r.tok != tok {
		t.Errorf("Token() = %.20q…, %v; want the token", r.tok, r.err)
	}
}

// TestFileTokenFollowsSymlinks: Kubernetes mounts a secret as a symlink to
// a symlinked directory; that must keep working.
func TestFileTokenFollowsSymlinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "..2026_01_01"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "..2026_01_01", "token"), []byte("pat_linked\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..2026_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token")
	if err := os.Symlink(filepath.Join("..data", "token"), path); err != nil {
		t.Fatal(err)
	}
	if r := tokenWithin(t, coze.FileToken(path)); r.err != nil || r.tok != "pat_linked" {
		t.Errorf("Token() = %q, %v; want the token behind the symlinks", r.tok, r.err)
	}
}

// modeWarnings records the warnings of a file token source.
type modeWarnings struct {
	mu    sync.Mutex
	calls []string
}

func (w *modeWarnings) record(path string, perm fs.FileMode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, fmt.Sprintf("%s %04o", path, perm))
}

func (w *modeWarnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

// TestFileTokenWarnsOnceWhenOthersCanRead: a token file readable by group
// or others draws one warning naming the file and its mode, however often
// it is read again.
func TestFileTokenWarnsOnceWhenOthersCanRead(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	write := func(tok string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(tok), 0o644); err != nil { //nolint:gosec // readable by others: the warning under test
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil { //nolint:gosec // whatever the umask
			t.Fatal(err)
		}
	}
	write("pat_one")
	var warned modeWarnings
	src := coze.FileToken(path, coze.OnReadableByOthers(warned.record))
	if r := tokenWithin(t, src); r.err != nil || r.tok != "pat_one" {
		t.Fatalf("Token() = %q, %v", r.tok, r.err)
	}
	// A rotation makes the source read the file again.
	write("pat_two_longer")
	deadline := time.Now().Add(5 * time.Second)
	for r := tokenWithin(t, src); r.tok != "pat_two_longer"; r = tokenWithin(t, src) {
		if time.Now().After(deadline) {
			t.Fatalf("rotated token not picked up: %q, %v", r.tok, r.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := []string{path + " 0644"}
	if got := warned.list(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("warnings %q, want exactly %q", got, want)
	}
}

// TestFileTokenPrivateFileDrawsNoWarning: 0600 and 0400 are what a token
// file should be.
func TestFileTokenPrivateFileDrawsNoWarning(t *testing.T) {
	t.Parallel()
	for _, perm := range []fs.FileMode{0o600, 0o400} {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte("pat_private"), perm); err != nil {
			t.Fatal(err)
		}
		var warned modeWarnings
		if r := tokenWithin(t, coze.FileToken(path, coze.OnReadableByOthers(warned.record))); r.err != nil {
			t.Fatalf("%04o: %v", perm, r.err)
		}
		if got := warned.list(); len(got) != 0 {
			t.Errorf("%04o: warnings %q, want none", perm, got)
		}
	}
}

// TestFileTokenErrorsNeverQuoteTheToken: a bad token in a file is refused
// without being repeated.
func TestFileTokenErrorsNeverQuoteTheToken(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("pat_half secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := tokenWithin(t, coze.FileToken(path))
	if r.err == nil || strings.Contains(r.err.Error(), "pat_half") || strings.Contains(r.err.Error(), "secret") {
		t.Errorf("Token() error %v: want an error that does not quote the token", r.err)
	}
}
