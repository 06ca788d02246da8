package profiles_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/profiles"
)

// issueExample is the file of issue 14, the contract of the format.
const issueExample = `profiles:
  support-bot:                       # a static token: PAT or service token
    base_url: https://api.coze.cn
    token_file: /run/secrets/coze_service_token
    rate: 50                         # optional: ceiling of the adaptive budget, per second
  app-cn:                            # an OAuth JWT service app
    base_url: https://api.coze.cn
    jwt:
      app_id: "1127900106117"
      key_id: "_v0VjcMlLdQc3tRTD3jC5Xz29TUnKQOhtuD5k-gpyf4"   # the public key's fingerprint
      private_key_file: /run/secrets/coze_app.pem             # PKCS#8 or PKCS#1 PEM
      audience: api.coze.cn          # optional; default: the host of base_url
      token_ttl: 15m                 # optional; duration_seconds asked for, at most 86399 s
    rate: 100
    burst: 10
    max_inflight: 50
`

func TestParseIssueExample(t *testing.T) {
	t.Parallel()
	set, err := profiles.Parse(strings.NewReader(issueExample), "profiles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.Names(), []string{"app-cn", "support-bot"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	want := map[string]profiles.Profile{
		"support-bot": {Name: "support-bot", BaseURL: "https://api.coze.cn", TokenFile: "/run/secrets/coze_service_token", Rate: 50},
		"app-cn": {Name: "app-cn", BaseURL: "https://api.coze.cn", Rate: 100, Burst: 10, MaxInflight: 50, JWT: &profiles.JWT{
			AppID: "1127900106117", KeyID: "_v0VjcMlLdQc3tRTD3jC5Xz29TUnKQOhtuD5k-gpyf4",
			PrivateKeyFile: "/run/secrets/coze_app.pem", Audience: "api.coze.cn", TokenTTL: 15 * time.Minute,
		}},
	}
	for name, w := range want {
		got, ok := set.Get(name)
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("Get(%q) = %+v (%v), want %+v", name, got, ok, w)
		}
		if got.JWT != nil {
			got.JWT.AppID = "changed" // Get returns a copy: the set keeps what was parsed
			if again, _ := set.Get(name); again.JWT.AppID != w.JWT.AppID {
				t.Errorf("changing Get's JWT changed the set: %q", again.JWT.AppID)
			}
		}
	}
	if _, ok := set.Get("default"); ok {
		t.Error(`Get("default") found a profile the file does not define`)
	}
	if set.Len() != 2 {
		t.Errorf("Len() = %d, want 2", set.Len())
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	set := mustParse(t, `profiles:
  default:
    base_url: http://127.0.0.1:8080/
    jwt:
      app_id: 1127900106117
      key_id: kid
      private_key_file: key.pem
`)
	p, _ := set.Get("default")
	want := profiles.JWT{AppID: "1127900106117", KeyID: "kid", PrivateKeyFile: "key.pem", Audience: "127.0.0.1:8080", TokenTTL: profiles.DefaultTokenTTL}
	if p.JWT == nil || *p.JWT != want {
		t.Errorf("JWT = %+v, want %+v (an unquoted app id kept as written, audience the base URL's host and port, ttl 15m)", p.JWT, want)
	}
	if p.BaseURL != "http://127.0.0.1:8080" || p.Rate != 0 || p.Burst != 0 || p.MaxInflight != 0 || p.TokenEnv {
		t.Errorf("profile = %+v, want the base URL without its slash and zero limits", p)
	}
}

