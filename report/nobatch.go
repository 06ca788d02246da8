package report

import "fmt"

// NoBatchError is the error of every command asked about a batch that
// Redis does not hold, in one wording: the name and what may have become
// of it. It wraps [ErrNoBatch].
func NoBatchError(name string) error {
	return fmt.Errorf("%w %q: it may have expired, or never existed, or Redis lost it before any worker or run "+
		"could notice (check that Redis persists its data: AOF)", ErrNoBatch, name)
}
