package coze

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// BaseURLError is what [CheckBaseURL] finds wrong with a base URL.
type BaseURLError struct {
	// Problem says what is wrong and what to give instead; it never quotes
	// the URL, which may hold a password.
	Problem string
}

func (e *BaseURLError) Error() string { return "base URL " + e.Problem }

// CheckBaseURL checks an API base URL strictly: an absolute http or https
// URL with a host (trailing slashes ignored), and no user or password, no
// query, no fragment, no space, control or non-ASCII character and a port
// from 1 to 65535. Profiles and JWT apps use it; [NewClient] accepts what
// it always did. The error is a [*BaseURLError].
func CheckBaseURL(raw string) error {
	if p := baseURLProblem(raw); p != "" {
		return &BaseURLError{Problem: p}
	}
	return nil
}

func baseURLProblem(raw string) string {
	if raw == "" {
		return "is empty: give the API's URL, such as https://api.coze.cn"
	}
	if i := strings.IndexFunc(raw, func(r rune) bool { return r <= ' ' || r >= 0x7f }); i >= 0 {
		return fmt.Sprintf("has a space, control or non-ASCII character at byte %d", i+1)
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	switch {
	case err != nil:
		return "is not a URL: give one such as https://api.coze.cn"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http or https URL, such as https://api.coze.cn"
	case u.User != nil:
		return "must not hold a user name or password: a token never goes in the URL"
	case u.Opaque != "" || u.Hostname() == "":
		return "has no host: give one such as https://api.coze.cn"
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query (?...)"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment (#...)"
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "has a port outside 1-65535"
		}
	}
	return ""
}
