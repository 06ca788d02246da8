package tasks

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxIDDigits is the longest conversation id accepted: an int64 has at most
// 19 decimal digits.
const MaxIDDigits = 19

// InvalidIDError reports why a string is not a conversation id.
type InvalidIDError struct {
	// Input is the rejected text, as given.
	Input string
	// Reason says which rule the input breaks, in words meant for an operator.
	Reason string
}

// Error returns `invalid conversation id "<input>": <reason>`, quoting at
// most 64 bytes of the input so that a pasted document does not flood a log.
func (e *InvalidIDError) Error() string {
	return fmt.Sprintf("invalid conversation id %s: %s", quoteShort(e.Input), e.Reason)
}

// ValidateID reports whether s is a conversation id: 1 to 19 ASCII decimal
// digits, no sign, no leading zero, and a value that fits an int64. The API
// models the id as an int64, and the rule also guarantees that the id is safe
// to put in a URL path as it is.
//
// The error, when not nil, is an [*InvalidIDError].
func ValidateID(s string) error {
	if reason := idProblem(s); reason != "" {
		return &InvalidIDError{Input: s, Reason: reason}
	}
	return nil
}

func idProblem(s string) string {
	if s == "" {
		return "is empty"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			continue
		}
		if c >= utf8.RuneSelf {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Sprintf("has the non-ASCII character %U at byte %d; only ASCII digits 0-9 are allowed", r, i+1)
		}
		return fmt.Sprintf("has %q at byte %d; only ASCII digits 0-9 are allowed", c, i+1)
	}
	if s[0] == '0' {
		if len(s) == 1 {
			return "is zero"
		}
		return "has a leading zero"
	}
	if len(s) > MaxIDDigits {
		return fmt.Sprintf("has %d digits; at most %d are allowed", len(s), MaxIDDigits)
	}
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return "is larger than the int64 maximum 9223372036854775807"
	}
	return ""
}

// quoteShort quotes s like %q, keeping at most 64 bytes of it.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}
