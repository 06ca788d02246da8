package coze_test

import (
	"net/http"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coze-eraser/coze-eraser/coze"
)

// FuzzParse: any status, headers and body give a known class without a
// panic; the code is there only when the body had a JSON code; the log id
// comes from the body or the header; Retry-After stays within a day.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 2m ./coze/
func FuzzParse(f *testing.F) {
	f.Add(200, "", "", []byte(`{"code":0,"msg":"","detail":{"logid":"20241210152726467C48D89D6DB2ABCD"}}`))
	f.Add(200, "HDR", "", []byte(`{"code":4100,"msg":"x"}`))
	f.Add(429, "", "7", []byte("Too Many Requests"))
	f.Add(502, "", "", []byte("<html><title>502 Bad Gateway</title></html>"))
	f.Add(200, "", "", []byte(`{"code":700012006,"msg":"access token invalid"}`))
	f.Add(301, "", "", []byte(`{"code":0}`))
	f.Add(200, "", "Wed, 21 Oct 2065 07:28:00 GMT", []byte(`{"code":"0"}`))
	f.Add(0, "", "-1", []byte(nil))
	f.Add(200, "", "", []byte(`{"code":1e400}`))
	f.Add(200, "", "", []byte(`{"code":9223372036854775807,"detail":{"logid":null}}`))
	f.Fuzz(func(t *testing.T, status int, logID, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set(coze.LogIDHeader, logID)
		h.Set("Retry-After", retryAfter)
		res := coze.Parse(status, h, body, nil, 1024)
		if !slices.Contains(coze.Classes, res.Class) {
			t.Fatalf("class %q", res.Class)
		}
		if res.HasCode && len(body) > 1024 {
			t.Fatalf("parsed a body over the limit")
		}
		if res.Class == coze.ClassDeleted && (!res.HasCode || res.Code != 0 || status < 200 || status > 299) {
			t.Fatalf("deleted from status %d code %d (has %v)", status, res.Code, res.HasCode)
		}
		if res.RetryAfter < 0 || res.RetryAfter > 24*time.Hour {
			t.Fatalf("Retry-After %v", res.RetryAfter)
		}
		if res.LogID != h.Get(coze.LogIDHeader) && !res.HasCode {
			t.Fatalf("log id %q without a body; header %q", res.LogID, h.Get(coze.LogIDHeader))
		}
		if res.Err != nil && !utf8.ValidString(res.Err.Error()) && utf8.Valid(body) {
			t.Fatalf("error %q", res.Err)
		}
		if label := coze.CodeLabel(res.Code, res.HasCode); !slices.Contains(coze.CodeLabels(), label) {
			t.Fatalf("label %q", label)
		}
	})
}
