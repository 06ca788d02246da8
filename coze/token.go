package coze

import (
	"errors"
	"fmt"
	"os"
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

// FileToken returns a source that reads the token from a file, such as a
// Docker or Kubernetes secret, and reads it again when the file changes, so a
// rotated token is picked up without a restart. Surrounding whitespace is
// ignored.
func FileToken(path string) TokenSource {
	return &fileToken{path: path, now: time.Now}
}

type fileToken struct {
	path string
	now  func() time.Time

	mu        sync.Mutex
	token     string
	modTime   time.Time
	size      int64
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
	info, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if f.token != "" && info.ModTime().Equal(f.modTime) && info.Size() == f.size {
		return f.token, nil
	}
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", f.path, err)
	}
	f.token, f.modTime, f.size = tok, info.ModTime(), info.Size()
	return tok, nil
}
