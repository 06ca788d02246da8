package main

import (
	"strings"
	"testing"
)

// TestEnqueueRefusesBadCallbackURLs: --callback-url is checked in full
// before anything is written, and the error names the flag and the rule
// without repeating a credential.
func TestEnqueueRefusesBadCallbackURLs(t *testing.T) {
	t.Parallel()
	for name, u := range map[string]string{
		"port 0":     "http://example.com:0/hook",
		"port 65536": "http://example.com:65536/hook",
		"port 99999": "https://example.com:99999/hook",
		"no host":    "http:///hook",
		"port only":  "http://:80/hook",
		"userinfo":   "https://alice:hunter2@example.com/hook",
		"javascript": "javascript:alert(1)",
		"file":       "file:///etc/passwd",
		"too long":   "https://example.com/" + strings.Repeat("a", 2100),
		"newline":    "https://example.com/a\nb",
		"fragment":   "https://example.com/hook#x",
		"relative":   "/hook",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := runWithoutRedis(t, nil, "enqueue", "7379996104798150001", "--callback-url", u)
			if res.code != exitSetup || !strings.Contains(res.stderr, "--callback-url") {
				t.Errorf("exit %d, stderr %q: want exit 2 and an error naming --callback-url", res.code, res.stderr)
			}
			if strings.Contains(res.stderr, "hunter2") {
				t.Errorf("the password is in the error: %q", res.stderr)
			}
		})
	}
}
