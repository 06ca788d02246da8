package coze_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

// TestParse walks NOTES.md's table row by row, then the HTTP-level rules and
// the awkward bodies.
func TestParse(t *testing.T) {
	t.Parallel()
	jsonBody := func(code int64, msg string) string {
		return `{"code":` + itoa(code) + `,"msg":"` + msg + `","detail":{"logid":"20241210152726467C48D89D6DB2ABCD"}}`
	}
	tests := []struct {
		name     string
		status   int
		header   http.Header
		body     string
		class    coze.Class
		code     int64
		hasCode  bool
		logID    string
		errMatch string
	}{
		{name: "0 success", status: 200, body: jsonBody(0, ""), class: coze.ClassDeleted, hasCode: true},
		{name: "4000 bad parameter", status: 200, body: jsonBody(4000, "bad"), class: coze.ClassPermanent, code: 4000, hasCode: true},
		{name: "4002 invalid conversation", status: 200, body: jsonBody(4002, "x"), class: coze.ClassNotFound, code: 4002, hasCode: true},
		{name: "4200 resource not found", status: 200, body: jsonBody(4200, "x"), class: coze.ClassNotFound, code: 4200, hasCode: true},
		{name: "4100 auth invalid", status: 200, body: jsonBody(4100, "x"), class: coze.ClassAuth, code: 4100, hasCode: true},
		{name: "4101 no permission", status: 200, body: jsonBody(4101, "x"), class: coze.ClassAuth, code: 4101, hasCode: true},
		{name: "4009 system limit", status: 200, body: jsonBody(4009, "x"), class: coze.ClassRateLimited, code: 4009, hasCode: true},
		{name: "4020 rpm limit", status: 200, body: jsonBody(4020, "x"), class: coze.ClassRateLimited, code: 4020, hasCode: true},
		{name: "4013 model error", status: 200, body: jsonBody(4013, "x"), class: coze.ClassTransient, code: 4013, hasCode: true},
		{name: "4102 risk control", status: 200, body: jsonBody(4102, "x"), class: coze.ClassTransient, code: 4102, hasCode: true},
		{name: "5000 internal", status: 200, body: jsonBody(5000, "x"), class: coze.ClassTransient, code: 5000, hasCode: true},
		{name: "4011 balance", status: 200, body: jsonBody(4011, "x"), class: coze.ClassPermanent, code: 4011, hasCode: true},
		{name: "4019 arrears", status: 200, body: jsonBody(4019, "x"), class: coze.ClassPermanent, code: 4019, hasCode: true},
		{name: "4022 balance", status: 200, body: jsonBody(4022, "x"), class: coze.ClassPermanent, code: 4022, hasCode: true},
		{name: "other 4xxx", status: 200, body: jsonBody(4001, "x"), class: coze.ClassPermanent, code: 4001, hasCode: true},
		{name: "code outside the table", status: 200, body: jsonBody(700012006, "access token invalid"), class: coze.ClassUnknown, code: 700012006, hasCode: true},
		{name: "code outside the table on 401", status: 401, body: jsonBody(700012006, "x"), class: coze.ClassAuth, code: 700012006, hasCode: true},
		{name: "code outside the table on 503", status: 503, body: jsonBody(123, "x"), class: coze.ClassTransient, code: 123, hasCode: true},
		{name: "4020 on 429", status: 429, body: jsonBody(4020, "x"), class: coze.ClassRateLimited, code: 4020, hasCode: true},
		{name: "success code on 502", status: 502, body: jsonBody(0, ""), class: coze.ClassTransient, hasCode: true},
		{name: "429 plain", status: 429, body: "Too Many Requests", class: coze.ClassRateLimited, errMatch: "not a JSON answer"},
		{name: "401 empty", status: 401, body: "", class: coze.ClassAuth, errMatch: "empty"},
		{name: "403 html", status: 403, body: "<html>forbidden</html>", class: coze.ClassAuth},
		{name: "408", status: 408, body: "", class: coze.ClassTransient},
		{name: "500 html", status: 500, body: "<html>oops</html>", class: coze.ClassTransient},
		{name: "502 html", status: 502, body: "<html><title>502 Bad Gateway</title></html>", class: coze.ClassTransient},
		{name: "503", status: 503, body: "unavailable", class: coze.ClassTransient},
		{name: "504", status: 504, body: "", class: coze.ClassTransient},
		{name: "404 html from a wrong base URL", status: 404, body: "<html>not found</html>", class: coze.ClassUnknown},
		{name: "200 not json", status: 200, body: "OK", class: coze.ClassUnknown},
		{name: "json without code", status: 200, body: `{"msg":"hi"}`, class: coze.ClassUnknown},
		{name: "code as string", status: 200, body: `{"code":"0"}`, class: coze.ClassUnknown},
		{
			name: "log id only in header", status: 200, header: http.Header{"X-Tt-Logid": {"HEADERLOGID"}},
			body: `{"code":0,"msg":""}`, class: coze.ClassDeleted, hasCode: true, logID: "HEADERLOGID",
		},
		{
			name: "body log id wins", status: 200, header: http.Header{"X-Tt-Logid": {"HEADERLOGID"}},
			body: jsonBody(0, ""), class: coze.ClassDeleted, hasCode: true, logID: "20241210152726467C48D89D6DB2ABCD",
		},
		{
			name: "log id on a gateway error header", status: 502, header: http.Header{"X-Tt-Logid": {"GW"}},
			body: "<html></html>", class: coze.ClassTransient, logID: "GW",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := tt.header
			if header == nil {
				header = http.Header{}
			}
			res := coze.Parse(tt.status, header, []byte(tt.body), nil, coze.DefaultMaxBodyBytes)
			if res.Class != tt.class {
				t.Errorf("class = %s, want %s", res.Class, tt.class)
			}
			if res.Code != tt.code || res.HasCode != tt.hasCode {
				t.Errorf("code = %d (has %v), want %d (has %v)", res.Code, res.HasCode, tt.code, tt.hasCode)
			}
			if res.HTTPStatus != tt.status {
				t.Errorf("status = %d, want %d", res.HTTPStatus, tt.status)
			}
			wantLog := tt.logID
			if wantLog == "" && strings.Contains(tt.body, "logid") {
				wantLog = "20241210152726467C48D89D6DB2ABCD"
			}
			if res.LogID != wantLog {
				t.Errorf("logid = %q, want %q", res.LogID, wantLog)
			}
			if tt.errMatch != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errMatch)) {
				t.Errorf("err = %v, want it to mention %q", res.Err, tt.errMatch)
			}
		})
	}
}

