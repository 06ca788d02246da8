package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// bundle is a server on a real Redis with a read key and a write key, and
// a client that checks every answer against the OpenAPI document.
type bundle struct {
	t             *testing.T
	rdb           *redis.Client
	ledger        *ledger.Ledger
	url           string
	router        routers.Router
	read, write   string
	checkedAnswer int
}

// setup starts a server with a body limit of 1 MiB, unless an option
// changes its configuration (MaxBody 0 is the default limit).
func setup(t *testing.T, opts ...func(*httpapi.Config)) *bundle {
	t.Helper()
	srv := redistest.Start(t)
	b := &bundle{t: t, rdb: srv.Client()}
	b.ledger = ledger.New(b.rdb)
	var lines []string
	for _, k := range []struct {
		name   string
		scopes []httpapi.Scope
		secret *string
	}{{"reader", []httpapi.Scope{httpapi.ScopeRead}, &b.read}, {"writer", []httpapi.Scope{httpapi.ScopeRead, httpapi.ScopeWrite}, &b.write}} {
		secret, line, err := httpapi.NewSecret(k.name, k.scopes)
		if err != nil {
			t.Fatal(err)
		}
		*k.secret = secret
		lines = append(lines, line)
	}
	keys, err := httpapi.ParseKeys(strings.NewReader(strings.Join(lines, "\n")), "keys")
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{Redis: b.rdb, Keys: keys, MaxBody: 1 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	b.url = ts.URL
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	doc.Servers = nil // any host: the test server's port is random
	if b.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return b
}

func init() {
	openapi3filter.RegisterBodyDecoder("text/csv", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.FileBodyDecoder)
}

// do sends a request with key (none when ""), checks the answer against
// the OpenAPI document, and returns its status and body.
func (b *bundle) do(method, path, key, body string, header ...string) (int, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	b.validate(req, resp, got)
	return resp.StatusCode, got
}

// validate checks one answer against the OpenAPI document.
func (b *bundle) validate(req *http.Request, resp *http.Response, body []byte) {
	b.t.Helper()
	check, err := http.NewRequest(req.Method, req.URL.String(), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	check.Header = req.Header.Clone()
	route, params, err := b.router.FindRoute(check)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound {
			b.t.Errorf("%s %s: no route in openapi.json (%v) but answered %d", req.Method, req.URL.Path, err, resp.StatusCode)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true}})
	if err != nil {
		b.t.Errorf("%s %s answered %d, which openapi.json does not allow: %v\n%.400s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	b.checkedAnswer++
}

// work returns how many ids wait to be fed in queue, then feeds the
// queue all of them, as a worker's feeder would, and returns how many
// tasks its pending list holds.
func (b *bundle) work(t *testing.T, queue string) (unfed int, tasks int64) {
	t.Helper()
	ctx := context.Background()
	waiting, err := b.ledger.Unfed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enqueue.NewClient(b.rdb).Feed(ctx, queue, 1<<30); err != nil {
		t.Fatal(err)
	}
	n, err := b.rdb.LLen(ctx, asynqwire.StateKey(queue, "pending")).Result()
	if err != nil {
		t.Fatal(err)
	}
	return waiting[queue], n
}

func ids(n int, base int64) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(base + int64(i))
	}
	return out
}

func requestBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCreateAndReplay: a request of 5,000 ids, 10 of them invalid, is
// created with the invalid ones rejected by index; the same POST again
// creates nothing; the same id with another body is 409; status agrees.
func TestCreateAndReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := ids(5000, 7379996104798150001)
	bad := map[int]string{3: "0123", 17: "12a4", 99: "", 500: "123456789012345678901234567890123", 1000: "-5", 1500: " 7", 2000: "7e10",
		2500: "１２３", 3000: "7\n8", 4999: "99999999999999999999"}
	for i, v := range bad {
		all[i] = v
	}
	body := requestBody(t, map[string]any{"request_id": "dsr-4711", "ids": all, "note": "DSR-4711",
		"due_at": time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)})
	code, got := b.do("POST", "/v1/erasure-requests", b.write, body)
	var st httpapi.RequestStatus
	if err := json.Unmarshal(got, &st); err != nil || code != http.StatusCreated {
		t.Fatalf("create: %d %s (%v)", code, got, err)
	}
	if st.Total != 4990 || st.Pending != 4990 || st.Status != "pending" || len(st.Rejected) != 10 || st.Batch != "dsr-4711" {
		t.Errorf("created: total %d pending %d status %s rejected %d batch %s", st.Total, st.Pending, st.Status, len(st.Rejected), st.Batch)
	}
	for _, r := range st.Rejected {
		if _, ok := bad[r.Index]; !ok || r.Reason == "" {
			t.Errorf("rejected %+v: not one of the invalid ids", r)
		}
	}
	code, got = b.do("POST", "/v1/erasure-requests", b.write, body)
	if err := json.Unmarshal(got, &st); err != nil || code != http.StatusOK || st.Total != 4990 {
		t.Errorf("replay: %d total %d (%v)", code, st.Total, err)
	}
	if unfed, n := b.work(t, "default"); unfed != 4990 || n != 4990 {
		t.Errorf("after the replay %d ids wait to be fed and feeding makes %d tasks, want 4990 and 4990", unfed, n)
	}
	other := requestBody(t, map[string]any{"request_id": "dsr-4711", "ids": all[:10]})
	if code, got := b.do("POST", "/v1/erasure-requests", b.write, other); code != http.StatusConflict || !bytes.Contains(got, []byte(`"conflict"`)) {
		t.Errorf("same id, other body: %d %s", code, got)
	}
	code, got = b.do("GET", "/v1/erasure-requests/dsr-4711", b.read, "")
	if err := json.Unmarshal(got, &st); err != nil || code != http.StatusOK || st.Total != 4990 || st.Invalid != 10 || st.Note != "DSR-4711" {
		t.Errorf("status: %d %+v (%v)", code, st, err)
	}
	if code, got := b.do("GET", "/v1/erasure-requests/dsr-4711/report", b.read, "", "Accept", "application/x-ndjson"); code != http.StatusOK ||
		bytes.Count(got, []byte("\n")) != 4991 {
		t.Errorf("report: %d, %d lines", code, bytes.Count(got, []byte("\n")))
	}
	if code, got := b.do("GET", "/v1/erasure-requests/dsr-4711/report", b.read, ""); code != http.StatusOK || !bytes.HasPrefix(got, []byte("# batch: dsr-4711")) {
		t.Errorf("CSV report: %d %.80s", code, got)
	}
}