func TestParseAcceptsBounds(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"rate: 0", "rate: 0.01", "rate: 100000", "rate: 1e3", "burst: 0", "burst: 10000",
		"max_inflight: 0", "max_inflight: 100000", "base_url: https://api.coze.com/v1/proxy/",
		"base_url: HTTPS://API.COZE.CN", "base_url: https://[::1]:8443",
	} {
		key := line[:strings.Index(line, ":")]
		doc := strings.Replace(staticDoc, "    "+key+":", "    # "+key+":", 1) + "    " + line + "\n"
		if _, err := profiles.Parse(strings.NewReader(doc), "p.yaml"); err != nil {
			t.Errorf("%s: %v", line, err)
		}
	}
	for _, path := range []string{"pat_token.txt", "./pat_SECRETVALUE0123456789abcdefghijklmnopqrstuvwxyz", "pat_short"} {
		if _, err := profiles.Parse(strings.NewReader(with(staticDoc, "/run/secrets/t", path)), "p.yaml"); err != nil {
			t.Errorf("token_file %s: %v", path, err)
		}
	}
	for _, ttl := range []string{"1s", "86399s", "23h59m59s", "15m"} {
		if _, err := profiles.Parse(strings.NewReader(jwtDoc+"      token_ttl: "+ttl+"\n"), "p.yaml"); err != nil {
			t.Errorf("token_ttl %s: %v", ttl, err)
		}
	}
	for _, name := range []string{"a", "9", "A.b_c-d", strings.Repeat("n", profiles.MaxNameLen)} {
		if _, err := profiles.Parse(strings.NewReader(strings.Replace(staticDoc, "  p:", "  "+name+":", 1)), "p.yaml"); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
}

// staticDoc is a valid file with one static-token profile, "p"; a line
// appended to it is line 5 and belongs to the profile.
const staticDoc = `profiles:
  p:
    base_url: https://api.coze.cn
    token_file: /run/secrets/t
`

// jwtDoc is a valid file with one JWT profile, "p"; a line appended to it
// is line 8 and belongs to its jwt mapping.
const jwtDoc = `profiles:
  p:
    base_url: https://api.coze.cn
    jwt:
      app_id: "1127900106117"
      key_id: kid
      private_key_file: /run/secrets/k.pem
`

// ruleCase is a file that breaks exactly one rule, and the error wanted.
type ruleCase struct {
	name       string
	doc        string
	line, col  int
	path, rule string
}

func profileLine(line string) string { return staticDoc + "    " + line + "\n" }
func jwtLine(line string) string     { return jwtDoc + "      " + line + "\n" }

// with replaces the first old in doc with new.
func with(doc, old, new string) string {
	if !strings.Contains(doc, old) {
		panic(old)
	}
	return strings.Replace(doc, old, new, 1)
}

func baseURL(v string) string { return with(staticDoc, "https://api.coze.cn", v) }

