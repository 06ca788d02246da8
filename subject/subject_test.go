package subject_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/subject"
)

// TestEraseRefusesABadRequest: each broken rule is named, and nothing is
// written to Redis.
func TestEraseRefusesABadRequest(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	eraser := &subject.Eraser{Enqueue: enqueue.NewClient(rdb), Ledger: ledger.New(rdb)}
	good := subject.Request{Profile: "app-cn", Session: "user-4711", BotIDs: []string{"7300000000000000001"}, Batch: "dsr-1"}
	manyBots := make([]string, subject.MaxTargets+1)
	for i := range manyBots {
		manyBots[i] = fmt.Sprint(7300000000000000001 + i)
	}
	for _, tc := range []struct {
		change func(*subject.Request)
		want   string
	}{
		{func(r *subject.Request) { r.Profile = "" }, "profile"},
		{func(r *subject.Request) { r.Session = "" }, "session"},
		{func(r *subject.Request) { r.Session = "a\nb" }, "control character"},
		{func(r *subject.Request) { r.BotIDs = nil }, "bot ids: give at least one"},
		{func(r *subject.Request) { r.BotIDs = []string{"7300000000000000001", "73x"} }, `bot id 2: coze: bad list query: bot id "73x"`},
		{func(r *subject.Request) { r.ConnectorIDs = []string{"1024", "5"} }, `connector id 2`},
		{func(r *subject.Request) { r.Batch = "a:b" }, "batch"},
		{func(r *subject.Request) { r.BotIDs = manyBots }, "at most 200 per request"},
	} {
		req := good
		tc.change(&req)
		_, err := eraser.Erase(context.Background(), req, enqueue.Queue("gdpr"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", req, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "user-4711") {
			t.Errorf("the error shows the session: %v", err)
		}
	}
	if keys, err := rdb.DBSize(context.Background()).Result(); err != nil || keys != 0 {
		t.Errorf("Redis holds %d keys (%v) after refused requests", keys, err)
	}
}
