package coze_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// listServer answers every call with status and body, and counts calls.
func listServer(t *testing.T, status int, body string, seen *atomic.Value) (*coze.Client, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if seen != nil {
			seen.Store(r.Method + " " + r.URL.RequestURI())
		}
		w.Header().Set("X-Tt-Logid", "LOGID-LIST")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := coze.NewClient(srv.URL, coze.StaticToken("pat_LIST_SECRET"))
	if err != nil {
		t.Fatal(err)
	}
	return c, &calls
}

func TestListConversationsReadsAPage(t *testing.T) {
	t.Parallel()
	var seen atomic.Value
	c, _ := listServer(t, 200, `{"code":0,"msg":"","data":{"conversations":[
		{"id":"7379996104798150001","name":"a","meta_data":{"uid":"4711"},"creator_id":"42","connector_id":"1024","created_at":1700000000,"updated_at":1700000100,"last_section_id":"1"},
		{"id":7379996104798150002,"created_at":1700000001,"updated_at":1700000001,"connector_id":1024}],
		"has_more":true},"detail":{"logid":"LOGID-BODY"}}`, &seen)
	page, res, err := c.ListConversations(context.Background(), coze.ListQuery{BotID: "7379996104798150999", Page: 2, PageSize: 2, Order: coze.Descending})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := seen.Load().(string); got != "GET /v1/conversations?bot_id=7379996104798150999&connector_id=1024&page_num=2&page_size=2&sort_order=DESC" {
		t.Errorf("request %s", got)
	}
	if !page.HasMore || len(page.Conversations) != 2 || res.LogID != "LOGID-BODY" || res.Class != coze.ClassDeleted {
		t.Fatalf("page %+v, result %+v", page, res)
	}
	a, b := page.Conversations[0], page.Conversations[1]
	if a.ID != "7379996104798150001" || a.Meta["uid"] != "4711" || a.CreatorID != "42" || !a.CreatedAt.Equal(time.Unix(1700000000, 0)) ||
		!a.UpdatedAt.Equal(time.Unix(1700000100, 0)) {
		t.Errorf("first %+v", a)
	}
	if b.ID != "7379996104798150002" || b.ConnectorID != "1024" {
		t.Errorf("second (numbers for ids) %+v", b)
	}
}

func TestListConversationsRefusesABadQuery(t *testing.T) {
	t.Parallel()
	c, calls := listServer(t, 200, `{}`, nil)
	for _, q := range []coze.ListQuery{
		{}, {BotID: "bot-1"}, {BotID: "1", ConnectorID: "7"}, {BotID: "1", PageSize: 51}, {BotID: "1", PageSize: -1},
		{BotID: "1", Page: -2}, {BotID: "1", Order: "random"}, {BotID: strings.Repeat("1", 40)},
	} {
		if _, _, err := c.ListConversations(context.Background(), q); !errors.Is(err, coze.ErrBadQuery) {
			t.Errorf("%+v: %v, want ErrBadQuery", q, err)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d calls for bad queries", calls.Load())
	}
}

// TestListConversationsClassifiesLikeADelete: a list call's answers take
// the delete's classes, log id and errors; a success whose data cannot be
// read is unknown; the token never shows.
func TestListConversationsClassifiesLikeADelete(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		body   string
		want   coze.Class
	}{
		{200, `{"code":4100,"msg":"authentication is invalid","detail":{"logid":"L"}}`, coze.ClassAuth},
		{429, `{"code":4020,"msg":"RPM limit exceeded","detail":{"logid":"L"}}`, coze.ClassRateLimited},
		{200, `{"code":5000,"msg":"internal","detail":{"logid":"L"}}`, coze.ClassTransient},
		{200, `{"code":4000,"msg":"invalid parameter: bot_id","detail":{"logid":"L"}}`, coze.ClassPermanent},
		{502, `<html>bad gateway</html>`, coze.ClassTransient},
		{200, `{"code":0,"msg":"","detail":{"logid":"L"}}`, coze.ClassUnknown},                                   // no data
		{200, `{"code":0,"data":{"conversations":[{"id":"x/../y"}]},"detail":{"logid":"L"}}`, coze.ClassUnknown}, // not an id
		{200, `{"code":0,"data":{"conversations":"pat_LIST_SECRET"},"detail":{"logid":"L"}}`, coze.ClassUnknown}, // wrong shape
	} {
		c, _ := listServer(t, tt.status, tt.body, nil)
		_, res, err := c.ListConversations(context.Background(), coze.ListQuery{BotID: "7379996104798150999"})
		var ce *coze.Error
		if res.Class != tt.want || !errors.As(err, &ce) {
			t.Errorf("%d %s: class %s, err %v; want %s and a *coze.Error", tt.status, tt.body, res.Class, err, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), "list conversations of bot 7379996104798150999") || strings.Contains(err.Error(), "pat_LIST_SECRET") {
			t.Errorf("error %q: want the call named, no token", err)
		}
	}
}
