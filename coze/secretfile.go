package coze

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// secretFile is a small file holding a secret (a token, a private key),
// such as a Docker or Kubernetes secret: it is read, and parsed, again when
// it changes (another inode, size or modification time), so that a rotated
// secret is used without a restart. Symlinks are followed (Kubernetes mounts
// secrets through them); anything but a regular file of at most maxBytes is
// refused without being read, so that a FIFO cannot block the caller and a
// device cannot fill its memory. Errors name the file, never its content.
type secretFile[T any] struct {
	path string
	// name is how errors name the file ("token file").
	name string
	// holds says what the file should hold, for errors about another file.
	holds    string
	maxBytes int64
	// parse reads the secret; its error must not quote raw.
	parse func(raw []byte) (T, error)
	// onReadable is told, once, that the group or others can read the file.
	onReadable func(path string, perm fs.FileMode)

	mu     sync.Mutex
	val    T
	info   fs.FileInfo // of the file val was read from; nil before
	warned bool
}

// load returns the secret, reading the file again if it changed. A file that
// can no longer be read is an error, not the old secret: a removed secret
// is more likely withdrawn than lost.
func (f *secretFile[T]) load() (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var zero T
	info, err := os.Stat(f.path)
	if err != nil {
		return zero, f.errorf("cannot read it: %s", pathErrReason(err))
	}
	// Checked before opening: opening a FIFO waits for a writer, and
	// opening a device can have effects of its own.
	if err := f.check(info); err != nil {
		return zero, err
	}
	if f.info != nil && os.SameFile(info, f.info) && info.ModTime().Equal(f.info.ModTime()) && info.Size() == f.info.Size() {
		return f.val, nil
	}
	raw, info, err := f.read()
	if err != nil {
		return zero, err
	}
	defer clear(raw)
	v, err := f.parse(raw)
	if err != nil {
		return zero, f.errorf("%v", err)
	}
	if perm := info.Mode().Perm(); perm&0o044 != 0 && !f.warned {
		f.warned = true
		f.onReadable(f.path, perm)
	}
	f.val, f.info = v, info
	return v, nil
}

func (f *secretFile[T]) errorf(format string, args ...any) error {
	return fmt.Errorf("%s %s: %s", f.name, f.path, fmt.Sprintf(format, args...))
}

// check refuses anything but a regular file within the size limit.
func (f *secretFile[T]) check(info fs.FileInfo) error {
	if !info.Mode().IsRegular() {
		return f.errorf("not a regular file but %s; give the path of a file holding %s", fileKind(info.Mode()), f.holds)
	}
	if info.Size() > f.maxBytes {
		return f.tooLarge()
	}
	return nil
}

func (f *secretFile[T]) tooLarge() error {
	return f.errorf("larger than the limit: it should hold %s, at most %d bytes", f.holds, f.maxBytes)
}

// read reads the file, at most one byte past the limit. It opens without
// blocking, in case the path was replaced by a FIFO since it was checked,
// and checks again what it opened.
func (f *secretFile[T]) read() ([]byte, fs.FileInfo, error) {
	file, err := os.OpenFile(f.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, f.errorf("cannot read it: %s", pathErrReason(err))
	}
	defer file.Close() //nolint:errcheck // read only: nothing to lose
	info, err := file.Stat()
	if err != nil {
		return nil, nil, f.errorf("cannot read it: %s", pathErrReason(err))
	}
	if err := f.check(info); err != nil {
		return nil, nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(file, f.maxBytes+1))
	if err != nil {
		return nil, nil, f.errorf("cannot read it: %s", pathErrReason(err))
	}
	if int64(len(raw)) > f.maxBytes {
		clear(raw)
		return nil, nil, f.tooLarge()
	}
	return raw, info, nil
}

// pathErrReason is the cause of a file error without the path, which the
// caller names already.
func pathErrReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