func ruleCases() []ruleCase {
	const (
		unknown = "is not a known key"
		urlRule = "must be an http or https URL"
		noHost  = "has no host"
		name    = "is not a valid profile name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
		rate    = "must be 0 (no ceiling: the API's limit is found) or 0.01 to 100000 requests a second"
		notRate = "must be a number of requests a second"
		burst   = "must be 0 (takes 1) to 10000"
		ttl     = "must be 1s to 23h59m59s (86399s)"
		appID   = "must be the app's id, 1 to 19 digits (0-9)"
		floatID = "is read as a floating-point number, which loses digits: write the app id in quotes"
		secret  = "would put a secret in this file: put it in a file and give its path with token_file"
	)
	cases := []ruleCase{
		{"unknown top-level key", staticDoc + "extra: 1\n", 5, 1, "extra", unknown + ": use profiles"},
		{"unknown profile key", profileLine("rat: 5"), 5, 5, "profiles.p.rat", unknown + ": use base_url, token_file, jwt, rate, burst, max_inflight"},
		{"unknown jwt key", jwtLine("tokn_ttl: 15m"), 8, 7, "profiles.p.jwt.tokn_ttl", unknown + ": use app_id, key_id, private_key_file, audience, token_ttl"},
		{"unknown key with a hostile name", profileLine(`"a:b\u00e9": 1`), 5, 5, `profiles.p["a:bé"]`, unknown},
		{"duplicate key", profileLine("base_url: https://api.coze.com"), 5, 5, "profiles.p.base_url", "is defined twice: first at line 3"},
		{"duplicate jwt key", jwtLine("key_id: other"), 8, 7, "profiles.p.jwt.key_id", "is defined twice: first at line 6"},
		{"duplicate profile", staticDoc + "  p:\n    base_url: https://h\n    token_file: /t\n", 5, 3, "profiles.p", "is defined twice: first at line 2"},
		{"duplicate top-level key", staticDoc + "profiles:\n  q: {}\n", 5, 1, "profiles", "is defined twice: first at line 1"},
		{"token_file and jwt", profileLine("jwt: {app_id: '1', key_id: k, private_key_file: /k}"), 2, 3, "profiles.p", "has both token_file (line 4) and jwt (line 5): keep one"},
		{"neither token_file nor jwt", "profiles:\n  p:\n    base_url: https://h\n", 2, 3, "profiles.p", "has neither token_file nor jwt"},
		{"no base_url", "profiles:\n  p:\n    token_file: /t\n", 2, 3, "profiles.p.base_url", "is missing"},
		{"jwt without app_id", with(jwtDoc, "      app_id: \"1127900106117\"\n", ""), 4, 5, "profiles.p.jwt.app_id", "is missing"},
		{"profile not a mapping", "profiles:\n  p: https://h\n", 2, 6, "profiles.p", "must be a mapping (with base_url and token_file or jwt), not a string"},
		{"empty profile", "profiles:\n  p:\n", 2, 5, "profiles.p", "must be a mapping (with base_url and token_file or jwt), not empty"},
		{"jwt not a mapping", with(staticDoc, "token_file: /run/secrets/t", "jwt: [a]"), 4, 10, "profiles.p.jwt", "must be a mapping"},
		{"alias", "profiles:\n  p: &a {base_url: https://h, token_file: /t}\n  q: *a\n", 3, 6, "profiles.q", "is an alias (*a): aliases are not supported"},
		{"merge key", "profiles:\n  p: &a {base_url: https://h, token_file: /t}\n  q:\n    <<: *a\n    base_url: https://h\n    token_file: /t\n", 4, 9, `profiles.q["<<"]`, "is an alias"},

		{"userinfo", baseURL("https://user:pw@api.coze.cn"), 3, 15, "profiles.p.base_url", "must not hold a user name or password"},
		{"user only", baseURL("https://user@api.coze.cn"), 3, 15, "profiles.p.base_url", "must not hold a user name or password"},
		{"javascript:", baseURL(`"javascript:alert(1)"`), 3, 15, "profiles.p.base_url", urlRule},
		{"ftp", baseURL("ftp://api.coze.cn"), 3, 15, "profiles.p.base_url", urlRule},
		{"no scheme", baseURL("api.coze.cn"), 3, 15, "profiles.p.base_url", urlRule},
		{"relative", baseURL("/v1"), 3, 15, "profiles.p.base_url", urlRule},
		{"no host", baseURL("https://"), 3, 15, "profiles.p.base_url", noHost},
		{"empty host", baseURL("https:///v1"), 3, 15, "profiles.p.base_url", noHost},
		{"port only", baseURL("https://:443"), 3, 15, "profiles.p.base_url", noHost},
		{"opaque", baseURL("https:api.coze.cn"), 3, 15, "profiles.p.base_url", noHost},
		{"query", baseURL("https://api.coze.cn/?x=1"), 3, 15, "profiles.p.base_url", "must not have a query"},
		{"empty query", baseURL("https://api.coze.cn?"), 3, 15, "profiles.p.base_url", "must not have a query"},
		{"fragment", baseURL(`"https://api.coze.cn/#x"`), 3, 15, "profiles.p.base_url", "must not have a fragment"},
		{"port 0", baseURL("https://api.coze.cn:0"), 3, 15, "profiles.p.base_url", "has a port outside 1-65535"},
		{"port too high", baseURL("https://api.coze.cn:99999"), 3, 15, "profiles.p.base_url", "has a port outside 1-65535"},
		{"space", baseURL(`"https://api.coze.cn/a b"`), 3, 15, "profiles.p.base_url", "has a space, control or non-ASCII character at byte 22"},
		{"unicode host", baseURL("https://api.cöze.cn"), 3, 15, "profiles.p.base_url", "has a space, control or non-ASCII character"},
		{"empty URL", baseURL(`""`), 3, 15, "profiles.p.base_url", "is empty"},
		{"URL as a number", baseURL("123"), 3, 15, "profiles.p.base_url", "must be a string, not an integer"},
		{"URL as a list", baseURL("[https://h]"), 3, 15, "profiles.p.base_url", "must be a string, not a list"},
		{"garbled URL", baseURL(`"https://h%zz"`), 3, 15, "profiles.p.base_url", "is not a URL"},

		{"name with ':'", with(staticDoc, "  p:", `  "a:b":`), 2, 3, `profiles["a:b"]`, name},
		{"name with '/'", with(staticDoc, "  p:", "  a/b:"), 2, 3, `profiles["a/b"]`, name},
		{"name with a space", with(staticDoc, "  p:", "  a b:"), 2, 3, `profiles["a b"]`, name},
		{"name with a tab", with(staticDoc, "  p:", `  "a\tb":`), 2, 3, `profiles["a\tb"]`, name},
		{"unicode name", with(staticDoc, "  p:", "  café:"), 2, 3, `profiles["café"]`, name},
		{"name of 65 bytes", with(staticDoc, "  p:", "  "+strings.Repeat("n", 65)+":"), 2, 3, `profiles["` + strings.Repeat("n", 64) + `"… (65 bytes)]`, name},
		{"name starting with '-'", with(staticDoc, "  p:", "  -p:"), 2, 3, `profiles["-p"]`, name},
		{"name starting with '.'", with(staticDoc, "  p:", "  .p:"), 2, 3, `profiles[".p"]`, name},
		{"empty name", with(staticDoc, "  p:", `  "":`), 2, 3, `profiles[""]`, name},
		{"name as a list", with(staticDoc, "  p:", "  ? [a]\n  :"), 2, 5, "profiles", "has a key that is a list"},

		{"negative rate", profileLine("rate: -1"), 5, 11, "profiles.p.rate", "-1: " + rate},
		{"rate too low", profileLine("rate: 0.001"), 5, 11, "profiles.p.rate", "0.001: " + rate},
		{"rate too high", profileLine("rate: 100001"), 5, 11, "profiles.p.rate", "100001: " + rate},
		{"huge rate", profileLine("rate: 1e308"), 5, 11, "profiles.p.rate", "1e+308: " + rate},
		{"rate beyond float64", profileLine("rate: 1e400"), 5, 11, "profiles.p.rate", notRate + `, not "1e400"`},
		{"infinite rate", profileLine("rate: .inf"), 5, 11, "profiles.p.rate", notRate + `, not ".inf"`},
		{"NaN rate", profileLine("rate: .nan"), 5, 11, "profiles.p.rate", notRate + `, not ".nan"`},
		{"rate as a string", profileLine(`rate: "50"`), 5, 11, "profiles.p.rate", notRate + ", not a string"},
		{"rate as auto", profileLine("rate: auto"), 5, 11, "profiles.p.rate", notRate + ", not a string"},
		{"rate as a bool", profileLine("rate: true"), 5, 11, "profiles.p.rate", notRate + ", not true or false"},
		{"empty rate", profileLine("rate:"), 5, 10, "profiles.p.rate", notRate + ", not empty"},
		{"negative burst", profileLine("burst: -1"), 5, 12, "profiles.p.burst", "-1: " + burst},
		{"burst too high", profileLine("burst: 10001"), 5, 12, "profiles.p.burst", "10001: " + burst},
		{"burst as int64 max", profileLine("burst: 9223372036854775807"), 5, 12, "profiles.p.burst", `"9223372036854775807": ` + burst},
		{"burst as uint64 max", profileLine("burst: 18446744073709551615"), 5, 12, "profiles.p.burst", `"18446744073709551615": ` + burst},
		{"burst beyond uint64", profileLine("burst: 99999999999999999999"), 5, 12, "profiles.p.burst", `"99999999999999999999": ` + burst},
		{"fractional burst", profileLine("burst: 1.5"), 5, 12, "profiles.p.burst", `must be a whole number, not "1.5"`},
		{"negative max_inflight", profileLine("max_inflight: -1"), 5, 19, "profiles.p.max_inflight", "-1: must be 0 (no cap) to 100000"},
		{"max_inflight too high", profileLine("max_inflight: 100001"), 5, 19, "profiles.p.max_inflight", "100001: must be 0 (no cap) to 100000"},

		{"token_ttl 0", jwtLine("token_ttl: 0s"), 8, 18, "profiles.p.jwt.token_ttl", "0s: " + ttl},
		{"token_ttl 86400s", jwtLine("token_ttl: 86400s"), 8, 18, "profiles.p.jwt.token_ttl", "24h0m0s: " + ttl},
		{"negative token_ttl", jwtLine("token_ttl: -1s"), 8, 18, "profiles.p.jwt.token_ttl", "-1s: " + ttl},
		{"token_ttl abc", jwtLine("token_ttl: abc"), 8, 18, "profiles.p.jwt.token_ttl", `"abc": must be a duration such as 15m or 900s`},
		{"token_ttl in seconds", jwtLine("token_ttl: 900"), 8, 18, "profiles.p.jwt.token_ttl", "must be a duration such as 15m or 900s, not an integer"},
		{"fractional token_ttl", jwtLine("token_ttl: 1.5s"), 8, 18, "profiles.p.jwt.token_ttl", "1.5s: must be whole seconds"},

		{"app_id as a float", with(jwtDoc, `"1127900106117"`, "1.1e12"), 5, 15, "profiles.p.jwt.app_id", `"1.1e12" ` + floatID},
		{"app_id beyond uint64", with(jwtDoc, `"1127900106117"`, "99999999999999999999"), 5, 15, "profiles.p.jwt.app_id", floatID},
		{"20-digit app_id", with(jwtDoc, `"1127900106117"`, `"12345678901234567890"`), 5, 15, "profiles.p.jwt.app_id", `"12345678901234567890": ` + appID},
		{"20-digit unquoted app_id", with(jwtDoc, `"1127900106117"`, "12345678901234567890"), 5, 15, "profiles.p.jwt.app_id", appID},
		{"app_id in hex", with(jwtDoc, `"1127900106117"`, "0x1F"), 5, 15, "profiles.p.jwt.app_id", `"0x1F": ` + appID},
		{"negative app_id", with(jwtDoc, `"1127900106117"`, "-1"), 5, 15, "profiles.p.jwt.app_id", `"-1": ` + appID},
		{"app_id with letters", with(jwtDoc, `"1127900106117"`, "abc"), 5, 15, "profiles.p.jwt.app_id", appID},
		{"empty app_id", with(jwtDoc, `"1127900106117"`, `""`), 5, 15, "profiles.p.jwt.app_id", `"": ` + appID},
		{"null app_id", with(jwtDoc, `"1127900106117"`, "~"), 5, 15, "profiles.p.jwt.app_id", "must be the app's id in digits, not empty"},
		{"key_id with a space", with(jwtDoc, "key_id: kid", `key_id: "k id"`), 6, 15, "profiles.p.jwt.key_id", "has a space, control or non-ASCII character at byte 2"},
		{"empty key_id", with(jwtDoc, "key_id: kid", `key_id: ""`), 6, 15, "profiles.p.jwt.key_id", "is empty"},
		{"unicode key_id", with(jwtDoc, "key_id: kid", "key_id: kïd"), 6, 15, "profiles.p.jwt.key_id", "non-ASCII"},
		{"long key_id", with(jwtDoc, "key_id: kid", "key_id: "+strings.Repeat("k", 257)), 6, 15, "profiles.p.jwt.key_id", "is 257 bytes long: at most 256"},
		{"audience with a space", jwtLine(`audience: "api coze"`), 8, 17, "profiles.p.jwt.audience", "has a space"},
		{"empty private_key_file", with(jwtDoc, "/run/secrets/k.pem", `""`), 7, 25, "profiles.p.jwt.private_key_file", "is empty: give the path of the file"},
		{"empty token_file", with(staticDoc, "/run/secrets/t", `""`), 4, 17, "profiles.p.token_file", "is empty: give the path of the file"},
		{"token as token_file", with(staticDoc, "/run/secrets/t", "pat_SECRETVALUE0123456789abcdefghijklmnopqrstuvwxyz"), 4, 17, "profiles.p.token_file", "looks like a token, not a path"},
		{"PEM as private_key_file", with(jwtDoc, "/run/secrets/k.pem", `"-----BEGIN PRIVATE KEY-----SECRETVALUE"`), 7, 25, "profiles.p.jwt.private_key_file", "looks like a PEM key, not a path"},

		{"inline token", profileLine("token: pat_SECRETVALUE"), 5, 5, "profiles.p.token", secret},
		{"inline api_key", profileLine("api_key: SECRETVALUE"), 5, 5, "profiles.p.api_key", secret},
		{"inline Secret", profileLine("Secret: SECRETVALUE"), 5, 5, "profiles.p.Secret", secret},
		{"inline access-token", profileLine("access-token: SECRETVALUE"), 5, 5, "profiles.p.access-token", secret},
		{"top-level token", staticDoc + "token: SECRETVALUE\n", 5, 1, "token", secret},
		{"inline private_key", jwtLine("private_key: SECRETVALUE"), 8, 7, "profiles.p.jwt.private_key", "would put a secret in this file: put it in a file and give its path with jwt.private_key_file"},
		{"a profile that is a token", staticDoc + "  token: SECRETVALUE\n", 5, 3, "profiles.token", secret},
	}
	return cases
}

