package coze

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults of a [Client].
const (
	DefaultBaseURL      = "https://api.coze.cn"
	DefaultTimeout      = 10 * time.Second
	DefaultMaxBodyBytes = 64 << 10
)

// LogIDHeader is the response header that carries the log id when the body
// does not.
const LogIDHeader = "X-Tt-Logid"

// Client calls the Coze OpenAPI. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	endpoint  string // base + "/v1/conversations/", built once
	tokens    TokenSource
	http      *http.Client
	timeout   time.Duration
	maxBody   int64
	userAgent string
}

// Option configures a [Client].
type Option func(*Client)

// WithHTTPClient sets the HTTP client. Its own Timeout should be zero: the
// per-request timeout is [WithTimeout]'s. Its redirect policy is replaced:
// the client never follows redirects.
func WithHTTPClient(c *http.Client) Option { return func(cl *Client) { cl.http = c } }

// WithTimeout bounds each request, from dialling to the last byte of the
// body. Default [DefaultTimeout]. It must be positive: [NewClient] refuses
// a zero or negative timeout rather than let a call hang for as long as the
// server likes.
func WithTimeout(d time.Duration) Option { return func(cl *Client) { cl.timeout = d } }

// WithMaxBodyBytes bounds how much of a response body is read. A longer body
// is not parsed, and the answer is classified by its HTTP status. Default
// [DefaultMaxBodyBytes].
func WithMaxBodyBytes(n int64) Option { return func(cl *Client) { cl.maxBody = n } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(cl *Client) { cl.userAgent = ua } }

// NewClient returns a client for the API at baseURL (for example
// [DefaultBaseURL], or a fake's URL) that authenticates with tokens.
func NewClient(baseURL string, tokens TokenSource, opts ...Option) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("coze: base URL %q must be an absolute http or https URL", baseURL)
	}
	if tokens == nil {
		return nil, errors.New("coze: no token source")
	}
	c := &Client{
		base:      base,
		endpoint:  base.String() + "/v1/conversations/",
		tokens:    tokens,
		timeout:   DefaultTimeout,
		maxBody:   DefaultMaxBodyBytes,
		userAgent: "coze-eraser",
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("coze: timeout %v: must be positive (default %v)", c.timeout, DefaultTimeout)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: NewTransport()}
	}
	// Never follow a redirect: Go would turn the DELETE into a GET and carry
	// the token along, and a success code from the redirect's target would
	// be taken for a deletion. A 3xx is classified by its status (unknown).
	client := *c.http
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &client
	return c, nil
}

// NewTransport returns the HTTP transport a [Client] uses by default: the
// standard one with enough idle connections per host for a worker's
// concurrency, so that connections are reused rather than opened per call.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // net/http's own value; this program never replaces it
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	return t
}

// WithTokens returns a client like c that authenticates with tokens
// instead: the same API and HTTP connections, another identity, such as an
// end user's session of a [JWTApp] ([JWTApp.Session]). It is cheap enough
// to call once per request.
func (c *Client) WithTokens(tokens TokenSource) *Client {
	if tokens == nil {
		panic("coze: WithTokens(nil)")
	}
	clone := *c
	clone.tokens = tokens
	return &clone
}

// BaseURL returns the API base URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// Result is the outcome of one API call: the answer's class and everything
// worth recording about it. Every call yields a Result, including a call that
// got no answer at all.
type Result struct {
	Class Class
	// HTTPStatus is the response status, 0 when no response arrived.
	HTTPStatus int
	// Code and Msg are the body's code and msg; HasCode is false when the body
	// carried no JSON code (a network error, an HTML page, an oversized body).
	Code    int64
	HasCode bool
	Msg     string
	// LogID identifies the request for Coze support: body detail.logid, else
	// the X-Tt-Logid header.
	LogID string
	// RetryAfter is the server's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Duration is the wall time of the call.
	Duration time.Duration
	// Err is the transport or body problem when there is one.
	Err error
}

