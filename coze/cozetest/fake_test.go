package cozetest_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

func client(t *testing.T, srv *cozetest.Server, token string) *coze.Client {
	t.Helper()
	c, err := coze.NewClient(srv.URL, coze.StaticToken(token), coze.WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFakeAnswersAsNotesSay checks each scripted fault's class through the
// real client, so the fake and the classification agree.
func TestFakeAnswersAsNotesSay(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer(cozetest.WithSlowDelay(time.Second))
	t.Cleanup(srv.Close)
	c := client(t, srv, "pat_x")
	tests := []struct {
		fault     cozetest.Fault
		class     coze.Class
		deletes   bool
		hasLogID  bool
		retryWait time.Duration
	}{
		{cozetest.RateLimited, coze.ClassRateLimited, false, false, 0},
		{cozetest.RateLimitedRetryAfter, coze.ClassRateLimited, false, true, time.Second},
		{cozetest.BadGateway, coze.ClassTransient, false, false, 0},
		{cozetest.InternalError, coze.ClassTransient, false, true, 0},
		{cozetest.SystemLimit, coze.ClassRateLimited, false, true, 0},
		{cozetest.NotFound, coze.ClassNotFound, false, true, 0},
		{cozetest.AuthInvalid, coze.ClassAuth, false, true, 0},
		{cozetest.BadParameter, coze.ClassPermanent, false, true, 0},
		{cozetest.ConnReset, coze.ClassTransient, false, false, 0},
		{cozetest.LostAnswer, coze.ClassTransient, true, false, 0},
		{cozetest.Slow, coze.ClassTransient, false, false, 0},
	}
	for i, tt := range tests {
		id := strconv.Itoa(1000 + i)
		srv.Script(id, tt.fault)
		res, _ := c.DeleteConversation(context.Background(), id)
		if res.Class != tt.class {
			t.Errorf("%s: class %s, want %s", tt.fault, res.Class, tt.class)
		}
		if (res.LogID != "") != tt.hasLogID {
			t.Errorf("%s: log id %q", tt.fault, res.LogID)
		}
		if res.RetryAfter != tt.retryWait {
			t.Errorf("%s: Retry-After %v", tt.fault, res.RetryAfter)
		}
		if _, deleted := srv.Deleted(id); deleted != tt.deletes {
			t.Errorf("%s: deleted = %v, want %v", tt.fault, deleted, tt.deletes)
		}
	}
}

func TestFakeDeletesOnceThenAnswers4002(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	c := client(t, srv, "pat_x")
	first, err := c.DeleteConversation(context.Background(), "7379996104798150001")
	if err != nil || first.Class != coze.ClassDeleted || len(first.LogID) != 32 {
		t.Fatalf("first delete: %+v, %v", first, err)
	}
	again, _ := c.DeleteConversation(context.Background(), "7379996104798150001")
	if again.Class != coze.ClassNotFound || again.Code != 4002 {
		t.Errorf("second delete: %+v", again)
	}
	d, ok := srv.Deleted("7379996104798150001")
	if !ok || d.LogID != first.LogID || d.AnswerLost {
		t.Errorf("deletion record %+v", d)
	}
	calls := srv.Calls()
	if len(calls) != 2 || calls[0].Token != "pat_x" || calls[0].Method != "DELETE" || !calls[0].Deleted || calls[1].Deleted ||
		calls[0].Answer != cozetest.AnswerDeleted || calls[1].Answer != cozetest.AnswerGone {
		t.Errorf("calls %+v", calls)
	}
}

func TestFakeTokenAndAuthOutage(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer(cozetest.WithToken("pat_good"))
	t.Cleanup(srv.Close)
	if res, _ := client(t, srv, "pat_bad").DeleteConversation(context.Background(), "1"); res.Class != coze.ClassAuth {
		t.Errorf("wrong token: %s", res.Class)
	}
	good := client(t, srv, "pat_good")
	srv.SetAuthDown(true)
	if res, _ := good.DeleteConversation(context.Background(), "1"); res.Class != coze.ClassAuth {
		t.Errorf("auth outage: %s", res.Class)
	}
	srv.SetAuthDown(false)
	if res, _ := good.DeleteConversation(context.Background(), "1"); res.Class != coze.ClassDeleted {
		t.Errorf("after the outage: %s", res.Class)
	}
}

func TestFakeRateLimit(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer(cozetest.WithRateLimit(5, 5))
	t.Cleanup(srv.Close)
	c := client(t, srv, "pat_x")
	limited := 0
	for i := range 20 {
		res, _ := c.DeleteConversation(context.Background(), strconv.Itoa(2000+i))
		if res.Class == coze.ClassRateLimited && res.HTTPStatus == 429 {
			limited++
		}
	}
	if limited < 10 {
		t.Errorf("%d of 20 back-to-back calls limited at 5/s burst 5", limited)
	}
}

func TestFakeRejectsBadIDsAndMethods(t *testing.T) {
	t.Parallel()
	srv := cozetest.NewServer()
	t.Cleanup(srv.Close)
	if res, _ := client(t, srv, "pat_x").DeleteConversation(context.Background(), "0123"); res.Class != coze.ClassPermanent {
		t.Errorf("leading zero: %s", res.Class)
	}
	if srv.MaxInFlight() != 1 {
		t.Errorf("max in flight %d", srv.MaxInFlight())
	}
}