func TestParseRules(t *testing.T) {
	t.Parallel()
	for _, c := range ruleCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			errs := parseErrors(t, c.doc)
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %d:\n%v", len(errs), errors.Join(asErrors(errs)...))
			}
			e := errs[0]
			if e.Source != "p.yaml" || e.Line != c.line || e.Column != c.col || e.Path != c.path || !strings.Contains(e.Rule, c.rule) {
				t.Errorf("got  %s:%d:%d path %s rule %q\nwant %s:%d:%d path %s rule containing %q",
					e.Source, e.Line, e.Column, e.Path, e.Rule, "p.yaml", c.line, c.col, c.path, c.rule)
			}
			if want := fmt.Sprintf("p.yaml:%d:%d: %s ", c.line, c.col, c.path); !strings.HasPrefix(e.Error(), want) {
				t.Errorf("Error() = %q, want it to start with %q", e.Error(), want)
			}
			for _, secret := range []string{"SECRETVALUE", "pw@", "user:"} {
				if strings.Contains(e.Error(), secret) {
					t.Errorf("Error() = %q shows %q", e.Error(), secret)
				}
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	t.Parallel()
	doc := `profiles:
  a:b:
    base_url: https://user:pw@h
    token_file: /t
    rate: -5
  ok:
    base_url: https://h
    token_file: /t
  j:
    base_url: https://h
    jwt:
      app_id: 1.1e12
      key_id: k
      private_key_file: /k
      token_ttl: 0s
      color: blue
`
	errs := parseErrors(t, doc)
	want := []string{
		"p.yaml:2:3: profiles[\"a:b\"] is not a valid profile name",
		"p.yaml:3:15: profiles[\"a:b\"].base_url must not hold a user name or password",
		"p.yaml:5:11: profiles[\"a:b\"].rate -5: must be 0",
		"p.yaml:12:15: profiles.j.jwt.app_id \"1.1e12\" is read as a floating-point number",
		"p.yaml:15:18: profiles.j.jwt.token_ttl 0s: must be 1s to",
		"p.yaml:16:7: profiles.j.jwt.color is not a known key",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errors.Join(asErrors(errs)...))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to start with %q", i, errs[i], w)
		}
	}
}

