package tasks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/tasks"
)

func TestValidateID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		input  string
		reason string // substring of the reason; empty means valid
	}{
		{"nineteen digits", "7379996104798150001", ""},
		{"one digit", "7", ""},
		{"int64 max", "9223372036854775807", ""},
		{"empty", "", "is empty"},
		{"zero", "0", "is zero"},
		{"leading zero", "0123", "leading zero"},
		{"negative", "-5", `'-' at byte 1`},
		{"plus sign", "+5", `'+' at byte 1`},
		{"letters", "12ab", `'a' at byte 3`},
		{"path traversal", "123/../x", `'/' at byte 4`},
		{"inner space", "12 34", `' ' at byte 3`},
		{"twenty digits", "73799961047981500011", "has 20 digits"},
		{"int64 overflow", "9223372036854775808", "int64 maximum"},
		{"full-width digits", "１２３", "non-ASCII character U+FF11 at byte 1"},
		{"decimal point", "1.5", `'.' at byte 2`},
		{"nul byte", "12\x003", `'\x00' at byte 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tasks.ValidateID(tt.input)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("ValidateID(%q) = %v, want nil", tt.input, err)
				}
				return
			}
			var invalid *tasks.InvalidIDError
			if !errors.As(err, &invalid) {
				t.Fatalf("ValidateID(%q) = %v, want *InvalidIDError", tt.input, err)
			}
			if !strings.Contains(invalid.Reason, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", invalid.Reason, tt.reason)
			}
			if invalid.Input != tt.input {
				t.Errorf("Input = %q, want %q", invalid.Input, tt.input)
			}
			if !strings.HasPrefix(err.Error(), "invalid conversation id ") {
				t.Errorf("message %q does not start with the documented prefix", err)
			}
		})
	}
}

func TestInvalidIDErrorQuotesLongInputShortly(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10_000)
	msg := tasks.ValidateID(long).Error()
	if len(msg) > 200 {
		t.Errorf("message is %d bytes; a long input must be cut: %q", len(msg), msg)
	}
	if !strings.Contains(msg, "(10000 bytes)") {
		t.Errorf("message %q does not say how long the input was", msg)
	}
}
