package tasks

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxProfileLen is the longest profile name accepted.
const MaxProfileLen = 64

// ErrInvalidProfile is wrapped by the error [ValidateProfile] returns.
var ErrInvalidProfile = errors.New("invalid profile name")

// ValidateProfile checks the name of a profile (an identity the worker acts
// as): 1 to [MaxProfileLen] letters, digits, '.', '_' or '-', starting with
// a letter or digit. Profile names travel in task payloads and become part
// of Redis keys (a profile's rate budget) and metric label values, so the
// rule is the one of queue and batch names.
func ValidateProfile(name string) error {
	if !plainName(name, MaxProfileLen) {
		return fmt.Errorf("%w %s: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit",
			ErrInvalidProfile, quoteShort(name), MaxProfileLen)
	}
	return nil
}

// MaxSessionLen is the longest session name accepted, in bytes.
const MaxSessionLen = 256

// ErrInvalidSession is wrapped by the error [ValidateSession] returns.
var ErrInvalidSession = errors.New("invalid session name")

// ValidateSession checks an end user's session name (the JWT session_name
// an app mints its user's tokens with): 1 to [MaxSessionLen] bytes of
// UTF-8 without control characters. Apps choose their own user ids, so
// any printable text is allowed. The error never quotes the name: it is
// personal data.
func ValidateSession(name string) error {
	switch {
	case name == "" || len(name) > MaxSessionLen:
		return fmt.Errorf("%w: use 1-%d bytes (this one has %d)", ErrInvalidSession, MaxSessionLen, len(name))
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidSession)
	}
	for i, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%w: a control character at byte %d", ErrInvalidSession, i+1)
		}
	}
	return nil
}