func TestParseRefusesFile(t *testing.T) {
	t.Parallel()
	big := "profiles:\n" + strings.Repeat("# padding\n", 2<<20/10)
	for _, c := range []struct {
		name, doc string
		line      int
		rule      string
	}{
		{"empty file", "", 0, "is empty: it must hold a profiles: mapping"},
		{"only comments", "# nothing\n\n", 0, "is empty"},
		{"only a null", "~\n", 0, "is empty"},
		{"root is a list", "- profiles\n", 1, "must be a mapping (with the key profiles), not a list"},
		{"root is a string", "profiles\n", 1, "must be a mapping (with the key profiles), not a string"},
		{"no profiles key", "{}\n", 1, "is missing"},
		{"profiles empty", "profiles:\n", 1, "profiles is empty: define at least one profile"},
		{"profiles {}", "profiles: {}\n", 1, "profiles is empty: define at least one profile"},
		{"profiles a list", "profiles: [a]\n", 1, "profiles must be a mapping (of profile names to profiles), not a list"},
		{"two documents", staticDoc + "---\nprofiles: {}\n", 5, "has more than one YAML document"},
		{"syntax error", staticDoc + "  q: [\n", 5, "is not valid YAML"},
		{"tab indentation", "profiles:\n\tp: {}\n", 2, "is not valid YAML"},
		{"2 MiB", big, 0, "is larger than 1048576 bytes (1 MiB): refused"},
	} {
		errs := parseErrors(t, c.doc)
		if len(errs) != 1 || errs[0].Line != c.line || !strings.Contains(errs[0].Error(), c.rule) {
			t.Errorf("%s: got %v, want one error at line %d with %q", c.name, errors.Join(asErrors(errs)...), c.line, c.rule)
		}
	}
}

