package report

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The API chooses a failure's msg and log id, and users choose notes (and,
// before names were restricted, batch names). Output must not let that text
// act: on a spreadsheet that opens a CSV file, or on the terminal that shows
// a table. Programs get it exact: JSON and JSONL are not touched (encoding/json
// escapes control characters itself).

// formulaStarts are the first characters that make a spreadsheet read a
// cell as a formula (or, for tab and CR, hide one), after OWASP's "CSV
// Injection".
const formulaStarts = "=+-@\t\r"

// SafeCell returns a CSV cell that a spreadsheet shows as text: s with a
// leading single quote when it starts with '=', '+', '-', '@', a tab or a
// CR; else s unchanged. Quoting (for commas, quotes, line breaks) is left to
// encoding/csv. Use it on every cell whose text comes from the API or a
// user; a number the program formats itself needs none.
func SafeCell(s string) string {
	if s != "" && strings.IndexByte(formulaStarts, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// numberCell is SafeCell for a column the program fills with an integer
// (the API's code): a plain integer, negative or not, is left alone so that
// a spreadsheet keeps it a number; anything else is treated as text.
func numberCell(s string) string {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return SafeCell(s)
	}
	return s
}

// Printable returns s with every character a terminal could act on, or that
// would break a line or a column, written as a Go escape: C0 controls ("\n",
// "\t", "\x1b" for ESC), DEL, C1 controls ("\u009b"), bytes that are not
// UTF-8 ("\xff"), the Unicode line and paragraph separators and the
// bidirectional formatting characters (U+202A-U+202E, U+2066-U+2069, the
// marks U+200E, U+200F, U+061C) that can make text read in another order
// than it is written. The rest, backslashes included, is kept as it is, so
// the text stays readable; what looks like an escape in it may be literal
// text: the JSON formats have the exact string.
func Printable(s string) string {
	i := firstUnprintable(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unprintable(r):
			b.WriteString(s[i : i+size])
		case r < utf8.RuneSelf:
			b.WriteString(asciiEscape(byte(r))) //nolint:gosec // r < utf8.RuneSelf (0x80): it fits in a byte
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// firstUnprintable is the index of the first character Printable escapes,
// or -1: most text has none and is returned without a copy.
func firstUnprintable(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unprintable(r) || r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// unprintable reports whether Printable escapes the (valid) rune r.
func unprintable(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f: // C0, DEL, C1
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// asciiEscape writes an ASCII control as Go does: "\n" and its kind by
// name, the rest in hex.
func asciiEscape(c byte) string {
	switch c {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	}
	return fmt.Sprintf(`\x%02x`, c)
}

// commentText makes a value safe for a "# name: value" line above a CSV
// report. Printable keeps it on its line. A spreadsheet splits a comment
// line at commas (semicolons in some locales) like any other line, so a
// separator that would start a cell with a formula (after any spaces) is
// written "\x2c" or "\x3b"; other separators are kept, so that a note like
// "ticket 118, subject 4711" reads as written. The escapes are Go's: a
// quoted value (the note) still unquotes with strconv.Unquote.
func commentText(s string) string {
	s = Printable(s)
	if !strings.ContainsAny(s, ",;") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c == ',' || c == ';') && startsFormula(s[i+1:]) {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// startsFormula reports whether a cell holding s, less its leading spaces,
// would need SafeCell's quote.
func startsFormula(s string) bool {
	s = strings.TrimLeft(s, " ")
	return SafeCell(s) != s
}