func TestParseOversizedBody(t *testing.T) {
	t.Parallel()
	body := []byte(`{"code":0,"msg":"` + strings.Repeat("x", 200) + `"}`)
	res := coze.Parse(200, http.Header{}, body, nil, 100)
	if res.Class != coze.ClassUnknown || res.HasCode {
		t.Errorf("200 with an oversized body: class %s hasCode %v, want unknown without a code", res.Class, res.HasCode)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "longer than 100 bytes") {
		t.Errorf("err = %v, want it to name the limit", res.Err)
	}
	if res := coze.Parse(502, http.Header{}, body, nil, 100); res.Class != coze.ClassTransient {
		t.Errorf("502 with an oversized body: class %s, want transient", res.Class)
	}
}

func TestParseCutBodyIsTransient(t *testing.T) {
	t.Parallel()
	res := coze.Parse(200, http.Header{}, []byte(`{"code":0,"ms`), errors.New("unexpected EOF"), coze.DefaultMaxBodyBytes)
	if res.Class != coze.ClassTransient {
		t.Errorf("class = %s, want transient: a cut answer may hide a success or a failure", res.Class)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		value    string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"7", 7 * time.Second, 7 * time.Second},
		{"0", 0, 0},
		{"-3", 0, 0},
		{"soon", 0, 0},
		{"999999999", 24 * time.Hour, 24 * time.Hour},
		{date, 80 * time.Second, 91 * time.Second},
	}
	for _, tt := range tests {
		res := coze.Parse(429, http.Header{"Retry-After": {tt.value}}, nil, nil, 10)
		if res.RetryAfter < tt.min || res.RetryAfter > tt.max {
			t.Errorf("Retry-After %q = %v, want between %v and %v", tt.value, res.RetryAfter, tt.min, tt.max)
		}
	}
}

func TestCodeLabelIsBounded(t *testing.T) {
	t.Parallel()
	labels := map[string]bool{}
	for _, l := range coze.CodeLabels() {
		labels[l] = true
	}
	for _, c := range []struct {
		code    int64
		hasCode bool
		want    string
	}{{0, true, "0"}, {4100, true, "4100"}, {700012006, true, "other"}, {4001, true, "other"}, {0, false, "none"}} {
		got := coze.CodeLabel(c.code, c.hasCode)
		if got != c.want || !labels[got] {
			t.Errorf("CodeLabel(%d, %v) = %q (listed %v), want %q", c.code, c.hasCode, got, labels[got], c.want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
