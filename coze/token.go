package coze

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// TokenSource supplies the bearer token for each call. Errors it returns
// must never contain the token.
type TokenSource interface {
	Token() (string, error)
}

// StaticToken is a token given once, for example from COZE_API_TOKEN.
type StaticToken string

// Token returns the token, or an error when it is not a usable bearer token.
func (s StaticToken) Token() (string, error) {
	if err := CheckToken(string(s)); err != nil {
		return "", err
	}
	return string(s), nil
}

// CheckToken reports whether tok can be sent as a bearer token: not empty,
// printable ASCII without spaces. The error never quotes the token.
func CheckToken(tok string) error {
	if tok == "" {
		return errors.New("the token is empty")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("the token has a space, control or non-ASCII character at byte %d", i+1)
		}
	}
	return nil
}

// MaxTokenFileBytes bounds what [FileToken] reads from its file. A Coze
// token is well under a kilobyte; the bound keeps a wrong path (a log file,
// /dev/zero) from filling memory.
const MaxTokenFileBytes = 64 << 10

// FileTokenOption configures [FileToken].
type FileTokenOption func(*fileToken)

// OnReadableByOthers sets what happens when the token file can be read by
// its group or by others (a mode such as 0644): fn gets the path and the
// permission bits, never the content, once per source however often the
// file is read again. It must not call Token. The default is a warning on
// [slog.Default].
func OnReadableByOthers(fn func(path string, perm fs.FileMode)) FileTokenOption {
	return func(f *fileToken) { f.file.onReadable = fn }
}

// FileToken returns a source that reads the token from a file, such as a
// Docker or Kubernetes secret, and reads it again when the file changes, so a
// rotated token is picked up without a restart. Surrounding whitespace is
// ignored. Symlinks are followed (Kubernetes mounts secrets through them);
// anything but a regular file of at most [MaxTokenFileBytes] is refused
// without being read, so that a FIFO cannot block the caller and a device
// cannot fill its memory.
func FileToken(path string, opts ...FileTokenOption) TokenSource {
	f := &fileToken{now: time.Now, file: &secretFile[string]{path: path, name: "token file", holds: "only the token",
		maxBytes: MaxTokenFileBytes, parse: parseTokenFile, onReadable: warnReadable}}
	for _, opt := range opts {
		opt(f)
	}
	return f
}

// warnReadable is the default of [OnReadableByOthers].
func warnReadable(path string, perm fs.FileMode) {
	slog.Default().Warn("the token file can be read by other users: make it 0600 or 0400 (Kubernetes: defaultMode 0400)",
		"path", path, "mode", fmt.Sprintf("%04o", perm))
}

type fileToken struct {
	file *secretFile[string]
	now  func() time.Time

	mu        sync.Mutex
	token     string
	checkedAt time.Time
}

// recheckEvery bounds how often the file is looked at: a stat per API call
// would be wasteful at thousands of calls a second.
const recheckEvery = time.Second

func (f *fileToken) Token() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.token != "" && now.Sub(f.checkedAt) < recheckEvery {
		return f.token, nil
	}
	f.checkedAt = now
	tok, err := f.file.load()
	if err != nil {
		return "", err
	}
	f.token = tok
	return tok, nil
}

// parseTokenFile reads a token file's content: the token, with the
// whitespace around it ignored.
func parseTokenFile(raw []byte) (string, error) {
	tok := strings.TrimSpace(string(raw))
	return tok, CheckToken(tok)
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "a special file"
}
