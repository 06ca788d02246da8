package tasks_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/tasks"
)

func TestNewTaskRoundTrip(t *testing.T) {
	t.Parallel()
	p := tasks.Payload{ConversationID: "7379996104798150001", Batch: "gdpr-42"}
	task, err := tasks.NewTask(p)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != tasks.TypeDelete {
		t.Errorf("type = %q, want %q", task.Type(), tasks.TypeDelete)
	}
	got, err := tasks.ParsePayload(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Errorf("round trip = %+v, want %+v", got, p)
	}
	if want := `{"id":"7379996104798150001","batch":"gdpr-42"}`; string(task.Payload()) != want {
		t.Errorf("payload %s, want %s", task.Payload(), want)
	}
}

func TestParsePayloadRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"not json", "\x00\x01garbage", "not a JSON task payload"},
		{"bad id", `{"id":"12/../x","batch":"b"}`, "invalid conversation id"},
		{"missing id", `{"batch":"b"}`, "is empty"},
		{"bad batch", `{"id":"1","batch":"a b"}`, "invalid batch name"},
		{"missing batch", `{"id":"1"}`, "invalid batch name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tasks.ParsePayload([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePayload(%q) = %v, want an error containing %q", tt.body, err, tt.want)
			}
		})
	}
}

func TestValidateBatch(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"b", "gdpr-2026-11-27", "ticket-JIRA-12", "a.b_c", tasks.NewBatchName(time.Now(), 0xbeef)} {
		if err := tasks.ValidateBatch(ok); err != nil {
			t.Errorf("ValidateBatch(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "a/b", "ticket:JIRA-12", strings.Repeat("a", 129), "é"} {
		if err := tasks.ValidateBatch(bad); !errors.Is(err, tasks.ErrInvalidBatch) {
			t.Errorf("ValidateBatch(%q) = %v, want ErrInvalidBatch", bad, err)
		}
	}
}

func TestRetryBudgetKeepsOneInReserve(t *testing.T) {
	t.Parallel()
	for _, budget := range []int{0, 1, 25} {
		if got := tasks.RetryBudget(tasks.AsynqMaxRetry(budget)); got != budget {
			t.Errorf("RetryBudget(AsynqMaxRetry(%d)) = %d", budget, got)
		}
	}
	for _, foreign := range []int{0, 25} { // asynq's own defaults, from a producer that ignores the contract
		if got := tasks.RetryBudget(foreign); got != 0 {
			t.Errorf("RetryBudget(%d) = %d, want 0", foreign, got)
		}
	}
}

// TestParsePayloadFastPathAgrees: the compact form and any other JSON
// spelling of the same payload parse alike.
func TestParsePayloadFastPathAgrees(t *testing.T) {
	t.Parallel()
	want := tasks.Payload{ConversationID: "7379996104798150001", Batch: "gdpr-1"}
	for _, body := range []string{
		`{"id":"7379996104798150001","batch":"gdpr-1"}`,
		`{"id":"7379996104798150001","batch":"gdpr-1","at":1795000000}`, // older producers
		`{"batch":"gdpr-1","id":"7379996104798150001","at":1795000000}`,
		`{ "id" : "7379996104798150001", "batch": "gdpr-1", "at": 1795000000 }`,
		`{"id":"7379996104798150001","batch":"gdpr\u002d1","at":1795000000}`,
	} {
		got, err := tasks.ParsePayload([]byte(body))
		if err != nil || got != want {
			t.Errorf("ParsePayload(%s) = %+v, %v", body, got, err)
		}
	}
	if _, err := tasks.ParsePayload([]byte(`{"id":"12\"3","batch":"b"}`)); err == nil {
		t.Error("an escaped quote in the id was accepted")
	}
}

// TestPayloadTemplate: prefix + id + suffix is the payload Encode writes,
// for the compact form and for identities (a session JSON escapes).
func TestPayloadTemplate(t *testing.T) {
	t.Parallel()
	for _, p := range []tasks.Payload{
		{Batch: "b-1"},
		{Batch: "gdpr-7", Profile: "app"},
		{Batch: "s", Profile: "app", Session: `user "7" <a&b>`},
	} {
		prefix, suffix, err := p.PayloadTemplate()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"1", "7379996104798150001"} {
			p.ConversationID = id
			want, err := p.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(prefix) + id + string(suffix); got != string(want) {
				t.Errorf("template of %+v: %s, Encode %s", p.Batch, got, want)
			}
		}
	}
}