func TestParseBoundsErrorCount(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(staticDoc)
	for i := range 500 {
		fmt.Fprintf(&b, "    x%d: 1\n", i)
	}
	errs := parseErrors(t, b.String())
	if len(errs) != profiles.MaxErrors+1 || !strings.Contains(errs[profiles.MaxErrors].Error(), "has 400 more errors, not shown") {
		t.Errorf("got %d errors, last %v; want %d and a count of the rest", len(errs), errs[len(errs)-1], profiles.MaxErrors+1)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(path, []byte(issueExample), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := profiles.Load(path)
	if err != nil || set.Len() != 2 {
		t.Fatalf("Load = %v, %v", set.Names(), err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(profileLine("rat: 1")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := profiles.Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":5:5: profiles.p.rat is not a known key") {
		t.Errorf("Load(bad) = %v, want the file's name, line and column", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#\n", 1<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := profiles.Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(2 MiB) = %v, want it refused", err)
	}
	if _, err := profiles.Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(dir) = %v, want not a regular file", err)
	}
	fifo := filepath.Join(dir, "fifo") // would block an open without O_NONBLOCK
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := profiles.Load(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(fifo) = %v, want not a regular file", err)
	}
	p := profiles.Profile{Name: "f", BaseURL: "https://h", TokenFile: fifo}
	if errs := p.CheckFiles(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "not a regular file") {
		t.Errorf("CheckFiles(fifo) = %v, want not a regular file", errs)
	}
	if _, err := profiles.Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestCheckFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token, key := filepath.Join(dir, "token"), filepath.Join(dir, "key.pem")
	for _, f := range []string{token, key} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc := fmt.Sprintf(`profiles:
  s: {base_url: https://h, token_file: %q}
  j: {base_url: https://h, jwt: {app_id: "1", key_id: k, private_key_file: %q}}
`, token, key)
	set := mustParse(t, doc)
	if errs := set.CheckFiles(); len(errs) != 0 {
		t.Errorf("CheckFiles = %v, want none", errs)
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(token); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(token, 0o700); err != nil {
		t.Fatal(err)
	}
	errs := set.CheckFiles()
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), `profile "j": jwt.private_key_file: `) || !errors.Is(errs[0], os.ErrNotExist) ||
		!strings.Contains(errs[1].Error(), `profile "s": token_file: `+token+": not a regular file") {
		t.Errorf("CheckFiles = %v, want a missing key file and a directory as token file", errs)
	}
	if os.Geteuid() != 0 {
		unreadable := filepath.Join(dir, "unreadable")
		if err := os.WriteFile(unreadable, []byte("x"), 0o000); err != nil {
			t.Fatal(err)
		}
		p := profiles.Profile{Name: "u", BaseURL: "https://h", TokenFile: unreadable}
		if errs := p.CheckFiles(); len(errs) != 1 || !errors.Is(errs[0], os.ErrPermission) {
			t.Errorf("CheckFiles(unreadable) = %v, want permission denied", errs)
		}
	}
}

func TestDefaultAndNewSet(t *testing.T) {
	t.Parallel()
	p := profiles.Default("https://api.coze.com/")
	if p != (profiles.Profile{Name: "default", BaseURL: "https://api.coze.com", TokenEnv: true}) {
		t.Errorf("Default = %+v", p)
	}
	set, err := profiles.NewSet(p)
	if err != nil || !reflect.DeepEqual(set.Names(), []string{"default"}) {
		t.Fatalf("NewSet(Default) = %v, %v", set.Names(), err)
	}
	if _, err := profiles.NewSet(profiles.Default("https://user:pw@h")); err == nil ||
		strings.Contains(err.Error(), "pw") || !strings.Contains(err.Error(), `profile "default": base_url must not hold a user name or password`) {
		t.Errorf("NewSet(Default(userinfo)) = %v", err)
	}
	jwt := profiles.Profile{Name: "j", BaseURL: "https://api.coze.cn", JWT: &profiles.JWT{AppID: "1", KeyID: "k", PrivateKeyFile: "/k"}}
	set, err = profiles.NewSet(jwt, p)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := set.Get("j"); got.JWT.Audience != "api.coze.cn" || got.JWT.TokenTTL != profiles.DefaultTokenTTL || jwt.JWT.Audience != "" {
		t.Errorf("NewSet filled %+v (and the argument's JWT %+v); want audience and ttl defaults on a copy", got.JWT, jwt.JWT)
	}
	both := p
	both.TokenFile = "/t"
	_, err = profiles.NewSet(both, p, profiles.Profile{Name: "a b", BaseURL: "https://h", TokenFile: "/t", Rate: -1})
	for _, want := range []string{
		`profile "default": token source must be exactly one of`,
		`profile "default": defined twice`,
		`profile "a b": name "a b": use 1-64 letters`,
		`profile "a b": rate -1: must be 0`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewSet = %v, want %q", err, want)
		}
	}
	if _, err := profiles.NewSet(); err == nil {
		t.Error("NewSet() = nil error, want no profiles refused")
	}
}

func TestValidateNameAndCheckBaseURL(t *testing.T) {
	t.Parallel()
	if err := profiles.ValidateName("a:b"); err == nil {
		t.Error(`ValidateName("a:b") = nil`)
	}
	if err := profiles.ValidateName("support-bot"); err != nil {
		t.Error(err)
	}
	if err := profiles.CheckBaseURL("https://api.coze.cn/"); err != nil {
		t.Error(err)
	}
	if err := profiles.CheckBaseURL("https://a:secret@h"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("CheckBaseURL(userinfo) = %v, want refused without the password", err)
	}
}

func TestProfileString(t *testing.T) {
	t.Parallel()
	set := mustParse(t, issueExample)
	app, _ := set.Get("app-cn")
	bot, _ := set.Get("support-bot")
	for _, c := range []struct{ got, want string }{
		{app.String(), "app-cn: https://api.coze.cn, jwt app 1127900106117 key _v0VjcMlLdQc3tRTD3jC5Xz29TUnKQOhtuD5k-gpyf4 (/run/secrets/coze_app.pem), audience api.coze.cn, token ttl 15m0s, rate auto up to 100/s, burst 10, max in flight 50"},
		{bot.String(), "support-bot: https://api.coze.cn, token file /run/secrets/coze_service_token, rate auto up to 50/s"},
		{profiles.Default("https://h").String(), "default: https://h, token from COZE_API_TOKEN or COZE_API_TOKEN_FILE, rate auto"},
	} {
		if c.got != c.want {
			t.Errorf("String() = %q\nwant       %q", c.got, c.want)
		}
	}
}

func mustParse(t *testing.T, doc string) profiles.Set {
	t.Helper()
	set, err := profiles.Parse(strings.NewReader(doc), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// parseErrors parses doc, which must be refused, and returns its errors.
func parseErrors(t *testing.T, doc string) []*profiles.Error {
	t.Helper()
	set, err := profiles.Parse(strings.NewReader(doc), "p.yaml")
	if err == nil {
		t.Fatalf("Parse accepted the file (%v):\n%s", set.Names(), doc)
	}
	if set.Len() != 0 || set.Names() != nil {
		t.Errorf("Parse returned profiles %v with its error", set.Names())
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]*profiles.Error, 0, len(list))
	for _, e := range list {
		var pe *profiles.Error
		if !errors.As(e, &pe) {
			t.Fatalf("error %v is not a *profiles.Error", e)
		}
		out = append(out, pe)
	}
	return out
}

func asErrors(errs []*profiles.Error) []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return out
}