// TestAuth: no key or a wrong key is 401 with no data; a read key cannot
// create.
func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := requestBody(t, map[string]any{"request_id": "r1", "ids": []string{"7379996104798150001"}})
	if code, got := b.do("POST", "/v1/erasure-requests", b.write, body); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, got)
	}
	for _, key := range []string{"", "cze_wrong", b.write + "x"} {
		for _, path := range []string{"/v1/erasure-requests/r1", "/v1/erasure-requests/r1/report", "/v1/failures"} {
			code, got := b.do("GET", path, key, "")
			if code != http.StatusUnauthorized || bytes.Contains(got, []byte("7379996104798150001")) || !bytes.Contains(got, []byte(`"unauthenticated"`)) {
				t.Errorf("GET %s with key %q: %d %s", path, key, code, got)
			}
		}
	}
	if code, got := b.do("POST", "/v1/erasure-requests", b.read, requestBody(t, map[string]any{"request_id": "r2", "ids": []string{"1"}})); code != http.StatusForbidden {
		t.Errorf("create with a read key: %d %s", code, got)
	}
	if exists, _ := b.rdb.Exists(context.Background(), keyspace.New(ledger.DefaultPrefix).Batch("r2")).Result(); exists != 0 {
		t.Error("a refused create made a batch")
	}
}

// TestBadInput is acceptance 3: each bad body gets a JSON error with a
// stable code and the field, and nothing is created. The server has the
// default body limit (8 MiB): a 10 MB body is refused as too large, and 2
// million short ids, which fit in it, as too many.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *httpapi.Config) { c.MaxBody = 0 })
	short := make([]string, 2_000_000)
	for i := range short {
		short[i] = strconv.Itoa(i%9 + 1)
	}
	tooMany := requestBody(t, map[string]any{"request_id": "x", "ids": short})
	if len(tooMany) >= httpapi.DefaultMaxBody {
		t.Fatalf("the 2 million ids take %d bytes: over the body limit", len(tooMany))
	}
	for _, tc := range []struct {
		name, body, code, field string
		status                  int
	}{
		{"malformed", `{"request_id": "x", "ids": [`, "invalid_json", "", 400},
		{"two values", `{"request_id":"x","ids":[]} {}`, "invalid_json", "", 400},
		{"unknown field", `{"request_id":"x","ids":[],"idz":[]}`, "unknown_field", "idz", 400},
		{"no request id", `{"ids":["1"]}`, "missing_field", "request_id", 400},
		{"no ids", `{"request_id":"x"}`, "missing_field", "ids", 400},
		{"ids and subject", `{"request_id":"x","ids":["1"],"subject":{"profile":"app","session":"s","bot_ids":["1"]}}`, "invalid_field", "subject", 400},
		{"ids not strings", `{"request_id":"x","ids":[1,2]}`, "invalid_field", "ids", 400},
		{"bad request id", `{"request_id":"a:b","ids":["1"]}`, "invalid_field", "request_id", 400},
		{"bad due", `{"request_id":"x","ids":["1"],"due_at":"tomorrow"}`, "invalid_field", "due_at", 400},
		{"due in the past", `{"request_id":"x","ids":["1"],"due_at":"2020-01-01T00:00:00Z"}`, "invalid_field", "due_at", 400},
		{"bad callback", `{"request_id":"x","ids":["1"],"callback_url":"ftp://x"}`, "invalid_field", "callback_url", 400},
		{"bad queue", `{"request_id":"x","ids":["1"],"queue":"callbacks"}`, "invalid_field", "queue", 400},
		{"10 MB", `{"request_id":"x","ids":["` + strings.Repeat("1", 10_000_000) + `"]}`, "body_too_large", "", 413},
		{"2 million ids", tooMany, "too_many_ids", "ids", 413},
	} {
		code, got := b.do("POST", "/v1/erasure-requests", b.write, tc.body)
		var e httpapi.ErrorBody
		if err := json.Unmarshal(got, &e); err != nil || code != tc.status || e.Error.Code != tc.code || e.Error.Field != tc.field || e.Error.Message == "" {
			t.Errorf("%s: %d %.300s; want %d %s field %q", tc.name, code, got, tc.status, tc.code, tc.field)
		}
		if tc.status == http.StatusRequestEntityTooLarge && !strings.Contains(e.Error.Message, "split") {
			t.Errorf("%s: the message %q gives no hint to split the ids", tc.name, e.Error.Message)
		}
	}
	if n, _ := b.rdb.DBSize(context.Background()).Result(); n != 0 {
		keys, _ := b.rdb.Keys(context.Background(), "*").Result()
		t.Errorf("bad requests left %d keys: %v", n, keys)
	}
	if code, got := b.do("GET", "/v1/erasure-requests/nope", b.read, ""); code != http.StatusNotFound || !bytes.Contains(got, []byte(`"not_found"`)) {
		t.Errorf("missing request: %d %s", code, got)
	}
	if code, _ := b.do("GET", "/openapi.json", "", ""); code != http.StatusOK {
		t.Errorf("/openapi.json: %d", code)
	}
}

