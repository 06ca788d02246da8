package httpapi_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/httpapi"
)

// TestNewSecretIsAdmitted: a new secret's line admits that secret with its
// scopes, and nothing else.
func TestNewSecretIsAdmitted(t *testing.T) {
	t.Parallel()
	writer, writerLine, err := httpapi.NewSecret("dsr-platform", []httpapi.Scope{httpapi.ScopeRead, httpapi.ScopeWrite})
	if err != nil {
		t.Fatal(err)
	}
	reader, readerLine, err := httpapi.NewSecret("grafana", []httpapi.Scope{httpapi.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(writer, "cze_") || strings.Contains(writerLine, writer) {
		t.Fatalf("secret %q, line %q: the line must hold the hash, never the secret", writer, writerLine)
	}
	keys, err := httpapi.ParseKeys(strings.NewReader("# keys\n\n"+writerLine+"\n"+readerLine+"\n"), "keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header     string
		name       string
		read, writ bool
	}{
		{"Bearer " + writer, "dsr-platform", true, true},
		{"bearer " + reader, "grafana", true, false},
		{"Bearer " + writer + "x", "", false, false},
		{"Basic " + writer, "", false, false},
		{writer, "", false, false},
		{"", "", false, false},
	} {
		r := httptest.NewRequest("GET", "/v1/failures", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		k, err := keys.Authenticate(r)
		if tc.name == "" {
			if err == nil {
				t.Errorf("%q: admitted as %s", tc.header, k.Name)
			}
			continue
		}
		if err != nil || k.Name != tc.name || k.Can(httpapi.ScopeRead) != tc.read || k.Can(httpapi.ScopeWrite) != tc.writ {
			t.Errorf("%q: key %+v, %v; want %s read %v write %v", tc.header, k, err, tc.name, tc.read, tc.writ)
		}
	}
}

// TestKeysFileErrors: each bad line is named with the rule it breaks, a
// pasted secret is never echoed, and the good lines are not enough to
// load a file that has a bad one.
func TestKeysFileErrors(t *testing.T) {
	t.Parallel()
	secret, good, err := httpapi.NewSecret("ok", []httpapi.Scope{httpapi.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	file := strings.Join([]string{
		good,
		"ok read " + strings.Repeat("ab", 32),
		"two fields",
		"bad$name read " + strings.Repeat("ab", 32),
		"admin admin " + strings.Repeat("ab", 32),
		"pasted read,write " + secret,
		"twice read,read " + strings.Repeat("cd", 32),
	}, "\n")
	_, err = httpapi.ParseKeys(strings.NewReader(file), "keys.txt")
	if err == nil {
		t.Fatal("a bad file loaded")
	}
	msg := err.Error()
	for _, want := range []string{
		"keys.txt:2: key ok is also on line 1",
		"keys.txt:3: 2 fields",
		`keys.txt:4: key name "bad$name"`,
		`keys.txt:5: key admin: scope "admin"`,
		"keys.txt:6: key pasted: the third field is not a SHA-256",
		"keys.txt:7: key twice: scope read given twice",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("the error echoes a pasted secret:\n%s", msg)
	}
	if _, err := httpapi.ParseKeys(strings.NewReader("# nothing\n"), "empty"); err == nil || !strings.Contains(err.Error(), "api-key new") {
		t.Errorf("empty file: %v", err)
	}
	if _, err := httpapi.ParseKeys(strings.NewReader(strings.Repeat("x", 5000)), "long"); err == nil {
		t.Error("a 5000-byte line was accepted")
	}
	if _, _, err := httpapi.NewSecret("x y", []httpapi.Scope{httpapi.ScopeRead}); err == nil {
		t.Error("a name with a space was accepted")
	}
	if _, _, err := httpapi.NewSecret("x", []httpapi.Scope{"admin"}); err == nil {
		t.Error("scope admin was accepted")
	}
}
