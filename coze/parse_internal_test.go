package coze

import (
	"encoding/json"
	"testing"
)

// FuzzParseSuccessAgrees: the fast path for a success body accepts only what
// encoding/json reads the same way.
//
//	go test -run '^$' -fuzz FuzzParseSuccessAgrees -fuzztime 1m ./coze/
func FuzzParseSuccessAgrees(f *testing.F) {
	for _, body := range []string{
		`{"code":0,"msg":"","detail":{"logid":"20241210152726467C48D89D6DB2ABCD"}}`,
		`{"code":0,"msg":"","detail":{"logid":""}}`,
		`{"code":0,"msg":"","detail":{"logid":"a\"b"}}`,
		`{"code":0,"msg":"","detail":{"logid":"a\u0041"}}`,
		"{\"code\":0,\"msg\":\"\",\"detail\":{\"logid\":\"a\nb\"}}",
		"{\"code\":0,\"msg\":\"\",\"detail\":{\"logid\":\"\xff\"}}",
		`{"code":0,"msg":"","detail":{"logid":"x"}} `,
		`{"code":4100,"msg":"","detail":{"logid":"x"}}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast responseBody
		if !parseSuccess(body, &fast) {
			return
		}
		logID := fast.Detail.LogID
		if fast.Code == nil || *fast.Code != 0 || fast.Msg != "" {
			t.Fatalf("fast path read %q as %+v", body, fast)
		}
		var parsed responseBody
		if err := json.Unmarshal(body, &parsed); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", body, err)
		}
		if parsed.Code == nil || *parsed.Code != 0 || parsed.Msg != "" || parsed.Detail.LogID != logID {
			t.Fatalf("fast path read %q as log id %q; encoding/json reads %+v", body, logID, parsed)
		}
	})
}