// TestControl: a read key cannot cancel; extend checks its fields; cancel
// ends the pending ids cancelled; actions on a missing request are 404.
func TestControl(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := requestBody(t, map[string]any{"request_id": "ctl-1", "ids": ids(20, 7379996104798150001)})
	if code, got := b.do("POST", "/v1/erasure-requests", b.write, body); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, got)
	}
	if code, _ := b.do("POST", "/v1/erasure-requests/ctl-1/cancel", b.read, `{"note":"no"}`); code != http.StatusForbidden {
		t.Errorf("cancel with a read key: %d", code)
	}
	later := time.Now().Add(40 * 24 * time.Hour).UTC().Truncate(time.Second)
	for _, tc := range []struct {
		body, code, field string
	}{
		{`{"due_at":"` + later.Format(time.RFC3339) + `"}`, "missing_field", "note"},
		{`{"note":"DPA art. 12(3)"}`, "missing_field", "due_at"},
		{`{"note":"x","due_at":"soon"}`, "invalid_field", "due_at"},
		{`{"note":"x","due_at":"2020-01-01T00:00:00Z"}`, "invalid_field", "due_at"},
		{`{"note":"x","due_at":"` + time.Now().Add(200*24*time.Hour).UTC().Format(time.RFC3339) + `"}`, "invalid_field", "due_at"},
		{`{"note":"x","nope":1}`, "unknown_field", "nope"},
	} {
		code, got := b.do("POST", "/v1/erasure-requests/ctl-1/extend", b.write, tc.body)
		var e httpapi.ErrorBody
		if err := json.Unmarshal(got, &e); err != nil || code != http.StatusBadRequest || e.Error.Code != tc.code || e.Error.Field != tc.field {
			t.Errorf("extend %s: %d %s; want %s on %s", tc.body, code, got, tc.code, tc.field)
		}
	}
	code, got := b.do("POST", "/v1/erasure-requests/ctl-1/extend", b.write, `{"note":"DPA art. 12(3)","due_at":"`+later.Format(time.RFC3339)+`"}`)
	var st httpapi.RequestStatus
	if err := json.Unmarshal(got, &st); err != nil || code != http.StatusOK || !st.ExpectedCompletionTime.Equal(later) {
		t.Errorf("extend: %d %s", code, got)
	}
	code, got = b.do("POST", "/v1/erasure-requests/ctl-1/cancel", b.write, `{"note":"subject withdrew"}`)
	if err := json.Unmarshal(got, &st); err != nil || code != http.StatusOK || st.Status != "cancelled" || st.Cancelled != 20 || st.Pending != 0 {
		t.Errorf("cancel: %d %s", code, got)
	}
	if code, got := b.do("POST", "/v1/erasure-requests/ctl-1/extend", b.write, `{"note":"x","due_at":"`+later.Add(time.Hour).Format(time.RFC3339)+`"}`); code != http.StatusConflict {
		t.Errorf("extend a cancelled request: %d %s", code, got)
	}
	for _, path := range []string{"/v1/erasure-requests/none/cancel", "/v1/erasure-requests/none/retry-failed"} {
		if code, got := b.do("POST", path, b.write, ""); code != http.StatusNotFound {
			t.Errorf("POST %s: %d %s", path, code, got)
		}
	}
	if code, got := b.do("POST", "/v1/erasure-requests/ctl-1/retry-failed", b.write, ""); code != http.StatusOK {
		t.Errorf("retry-failed: %d %s", code, got)
	}
}
