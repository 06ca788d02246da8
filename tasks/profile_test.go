package tasks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestValidateProfile: the names a profile may have, and hostile ones.
func TestValidateProfile(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"default", "app-cn", "support_bot", "a", "A.1", strings.Repeat("x", tasks.MaxProfileLen)} {
		if err := tasks.ValidateProfile(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "a:b", "a/b", "a b", "{a}", "a@b", "é", "a\n", strings.Repeat("x", tasks.MaxProfileLen+1)} {
		if err := tasks.ValidateProfile(bad); !errors.Is(err, tasks.ErrInvalidProfile) {
			t.Errorf("%q: %v, want ErrInvalidProfile", bad, err)
		}
	}
}

// TestPayloadIdentity: a payload names its profile and session, which
// round-trip exactly (a session may hold what JSON escapes); without them
// the payload is the compact form every producer wrote before; a session
// without a profile, or a hostile one, is refused without being quoted.
func TestPayloadIdentity(t *testing.T) {
	t.Parallel()
	plain, err := tasks.Payload{ConversationID: "7379996104798150001", Batch: "b"}.Encode()
	if err != nil || string(plain) != `{"id":"7379996104798150001","batch":"b"}` {
		t.Fatalf("without an identity: %s, %v", plain, err)
	}
	for _, session := range []string{"user-4711", `a "quoted" \ name`, "用户 4711", "x"} {
		p := tasks.Payload{ConversationID: "7379996104798150001", Batch: "b", Profile: "app-cn", Session: session}
		body, err := p.Encode()
		if err != nil {
			t.Fatalf("%q: %v", session, err)
		}
		got, err := tasks.ParsePayload(body)
		if err != nil || got != p {
			t.Errorf("%s parses to %+v, %v; want %+v", body, got, err, p)
		}
	}
	onlyProfile, _ := tasks.Payload{ConversationID: "7379996104798150001", Batch: "b", Profile: "app-cn"}.Encode()
	if string(onlyProfile) != `{"id":"7379996104798150001","batch":"b","profile":"app-cn"}` {
		t.Errorf("a profile without a session: %s", onlyProfile)
	}
	for _, tt := range []struct {
		p    tasks.Payload
		want error
	}{
		{tasks.Payload{ConversationID: "1", Batch: "b", Session: "user-1"}, tasks.ErrInvalidSession},
		{tasks.Payload{ConversationID: "1", Batch: "b", Profile: "a:b"}, tasks.ErrInvalidProfile},
		{tasks.Payload{ConversationID: "1", Batch: "b", Profile: "p", Session: "line\nbreak-SECRET"}, tasks.ErrInvalidSession},
		{tasks.Payload{ConversationID: "1", Batch: "b", Profile: "p", Session: "bad\xffutf8-SECRET"}, tasks.ErrInvalidSession},
		{tasks.Payload{ConversationID: "1", Batch: "b", Profile: "p", Session: strings.Repeat("SECRET", 50)}, tasks.ErrInvalidSession},
	} {
		_, err := tt.p.Encode()
		if !errors.Is(err, tt.want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%+v: %v, want %v without the session", tt.p, err, tt.want)
		}
	}
}
