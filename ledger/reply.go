package ledger

import (
	"fmt"
	"strconv"
)

// A script's reply arrives as go-redis decodes RESP: integers as int64,
// bulk strings as string, nil as nil. The decoders below check every value
// they read, so that a reply of an unexpected shape (a script changed on
// one side only, a proxy in between) is an error naming the script, never
// a panic or a silently wrong figure.

// replyError reports a reply of script that is not what the caller reads.
type replyError struct {
	script string
	reply  any
	want   string
}

func (e *replyError) Error() string {
	return fmt.Sprintf("ledger: %s replied %v, not %s", e.script, e.reply, e.want)
}

// replyInt reads an integer reply value: a RESP integer, or the text of
// one (a script may pass a number on as the text Redis stored it as).
func replyInt(script string, v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case string:
		if i, err := strconv.ParseInt(n, 10, 64); err == nil {
			return i, nil
		}
	}
	return 0, &replyError{script, v, "an integer"}
}

// replyIntOr0 reads an integer reply value that may be missing (a field
// the hash lacks): nil is 0.
func replyIntOr0(script string, v any) (int64, error) {
	if v == nil {
		return 0, nil
	}
	return replyInt(script, v)
}

// replyText reads a text reply value; a missing one (nil) is "".
func replyText(script string, v any) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	case nil:
		return "", nil
	}
	return "", &replyError{script, v, "text"}
}
