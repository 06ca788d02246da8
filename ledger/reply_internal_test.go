package ledger

import (
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
)

// TestUnexpectedRepliesAreErrors: a script reply of the wrong shape or
// type is an error that names the script, never a panic or a made-up
// figure.
func TestUnexpectedRepliesAreErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		decode func() error
		script string
	}{
		{"record: not groups of 4", func() error { _, err := decodeRecordReply(2, []any{int64(1), int64(1), int64(1)}); return err }, "record.lua"},
		{"record: text for a count", func() error {
			_, err := decodeRecordReply(2, []any{int64(1), "many", int64(1), ""})
			return err
		}, "record.lua"},
		{"record: attempt out of range", func() error {
			_, err := decodeRecordReply(2, []any{int64(3), int64(1), int64(1), ""})
			return err
		}, "record.lua"},
		{"record: attempt 0", func() error {
			_, err := decodeRecordReply(1, []any{int64(0), int64(1), int64(1), ""})
			return err
		}, "record.lua"},
		{"record: a list for the batches", func() error {
			_, err := decodeRecordReply(1, []any{int64(1), int64(1), int64(1), []any{"a"}})
			return err
		}, "record.lua"},
		{"open: short", func() error { _, err := decodeOpenReply([]any{int64(1)}); return err }, "open.lua"},
		{"open: created is text", func() error {
			_, err := decodeOpenReply([]any{"yes", int64(1), "", "", int64(64)})
			return err
		}, "open.lua"},
		{"open: buckets is a list", func() error {
			_, err := decodeOpenReply([]any{int64(0), int64(1), "", "", []any{}})
			return err
		}, "open.lua"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode()
			if err == nil || !strings.Contains(err.Error(), tt.script) {
				t.Fatalf("error %v, want one naming %s", err, tt.script)
			}
		})
	}
}

// TestRecordReplyDecodes: the common result is implied, the listed ones
// are read, and -1 attempts means the batch was lost.
func TestRecordReplyDecodes(t *testing.T) {
	t.Parallel()
	got, err := decodeRecordReply(3, []any{int64(2), int64(0), int64(0), "", int64(3), int64(2), int64(-1), "b c"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Transitions != 1 || got[0].Attempts != 1 || got[1].Attempts != 0 || !got[2].Lost ||
		strings.Join(got[2].Completed, ",") != "b,c" {
		t.Errorf("decoded %+v", got)
	}
}

// TestVerifyMembersReadBack: the verification outbox's members read back
// as the batch and round they were written for; others are left out.
func TestVerifyMembersReadBack(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "gdpr-118", "b-20261127T174500Z-3fa2", "x.y_z"} {
		for _, round := range []int{1, 2, 10} {
			got, ok := parseVerifyMember(keyspace.VerifyMember(name, round))
			if !ok || got != (VerifyRequest{Batch: name, Round: round}) {
				t.Errorf("%q round %d reads back as %+v, %v", name, round, got, ok)
			}
		}
	}
	for _, bad := range []string{"", "a", "a/", "/1", "a/x", "a/0", "a/-1"} {
		if got, ok := parseVerifyMember(bad); ok {
			t.Errorf("%q reads as %+v", bad, got)
		}
	}
}
