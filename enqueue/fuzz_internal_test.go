package enqueue

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzReadLines: any input is read to its end without a panic; every line
// it yields is trimmed, has no newline, and numbers only go up; long lines
// come back as LineTooLongError with a short prefix. A lone carriage return
// inside a line is not a line break (the fuzzer's first find, kept in
// testdata): the id check then reports it as an invalid character.
//
//	go test -run '^$' -fuzz FuzzReadLines -fuzztime 2m ./enqueue/
func FuzzReadLines(f *testing.F) {
	for _, seed := range []string{
		"\xEF\xBB\xBF7379996104798150001\r\n\n  7379996104798150002 \r\nabc\n",
		"1\n2\n3", "\r\r\n\n", "", "\xEF\xBB\xBF", "x\r", strings.Repeat("9", 5000) + "\n1\n",
		"１２３\n", "\x00\n\x00", "\xEF\xBB\n\xBF1",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		last := 0
		lines := 0
		for l, err := range readLines(bytes.NewReader(data)) {
			lines++
			if l.number <= last {
				t.Fatalf("line %d after line %d", l.number, last)
			}
			last = l.number
			var tooLong *LineTooLongError
			switch {
			case errors.As(err, &tooLong):
				if len(tooLong.Start) > 64 {
					t.Fatalf("a long line kept %d bytes", len(tooLong.Start))
				}
			case err != nil:
				t.Fatalf("read error from a bytes.Reader: %v", err)
			default:
				if l.text == "" || strings.TrimSpace(l.text) != l.text || strings.Contains(l.text, "\n") {
					t.Fatalf("line %d yielded %q", l.number, l.text)
				}
				if len(l.text) > MaxLineBytes {
					t.Fatalf("line of %d bytes", len(l.text))
				}
			}
		}
		if lines > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d lines from %d line breaks", lines, bytes.Count(data, []byte("\n")))
		}
	})
}