// Error is returned for every answer other than [ClassDeleted].
type Error struct {
	ConversationID string
	// Op names a call other than a delete ("list conversations of bot
	// 123"); empty for a delete.
	Op     string
	Result Result
}

// Error describes the answer without anything secret: the URL path, the
// class, the code, msg, HTTP status and log id.
func (e *Error) Error() string {
	r := e.Result
	var b strings.Builder
	if e.Op != "" {
		fmt.Fprintf(&b, "coze: %s: %s", e.Op, r.Class)
	} else {
		fmt.Fprintf(&b, "coze: delete conversation %s: %s", e.ConversationID, r.Class)
	}
	if r.HasCode {
		fmt.Fprintf(&b, ": code %d", r.Code)
		if r.Msg != "" {
			fmt.Fprintf(&b, " %q", r.Msg)
		}
	}
	if r.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d", r.HTTPStatus)
		if r.LogID != "" {
			fmt.Fprintf(&b, ", logid %s", r.LogID)
		}
		b.WriteString(")")
	}
	if r.Err != nil {
		fmt.Fprintf(&b, ": %v", r.Err)
	}
	return b.String()
}

// DeleteConversation sends DELETE {base}/v1/conversations/{id}. The result is
// always filled in; the error is an [*Error] whenever the class is not
// [ClassDeleted].
//
// The caller is expected to pass a validated id (tasks.ValidateID); the id is
// path-escaped regardless.
func (c *Client) DeleteConversation(ctx context.Context, conversationID string) (Result, error) {
	start := time.Now()
	res := c.deleteConversation(ctx, conversationID)
	res.Duration = time.Since(start)
	if res.Class == ClassDeleted {
		return res, nil
	}
	return res, &Error{ConversationID: conversationID, Result: res}
}

func (c *Client) deleteConversation(ctx context.Context, conversationID string) Result {
	// PathEscape keeps the id one path segment whatever it holds; JoinPath
	// would clean "a/../b" into another path.
	res, _ := c.send(ctx, http.MethodDelete, c.endpoint+url.PathEscape(conversationID), c.maxBody)
	return res
}

// send makes one call with the client's token and returns its classified
// answer and its body (read up to maxBody bytes, the token masked in it).
func (c *Client) send(ctx context.Context, method, target string, maxBody int64) (Result, []byte) {
	token, err := tokenFor(ctx, c.tokens)
	if err != nil {
		return Result{Class: tokenErrorClass(err), Err: err}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return Result{Class: ClassPermanent, Err: err}, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		return Result{Class: ClassTransient, Err: scrubURLError(err)}, nil
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	redactToken(resp.Header, &body, token)
	res := Parse(resp.StatusCode, resp.Header, body, readErr, maxBody)
	if res.Class == ClassAuth {
		if rs, ok := c.tokens.(RefusableTokenSource); ok {
			rs.Refused(token) // a minted token the API no longer takes: mint anew next time
		}
	}
	return res, body
}

// tokenFor asks tokens for a token, within ctx when the source can wait
// on one (a JWT app minting).
func tokenFor(ctx context.Context, tokens TokenSource) (string, error) {
	if cs, ok := tokens.(ContextTokenSource); ok {
		return cs.TokenContext(ctx)
	}
	return tokens.Token()
}

// tokenErrorClass is the class of a call whose token could not be had: the
// source's own (a token endpoint that answered 500 is transient, not an
// auth failure that pauses the worker); transient when the caller stopped
// waiting (a task's deadline, a shutdown), which says nothing of the token;
// else auth.
func tokenErrorClass(err error) Class {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ClassTransient
	}
	var classed interface{ Class() Class }
	if errors.As(err, &classed) {
		return classed.Class()
	}
	return ClassAuth
}

