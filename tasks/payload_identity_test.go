package tasks_test

import (
	"testing"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestPayloadWithIdentity: the default profile without a session is written as
// no profile (the compact payload every worker reads) and read back as the
// default; any other identity is written as it is.
func TestPayloadWithIdentity(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ profile, session, wantProfile, read string }{
		{tasks.DefaultProfile, "", "", tasks.DefaultProfile},
		{"", "", "", tasks.DefaultProfile},
		{tasks.DefaultProfile, "user-1", tasks.DefaultProfile, tasks.DefaultProfile},
		{"app-cn", "", "app-cn", "app-cn"},
	} {
		p := tasks.Payload{ConversationID: "7379996104798150001", Batch: "b"}.WithIdentity(tt.profile, tt.session)
		if p.Profile != tt.wantProfile || p.Session != tt.session || p.ProfileName() != tt.read {
			t.Errorf("WithIdentity(%q, %q) = %+v, ProfileName %q", tt.profile, tt.session, p, p.ProfileName())
		}
	}
	compact, err := tasks.Payload{ConversationID: "7379996104798150001", Batch: "b"}.WithIdentity(tasks.DefaultProfile, "").Encode()
	if err != nil || string(compact) != `{"id":"7379996104798150001","batch":"b"}` {
		t.Errorf("the default profile's payload: %s, %v", compact, err)
	}
}
