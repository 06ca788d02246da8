package report_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coze-eraser/coze-eraser/report"
)

func TestSafeCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+1": "'+1", "-2+3": "'-2+3", "@SUM(A1)": "'@SUM(A1)", "\t=1": "'\t=1", "\r=1": "'\r=1",
		"": "", "4101": "4101", "LOG1": "LOG1", " =1": " =1", "'=1": "'=1", "a=1": "a=1",
	} {
		if got := report.SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
	// encoding/csv quotes what needs it: a CR cell stays one cell.
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{report.SafeCell("\r=1\n"), "x"})
	w.Flush()
	if rows, err := csv.NewReader(&buf).ReadAll(); err != nil || len(rows) != 1 || rows[0][0] != "'\r=1\n" {
		t.Errorf("rows %q: %v", rows, err)
	}
}

func TestPrintable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain text, ünïcödé ✓":    "plain text, ünïcödé ✓",
		`C:\path`:                  `C:\path`,
		"\x1b[2J\x07\x00\x7f":      `\x1b[2J\a\x00\x7f`,
		"a\tb\r\nc":                `a\tb\r\nc`,
		"\u009b31m\u0085":          `\u009b31m\u0085`,
		"\xff\xfe ok":              `\xff\xfe ok`,
		"\ufffd":                   "\ufffd",
		"abc\u202egpj.exe\u2066x":  `abc\u202egpj.exe\u2066x`,
		"\u200f\u061c\u2028\u2029": `\u200f\u061c\u2028\u2029`,
	} {
		if got := report.Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzPrintable checks that no output of Printable holds a character it
// promises to escape, and that it is one line.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "ok", "\x1b[2J", "\xff", "\u202e", "\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := report.Printable(s)
		if !utf8.ValidString(out) || strings.ContainsAny(out, "\n\r\t\x1b\x7f\u0085\u009b\u202e\u2066\u2028") {
			t.Errorf("Printable(%q) = %q", s, out)
		}
		for _, r := range out {
			if r < 0x20 || r >= 0x7f && r <= 0x9f {
				t.Errorf("Printable(%q) = %q holds %U", s, out, r)
			}
		}
	})
}
