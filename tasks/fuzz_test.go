package tasks_test

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// FuzzValidateID: whatever the input, ValidateID accepts exactly the
// decimal strings of positive int64s without sign or leading zero, which
// are safe as a URL path segment, and its rejections explain themselves in
// bounded, valid UTF-8.
//
//	go test -run '^$' -fuzz FuzzValidateID -fuzztime 2m ./tasks/
func FuzzValidateID(f *testing.F) {
	for _, seed := range []string{"7379996104798150001", "1", "0", "0123", "-5", "+5", "12ab", "123/../x",
		"73799961047981500011", "9223372036854775807", "9223372036854775808", "１２３", "1.5", "12\x003", "", " 1",
		strings.Repeat("9", 5000), "\xff\xfe", "1\u00002"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := tasks.ValidateID(s)
		n, parseErr := strconv.ParseInt(s, 10, 64)
		want := parseErr == nil && n > 0 && strconv.FormatInt(n, 10) == s
		if (err == nil) != want {
			t.Fatalf("ValidateID(%q) = %v; ParseInt gives %d, %v", s, err, n, parseErr)
		}
		if err == nil {
			if url.PathEscape(s) != s {
				t.Fatalf("accepted %q needs escaping in a path", s)
			}
			return
		}
		var invalid *tasks.InvalidIDError
		if !errors.As(err, &invalid) || invalid.Input != s || invalid.Reason == "" {
			t.Fatalf("ValidateID(%q) = %#v", s, err)
		}
		msg := err.Error()
		if !utf8.ValidString(msg) && utf8.ValidString(s) {
			t.Fatalf("message %q is not valid UTF-8", msg)
		}
		if len(msg) > 400 {
			t.Fatalf("message of %d bytes for input of %d", len(msg), len(s))
		}
	})
}