// redactToken removes the token from what a server sent back, should a
// broken proxy echo the request: the msg, the body excerpt and the log id
// end up in logs and in the ledger.
func redactToken(header http.Header, body *[]byte, token string) {
	const mask = "[REDACTED]"
	if bytes.Contains(*body, []byte(token)) {
		*body = bytes.ReplaceAll(*body, []byte(token), []byte(mask))
	}
	if v := header.Get(LogIDHeader); strings.Contains(v, token) {
		header.Set(LogIDHeader, strings.ReplaceAll(v, token, mask))
	}
}

// responseBody is the part of the API's JSON answer the client reads.
type responseBody struct {
	Code   *int64 `json:"code"`
	Msg    string `json:"msg"`
	Detail struct {
		LogID string `json:"logid"`
	} `json:"detail"`
}

// Parse classifies a response from its status, headers and (possibly cut)
// body. readErr is the error that ended reading the body, if any; maxBody is
// the read limit, and a body longer than it is not parsed. It is exported for
// fuzzing and for callers that make the request themselves.
func Parse(status int, header http.Header, body []byte, readErr error, maxBody int64) Result {
	res := Result{
		HTTPStatus: status,
		LogID:      header.Get(LogIDHeader),
		RetryAfter: parseRetryAfter(header.Get("Retry-After"), time.Now()),
	}
	if readErr != nil {
		// The answer was cut: whatever the status said, the outcome is unknown
		// to us, and the call is worth repeating.
		res.Class = ClassTransient
		res.Err = fmt.Errorf("reading the response body: %w", scrubURLError(readErr))
		return res
	}
	if int64(len(body)) > maxBody {
		res.Class = ClassifyStatus(status)
		res.Err = fmt.Errorf("response body longer than %d bytes, not parsed", maxBody)
		return res
	}
	var parsed responseBody
	if !parseSuccess(body, &parsed) {
		if err := json.Unmarshal(body, &parsed); err != nil || parsed.Code == nil {
			res.Class = ClassifyStatus(status)
			res.Err = fmt.Errorf("response body is not a JSON answer with a code: %s", describeBody(body))
			return res
		}
	}
	res.Code, res.HasCode, res.Msg = *parsed.Code, true, parsed.Msg
	if parsed.Detail.LogID != "" {
		res.LogID = parsed.Detail.LogID
	}
	res.Class = ClassifyCode(res.Code, status)
	return res
}

// successCode is the code of the documented success body, for
// parseSuccess to point at (read, never written).
var successCode int64

// parseSuccess fills parsed from the exact body of a success the API
// documents, {"code":0,"msg":"","detail":{"logid":"…"}}, without
// reflection: a worker parses one per deletion. It reports false, leaving
// parsed alone, for any other body (another spelling, an escape in the log
// id), which is left to encoding/json.
func parseSuccess(body []byte, parsed *responseBody) bool {
	rest, ok := bytes.CutPrefix(body, []byte(`{"code":0,"msg":"","detail":{"logid":"`))
	if !ok {
		return false
	}
	id, ok := bytes.CutSuffix(rest, []byte(`"}}`))
	if !ok || !plainJSONString(id) {
		return false
	}
	parsed.Code, parsed.Msg, parsed.Detail.LogID = &successCode, "", string(id)
	return true
}

// plainJSONString reports whether b, between quotes, is a JSON string that
// decodes to itself: valid UTF-8 with no quote, backslash or control byte.
func plainJSONString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return min(at.Sub(now), 24*time.Hour)
	}
	return 0
}

// describeBody summarises a body that could not be parsed, for the error
// message: its length and the first bytes, printable only.
func describeBody(body []byte) string {
	if len(body) == 0 {
		return "empty"
	}
	const show = 40
	head := body
	if len(head) > show {
		head = head[:show]
	}
	head = bytes.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, head)
	return fmt.Sprintf("%d bytes starting %q", len(body), head)
}

// scrubURLError keeps a transport error's cause and the URL (which holds no
// secret) and nothing else; it exists so that an error from a custom
// transport cannot carry request headers into a log line.
func scrubURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("%s %s: %w", urlErr.Op, urlErr.URL, urlErr.Err)
	}
	return err
}
