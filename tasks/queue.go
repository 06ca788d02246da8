package tasks

import (
	"errors"
	"fmt"
	"slices"
)

// MaxQueueLen is the longest queue name accepted.
const MaxQueueLen = 64

// ReservedQueues are queue names no deletion may use: "callbacks" is the
// queue of callback deliveries (callback.Queue), whose server has no handler
// for a deletion, so a deletion put there would be retried forever and its
// batch would never end.
var ReservedQueues = []string{"callbacks"}

// ErrInvalidQueue is wrapped by the error [ValidateQueue] returns.
var ErrInvalidQueue = errors.New("invalid queue name")

// ValidateQueue checks the name of a queue deletions go to: 1 to
// [MaxQueueLen] letters, digits, '.', '_' or '-', starting with a letter or
// digit, and not one of [ReservedQueues].
//
// Queue names become part of asynq's keys ("asynq:{queue}:…", where braces
// would break its hash tags), of the ledger's link entries ("batch@queue")
// and of a batch's space-separated queue list, so none of those separators
// is allowed.
func ValidateQueue(name string) error {
	if !plainName(name, MaxQueueLen) {
		return fmt.Errorf("%w %s: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit",
			ErrInvalidQueue, quoteShort(name), MaxQueueLen)
	}
	if slices.Contains(ReservedQueues, name) {
		return fmt.Errorf("%w %q: reserved for callback deliveries; choose another name", ErrInvalidQueue, name)
	}
	return nil
}

// plainName reports whether name has 1 to maxLen ASCII letters, digits, '.',
// '_' or '-', starting with a letter or digit: the characters that no Redis
// key or index member of this module uses as a separator.
func plainName(name string, maxLen int) bool {
	if name == "" || len(name) > maxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
