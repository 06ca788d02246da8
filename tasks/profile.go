package tasks

import (
	"errors"
	"fmt"
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
