package profiles

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ratelimit"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// The rules of the file's values. Each returns "" when the value is fine,
// or what is wrong and what to do, phrased to follow the key's name. None
// quotes a URL or a path: a URL may hold a password and a path pasted in
// the wrong place may be a token.

// ValidateName checks a profile name: 1 to [MaxNameLen] ASCII letters,
// digits, '.', '_' or '-', starting with a letter or digit, the rule of
// batch and queue names (tasks.ValidateBatch): a profile's name becomes part
// of Redis keys, task payloads and metric labels, so none of their
// separators is allowed.
func ValidateName(name string) error {
	if p := nameProblem(name); p != "" {
		return fmt.Errorf("profile name %s", p)
	}
	return nil
}

// nameRule is what [ValidateName] asks of a name.
var nameRule = fmt.Sprintf("use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", MaxNameLen)

func nameProblem(name string) string {
	if !plainName(name) {
		return quoteShort(name) + ": " + nameRule
	}
	return ""
}

func plainName(name string) bool { return tasks.ValidateProfile(name) == nil }

// CheckBaseURL checks an API base URL with the rules of base_url: what
// coze.NewClient accepts (an absolute http or https URL with a host, trailing
// slashes ignored), and also no user or password, no query, no fragment and
// no space, control or non-ASCII character. The error does not quote the
// URL, which may hold a password.
func CheckBaseURL(raw string) error {
	return coze.CheckBaseURL(raw)
}

// baseURLProblem is what is wrong with a base URL, by coze's rule.
func baseURLProblem(raw string) string {
	var bad *coze.BaseURLError
	if errors.As(coze.CheckBaseURL(raw), &bad) {
		return bad.Problem
	}
	return ""
}

// hostOf returns the host of a base URL, with its port if it has one: the
// default JWT audience ("api.coze.cn"), as coze.JWTConfig defaults it. It is
// "" for an invalid URL.
func hostOf(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// maxAppIDDigits: Coze's ids are int64, which have at most 19 digits.
const maxAppIDDigits = 19

func appIDProblem(id string) string {
	if id == "" || len(id) > maxAppIDDigits || strings.IndexFunc(id, notDigit) >= 0 {
		return fmt.Sprintf("%s: must be the app's id, 1 to %d digits (0-9)", quoteShort(id), maxAppIDDigits)
	}
	return ""
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// maxWordLen bounds key_id and audience: both are short (a fingerprint of
// 43 characters, a host name), and they go into every JWT header.
const maxWordLen = 256

func keyIDProblem(s string) string {
	return wordProblem(s, "the public key's fingerprint from the app's page")
}

func audienceProblem(s string) string {
	return wordProblem(s, "the API host, such as api.coze.cn")
}

func wordProblem(s, what string) string {
	if s == "" {
		return "is empty: give " + what
	}
	if len(s) > maxWordLen {
		return fmt.Sprintf("is %d bytes long: at most %d", len(s), maxWordLen)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }); i >= 0 {
		return fmt.Sprintf("has a space, control or non-ASCII character at byte %d: give %s", i+1, what)
	}
	return ""
}

// maxPathLen is PATH_MAX on Linux.
const maxPathLen = 4096

// tokenPrefixes begin Coze's tokens: personal access tokens, service
// tokens and access tokens minted for an app.
var tokenPrefixes = []string{"pat_", "sat_", "czs_"}

func pathProblem(path string) string {
	switch {
	case path == "":
		return "is empty: give the path of the file"
	case len(path) > maxPathLen:
		return fmt.Sprintf("is %d bytes long: a path has at most %d", len(path), maxPathLen)
	case strings.ContainsRune(path, 0):
		return "has a NUL byte: give the path of the file"
	case strings.Contains(path, "-----BEGIN"):
		return "looks like a PEM key, not a path: put the key in a file and give its path"
	}
	if looksLikeToken(path) {
		return "looks like a token, not a path: put the token in a file and give its path"
	}
	return ""
}

// looksLikeToken reports whether s is a Coze token pasted where a path
// belongs: a token prefix and at least 32 letters, digits or '_', which no
// file name such as "pat_token.txt" or "./pat_x" has.
func looksLikeToken(s string) bool {
	if len(s) < 32 || !slices.ContainsFunc(tokenPrefixes, func(p string) bool { return strings.HasPrefix(s, p) }) {
		return false
	}
	word := func(r rune) bool {
		return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	for _, r := range s {
		if !word(r) {
			return false
		}
	}
	return true
}

func tokenTTLProblem(d time.Duration) string {
	if d < MinTokenTTL || d > MaxTokenTTL {
		return fmt.Sprintf("%s: must be %s to %s (86399s)", d, MinTokenTTL, MaxTokenTTL)
	}
	if d%time.Second != 0 {
		return fmt.Sprintf("%s: must be whole seconds (the token endpoint takes seconds)", d)
	}
	return ""
}

func rateProblem(r float64) string {
	if r == 0 || r >= ratelimit.LowestRate && r <= ratelimit.HighestRate && !math.IsInf(r, 0) {
		return ""
	}
	return fmt.Sprintf("%v: must be 0 (no ceiling: the API's limit is found) or %v to %v requests a second",
		r, ratelimit.LowestRate, ratelimit.HighestRate)
}

func burstProblem(n int) string {
	if n < 0 || n > ratelimit.MaxBurst {
		return fmt.Sprintf("%d: must be 0 (takes 1) to %d", n, ratelimit.MaxBurst)
	}
	return ""
}

func inflightProblem(n int) string {
	if n < 0 || n > ratelimit.MaxInflightCap {
		return fmt.Sprintf("%d: must be 0 (no cap) to %d", n, ratelimit.MaxInflightCap)
	}
	return ""
}
