package coze

import (
	"bytes"
	"container/list"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// Defaults and bounds of a [JWTApp].
const (
	// DefaultTokenTTL is the access-token lifetime asked for (Coze's own
	// default, 15 minutes).
	DefaultTokenTTL = 15 * time.Minute
	// MaxTokenTTL is the longest lifetime the token endpoint grants.
	MaxTokenTTL = 86399 * time.Second
	// DefaultMaxSessions bounds the session tokens a [JWTApp] keeps. A worker
	// serving more sessions at once mints again for the ones it evicted.
	DefaultMaxSessions = 10000
	// TokenPath is the token endpoint, relative to the API base URL.
	TokenPath = "/api/permission/oauth2/token"
	// JWTBearerGrant is the grant_type of the token request.
	JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // a grant type name, not a credential
)

const (
	// jwtLifetime is the life of the signed JWT itself: it is used once,
	// within the mint's timeout, so minutes leave room for clock skew only.
	jwtLifetime = 5 * time.Minute
	// renewMarginCap caps the renewal margin (a tenth of the lifetime): a
	// 24-hour token is renewed 30 s before it expires, as coze-go does.
	renewMarginCap = 30 * time.Second
	// renewRetry spaces the attempts to renew a token that is still valid:
	// while the endpoint fails, callers keep the old token rather than
	// calling the endpoint once each.
	renewRetry = time.Second
	// maxKeyFileBytes bounds what is read from the key file: a 4096-bit key
	// is about 3 KB; the bound keeps a wrong path from filling memory.
	maxKeyFileBytes = 64 << 10
)

// ContextTokenSource is a [TokenSource] whose token may take a request to
// obtain, so the caller can bound or cancel the wait.
type ContextTokenSource interface {
	TokenSource
	TokenContext(ctx context.Context) (string, error)
}

// RefusableTokenSource is a [TokenSource] that can be told the API refused
// a token it gave (an auth answer), so that it stops handing it out: a
// minted token can be revoked before it expires.
type RefusableTokenSource interface {
	TokenSource
	Refused(token string)
}

// JWTConfig describes an OAuth JWT service application.
type JWTConfig struct {
	// BaseURL is the API base, for example [DefaultBaseURL]; the token
	// endpoint is BaseURL + [TokenPath].
	BaseURL string
	// AppID is the OAuth app's id: the JWT's iss.
	AppID string
	// KeyID is the public key's fingerprint shown on the app's page: the
	// JWT header's kid.
	KeyID string
	// PrivateKeyFile is the path of the RSA private key, PEM in PKCS#8 or
	// PKCS#1. It is read again when it changes.
	PrivateKeyFile string
	// Audience is the JWT's aud. Default: the host of BaseURL (with its
	// port, if it has one).
	Audience string
	// TokenTTL is the access-token lifetime asked for, in whole seconds from
	// 1 s to [MaxTokenTTL]. Default [DefaultTokenTTL].
	TokenTTL time.Duration
	// HTTPClient makes the token requests. Default: one with
	// [DefaultTimeout]. Its redirect policy is replaced: redirects are never
	// followed.
	HTTPClient *http.Client
	// MaxSessions bounds the session tokens kept in memory; the least
	// recently used is dropped first. Default [DefaultMaxSessions].
	MaxSessions int
	// Now is the clock, for tests. Default [time.Now].
	Now func() time.Time
}

// String describes the configuration; it holds no secret (the key is a
// path), and the HTTP client and clock are left out.
func (c JWTConfig) String() string {
	return fmt.Sprintf("coze.JWTConfig{BaseURL: %q, AppID: %q, KeyID: %q, PrivateKeyFile: %q, Audience: %q, TokenTTL: %v, MaxSessions: %d}",
		c.BaseURL, c.AppID, c.KeyID, c.PrivateKeyFile, c.Audience, c.TokenTTL, c.MaxSessions)
}

// GoString is String, so that %#v prints no more.
func (c JWTConfig) GoString() string { return c.String() }

// JWTOption configures a [JWTApp].
type JWTOption func(*JWTApp)

// WithMintTimeout bounds one mint: the key file, the signature and the
// request. Default [DefaultTimeout]. A mint is shared by every caller
// waiting for the same session, so it is not bound to any caller's context.
func WithMintTimeout(d time.Duration) JWTOption { return func(a *JWTApp) { a.mintTimeout = d } }

// OnKeyReadableByOthers sets what happens when the private key file can be
// read by its group or others, as [OnReadableByOthers] does for a token
// file. Default: a warning on the default logger.
func OnKeyReadableByOthers(fn func(path string, perm fs.FileMode)) JWTOption {
	return func(a *JWTApp) { a.key.onReadable = fn }
}

// JWTApp mints access tokens for an OAuth JWT service application and keeps
// them, per session, until shortly before they expire. It is safe for
// concurrent use. Tokens live in memory only.
type JWTApp struct {
	cfg         JWTConfig
	endpoint    string
	http        *http.Client
	now         func() time.Time
	mintTimeout time.Duration
	key         *secretFile[*rsa.PrivateKey]
	flights     singleflight.Group
	mints       atomic.Int64

	mu       sync.Mutex
	lru      *list.List // of *sessionToken, most recently used first
	sessions map[string]*list.Element
}

// sessionToken is the cached access token of one session.
type sessionToken struct {
	session   string
	token     string
	expiresAt time.Time
	renewAt   time.Time
	retryAt   time.Time // after a failed renewal: no new attempt before
}

// NewJWTApp checks cfg, reads the private key once (so that a wrong file is
// reported at start) and returns the app. Errors name the field or file
// and what is wrong, never the key.
func NewJWTApp(cfg JWTConfig, opts ...JWTOption) (*JWTApp, error) {
	base, err := checkJWTConfig(&cfg)
	if err != nil {
		return nil, err
	}
	a := &JWTApp{
		cfg:         cfg,
		endpoint:    base.String() + TokenPath,
		now:         cfg.Now,
		mintTimeout: DefaultTimeout,
		key: &secretFile[*rsa.PrivateKey]{path: cfg.PrivateKeyFile, name: "coze: private key file",
			holds: "a PEM private key", maxBytes: maxKeyFileBytes, parse: parseRSAKey, onReadable: warnReadableKey},
		lru:      list.New(),
		sessions: make(map[string]*list.Element),
	}
	for _, opt := range opts {
		opt(a)
	}
	if a.mintTimeout <= 0 {
		return nil, fmt.Errorf("coze: mint timeout %v: must be positive (default %v)", a.mintTimeout, DefaultTimeout)
	}
	a.http = noRedirects(cfg.HTTPClient)
	if _, err := a.key.load(); err != nil {
		return nil, err
	}
	return a, nil
}

// checkJWTConfig validates cfg and fills in its defaults; it returns the
// parsed base URL.
func checkJWTConfig(cfg *JWTConfig) (*url.URL, error) {
	if err := CheckBaseURL(cfg.BaseURL); err != nil {
		// Credentials in the URL would end up in errors and logs: refused.
		return nil, fmt.Errorf("coze: JWT app: BaseURL: %w", err)
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("coze: JWT app: BaseURL: %w", err) // CheckBaseURL parsed it
	}
	if cfg.Audience == "" {
		cfg.Audience = base.Host
	}
	for _, f := range []struct{ name, value string }{
		{"AppID", cfg.AppID}, {"KeyID", cfg.KeyID}, {"Audience", cfg.Audience},
	} {
		if err := CheckToken(f.value); err != nil {
			return nil, fmt.Errorf("coze: JWT app: %s %q: must be non-empty printable ASCII without spaces", f.name, f.value)
		}
	}
	if cfg.PrivateKeyFile == "" {
		return nil, errors.New("coze: JWT app: PrivateKeyFile: required (the path of the app's private_key.pem)")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.TokenTTL < time.Second || cfg.TokenTTL > MaxTokenTTL || cfg.TokenTTL%time.Second != 0 {
		return nil, fmt.Errorf("coze: JWT app: TokenTTL %v: must be whole seconds from 1s to %v (default %v)",
			cfg.TokenTTL, MaxTokenTTL, DefaultTokenTTL)
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxSessions < 0 {
		return nil, fmt.Errorf("coze: JWT app: MaxSessions %d: must be positive (default %d)", cfg.MaxSessions, DefaultMaxSessions)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return base, nil
}

// noRedirects returns a copy of c (or of a default client) that never
// follows a redirect: Go would resend the request, JWT included, to
// wherever the redirect points.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Transport: NewTransport(), Timeout: DefaultTimeout}
	}
	client := *c
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client
}

// String describes the app without its key or tokens.
func (a *JWTApp) String() string {
	return fmt.Sprintf("coze.JWTApp{AppID: %q, KeyID: %q, PrivateKeyFile: %q, Endpoint: %q}",
		a.cfg.AppID, a.cfg.KeyID, a.cfg.PrivateKeyFile, a.endpoint)
}

// GoString is String, so that %#v prints no more.
func (a *JWTApp) GoString() string { return a.String() }

// Config returns the configuration, defaults filled in.
func (a *JWTApp) Config() JWTConfig { return a.cfg }

// Mints returns how many access tokens the app has obtained.
func (a *JWTApp) Mints() int64 { return a.mints.Load() }

// Token returns an access token for session ("" for none: the token then
// acts as the app itself), minting one when none is cached or the cached
// one is about to expire. A cached token due for renewal (less than a
// tenth of its lifetime, at most 30 s, left) is still returned, for the
// first half of that time, while a new one is minted in the background.
// Callers asking for the same session at once share one mint, and share
// its failure; ctx bounds this caller's wait only.
func (a *JWTApp) Token(ctx context.Context, session string) (string, error) {
	tok, state := a.cached(session)
	switch state {
	case tokenFresh:
		return tok, nil
	case tokenRenewing:
		// Due for renewal and still valid: renew in the background and
		// go on with this one, so that no call waits for a mint that a
		// token in hand makes unnecessary. (DoChan's channel is buffered:
		// nobody need read it.)
		a.flights.DoChan(session, func() (any, error) { return a.mintOnce(session) })
		return tok, nil
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("coze: waiting for an access token: %w", err)
	}
	ch := a.flights.DoChan(session, func() (any, error) { return a.mintOnce(session) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		tok, _ := r.Val.(string) // mintOnce returns a string
		return tok, nil
	case <-ctx.Done():
		return "", fmt.Errorf("coze: waiting for an access token: %w", ctx.Err())
	}
}

// Session returns a token source bound to session, for a [Client]. It also
// implements [ContextTokenSource].
func (a *JWTApp) Session(session string) TokenSource {
	return &sessionSource{app: a, session: session}
}

// sessionSource is the [TokenSource] of one session of a [JWTApp].
type sessionSource struct {
	app     *JWTApp
	session string
}

// Token waits at most the app's mint timeout: a mint is bounded by it.
func (s *sessionSource) Token() (string, error) {
	return s.app.Token(context.Background(), s.session)
}

// TokenContext waits at most until ctx ends.
func (s *sessionSource) TokenContext(ctx context.Context) (string, error) {
	return s.app.Token(ctx, s.session)
}

// Refused drops the session's cached token if it is still token, so that
// the next call mints a new one.
func (s *sessionSource) Refused(token string) { s.app.Refused(s.session, token) }

// String leaves the session name out: it is personal data.
func (s *sessionSource) String() string {
	if s.session == "" {
		return fmt.Sprintf("coze.JWTApp{AppID: %q}.Session(none)", s.app.cfg.AppID)
	}
	return fmt.Sprintf("coze.JWTApp{AppID: %q}.Session([REDACTED])", s.app.cfg.AppID)
}

// GoString is String, so that %#v prints no more.
func (s *sessionSource) GoString() string { return s.String() }

// Refused drops session's cached token if it is still token (the API
// answered it with an auth error: revoked before its expiry), so that the
// next call mints a new one. A token minted since is kept.
func (a *JWTApp) Refused(session, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.sessions[session]
	if !ok || el.Value.(*sessionToken).token != token { //nolint:forcetypeassert // the list holds nothing else
		return
	}
	a.lru.Remove(el)
	delete(a.sessions, session)
}

// tokenState says what a session's cached token is good for.
type tokenState int

const (
	// tokenMissing: no token, or an expired one; a caller must wait for
	// a mint.
	tokenMissing tokenState = iota
	// tokenFresh: before its renewal point, or renewals failed lately
	// and the next attempt is not due yet.
	tokenFresh
	// tokenRenewing: past its renewal point, in the first half of the
	// renewal window: use it and renew in the background.
	tokenRenewing
)

// cached returns the session's token and what it is good for.
func (a *JWTApp) cached(session string) (string, tokenState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.sessions[session]
	if !ok {
		return "", tokenMissing
	}
	st := el.Value.(*sessionToken) //nolint:forcetypeassert // the list holds nothing else
	now := a.now()
	if !now.Before(st.expiresAt) {
		return "", tokenMissing
	}
	a.lru.MoveToFront(el)
	if now.Before(st.renewAt) || now.Before(st.retryAt) {
		return st.token, tokenFresh
	}
	// In the first half of the renewal window the token is still used
	// while a new one is minted; in the second, a call could reach the
	// API after it expired, so callers wait for the new one.
	if now.Before(st.expiresAt.Add(-st.expiresAt.Sub(st.renewAt) / 2)) {
		return st.token, tokenRenewing
	}
	return "", tokenMissing
}

// mintOnce is the body of a flight. It looks at the cache again, since a
// flight that ended between the caller's look and this one has already
// minted; and it falls back to the still-valid token when a renewal fails.
func (a *JWTApp) mintOnce(session string) (string, error) {
	if tok, state := a.cached(session); state == tokenFresh {
		return tok, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.mintTimeout)
	defer cancel()
	tok, expiresAt, err := a.mint(ctx, session)
	if err != nil {
		if old, ok := a.keepUntilExpiry(session); ok {
			return old, nil
		}
		return "", err
	}
	a.mints.Add(1)
	a.store(session, tok, expiresAt)
	return tok, nil
}

// keepUntilExpiry returns the session's token if it has not expired yet,
// and puts off the next renewal attempt by [renewRetry].
func (a *JWTApp) keepUntilExpiry(session string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.sessions[session]
	if !ok {
		return "", false
	}
	st := el.Value.(*sessionToken) //nolint:forcetypeassert // the list holds nothing else
	now := a.now()
	if !now.Before(st.expiresAt) {
		a.lru.Remove(el)
		delete(a.sessions, session)
		return "", false
	}
	st.retryAt = now.Add(renewRetry)
	return st.token, true
}

// store caches a fresh token, dropping the least recently used session
// when the bound is reached.
func (a *JWTApp) store(session, tok string, expiresAt time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	margin := min(expiresAt.Sub(now)/10, renewMarginCap)
	st := &sessionToken{session: session, token: tok, expiresAt: expiresAt, renewAt: expiresAt.Add(-margin)}
	if el, ok := a.sessions[session]; ok {
		el.Value = st
		a.lru.MoveToFront(el)
		return
	}
	a.sessions[session] = a.lru.PushFront(st)
	for a.lru.Len() > a.cfg.MaxSessions {
		oldest := a.lru.Back()
		a.lru.Remove(oldest)
		delete(a.sessions, oldest.Value.(*sessionToken).session) //nolint:forcetypeassert // the list holds nothing else
	}
}

// mint signs a JWT and exchanges it for an access token.
func (a *JWTApp) mint(ctx context.Context, session string) (string, time.Time, error) {
	key, err := a.key.load()
	if err != nil {
		return "", time.Time{}, err
	}
	signed, err := a.sign(key, session)
	if err != nil {
		return "", time.Time{}, err
	}
	body, err := json.Marshal(struct {
		GrantType       string `json:"grant_type"`
		DurationSeconds int64  `json:"duration_seconds"`
	}{JWTBearerGrant, int64(a.cfg.TokenTTL / time.Second)})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("coze: token request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("coze: token request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+signed)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coze-eraser")
	resp, err := a.http.Do(req)
	if err != nil {
		return "", time.Time{}, &TokenError{Err: redactErr(scrubURLError(err), signed)}
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, DefaultMaxBodyBytes+1))
	redactToken(resp.Header, &raw, signed)
	return parseTokenAnswer(resp.StatusCode, resp.Header, raw, redactErr(readErr, signed), a.now())
}

// sign returns the JWT for session, signed with key.
func (a *JWTApp) sign(key *rsa.PrivateKey, session string) (string, error) {
	var id [32]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+)
	now := a.now()
	claims := jwt.MapClaims{
		"iss": a.cfg.AppID,
		"aud": a.cfg.Audience, // a plain string, as the Coze SDKs send it
		"iat": now.Unix(),
		"exp": now.Add(jwtLifetime).Unix(),
		"jti": hex.EncodeToString(id[:]),
	}
	if session != "" {
		claims["session_name"] = session
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = a.cfg.KeyID
	signed, err := tok.SignedString(key)
	if err != nil {
		// The error comes from crypto/rsa (a key too small, say) and holds
		// no key material.
		return "", fmt.Errorf("coze: private key file %s: cannot sign with it: %w", a.cfg.PrivateKeyFile, err)
	}
	return signed, nil
}

// redactErr returns err with secret replaced, should a transport have put
// the request into its error.
func redactErr(err error, secret string) error {
	if err == nil || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[REDACTED]"))
}

// tokenAnswer is the token endpoint's JSON answer, success or error.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"` // absolute Unix time
	ErrorCode    string `json:"error_code"`
	ErrorMessage string `json:"error_message"`
}

// parseTokenAnswer reads the token endpoint's answer. The access token
// appears in nothing it returns but the token itself.
func parseTokenAnswer(status int, header http.Header, body []byte, readErr error, now time.Time) (string, time.Time, error) {
	te := &TokenError{Status: status, LogID: header.Get(LogIDHeader)}
	ok := status >= 200 && status < 300
	if readErr != nil {
		te.Err = fmt.Errorf("reading the response body: %w", scrubURLError(readErr))
		return "", time.Time{}, te
	}
	var ans tokenAnswer
	if len(body) > DefaultMaxBodyBytes || json.Unmarshal(body, &ans) != nil {
		te.Err = errors.New("response body is not a JSON answer")
		if !ok {
			// Only an error answer is quoted: a success might hold a token.
			te.Err = fmt.Errorf("response body is not a JSON answer: %s", describeBody(body))
		}
		return "", time.Time{}, te
	}
	if !ok || ans.ErrorCode != "" {
		te.Code, te.Message = ans.ErrorCode, ans.ErrorMessage
		return "", time.Time{}, te
	}
	if err := CheckToken(ans.AccessToken); err != nil {
		te.Err = fmt.Errorf("access_token: %w", err)
		return "", time.Time{}, te
	}
	expiresAt := time.Unix(ans.ExpiresIn, 0)
	if !expiresAt.After(now) {
		te.Err = fmt.Errorf("expires_in %d is not after the local time %d: it must be an absolute Unix time; check the clock",
			ans.ExpiresIn, now.Unix())
		return "", time.Time{}, te
	}
	return ans.AccessToken, expiresAt, nil
}

// TokenError is a failed request to the token endpoint: an error answer
// (Code and Message from its error_code and error_message), an answer that
// could not be used, or no answer at all (Status 0). It never holds the
// JWT or a token.
type TokenError struct {
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Code and Message are the answer's error_code and error_message.
	Code    string
	Message string
	// LogID is the X-Tt-Logid header, for Coze support.
	LogID string
	// Err is the transport or body problem when there is one.
	Err error
}

// tokenErrorHints says what to do about each documented error_code.
var tokenErrorHints = map[string]string{
	"invalid_request":        "a parameter of the token request is wrong",
	"invalid_client":         "the JWT was refused: check the app id, key id, private key file, audience and the clock",
	"access_deny":            "the app is deactivated: its owner must enable it",
	"unsupported_grant_type": "the grant type was refused: a bug in coze-eraser, please report it",
	"internal_error":         "a server error: try again later",
}

// Error describes the failure: class, error_code, error_message, HTTP status
// and log id, and what to do.
func (e *TokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "coze: token endpoint: %s", e.Class())
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " %q", e.Message)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.LogID != "" {
			fmt.Fprintf(&b, ", logid %s", e.LogID)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if hint, ok := tokenErrorHints[e.Code]; ok {
		fmt.Fprintf(&b, "; %s", hint)
	}
	return b.String()
}

// Unwrap returns the transport or body problem, if any.
func (e *TokenError) Unwrap() error { return e.Err }

// Class tells the caller what to do: stop until the configuration or the
// app is fixed ([ClassAuth]), retry later ([ClassTransient],
// [ClassRateLimited]), or give up ([ClassPermanent]).
func (e *TokenError) Class() Class {
	switch e.Code {
	case "invalid_client", "access_deny", "invalid_request":
		return ClassAuth
	case "unsupported_grant_type":
		return ClassPermanent
	case "internal_error":
		return ClassTransient
	}
	switch {
	case e.Status == 0:
		return ClassTransient // no answer: a network error
	case e.Status == http.StatusTooManyRequests:
		return ClassRateLimited
	case e.Status == http.StatusRequestTimeout || e.Status >= 500:
		return ClassTransient
	case e.Status >= 300:
		// Any other refusal (an unknown code, a wrong base URL's 404), or a
		// redirect (never followed: http:// sent to https://, say), will
		// not pass until the configuration is fixed.
		return ClassAuth
	case e.Err != nil:
		// A success answer that cannot be used (a wrong base URL's HTML
		// page, no token, an expiry not after the local clock): the same.
		return ClassAuth
	}
	return ClassUnknown
}

// warnReadableKey is the default of [OnKeyReadableByOthers].
func warnReadableKey(path string, perm fs.FileMode) {
	slog.Default().Warn("the private key file can be read by other users: make it 0600 or 0400 (Kubernetes: defaultMode 0400)",
		"path", path, "mode", fmt.Sprintf("%04o", perm))
}

// parseRSAKey finds the first PEM private key block in raw and parses it.
// Its errors say what the file holds instead, never the bytes.
func parseRSAKey(raw []byte) (*rsa.PrivateKey, error) {
	var block *pem.Block
	var other string
	for rest := raw; ; {
		block, rest = pem.Decode(rest)
		if block == nil || strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
		other = block.Type
	}
	switch {
	case block == nil && other != "":
		return nil, fmt.Errorf("holds a %q PEM block but no private key; give the private key Coze had the browser download", other)
	case block == nil && len(bytes.TrimSpace(raw)) == 0:
		return nil, errors.New("empty")
	case block == nil:
		return nil, errors.New("not PEM: no \"-----BEGIN PRIVATE KEY-----\" or \"-----BEGIN RSA PRIVATE KEY-----\" block")
	}
	if _, encrypted := block.Headers["DEK-Info"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("the key is encrypted: give it unencrypted (openssl pkey -in encrypted.pem -out key.pem)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			if key, err8 := parsePKCS8RSA(block.Bytes); err8 == nil {
				return key, nil // PKCS#8 under a PKCS#1 label
			}
			// x509's own error is a page of ASN.1 detail: no help here.
			return nil, errors.New("malformed PKCS#1 RSA key: the data inside the PEM block does not parse")
		}
		return key, nil
	case "PRIVATE KEY":
		key, err := parsePKCS8RSA(block.Bytes)
		if err != nil {
			if key, err1 := x509.ParsePKCS1PrivateKey(block.Bytes); err1 == nil {
				return key, nil // PKCS#1 under a PKCS#8 label
			}
		}
		return key, err
	case "EC PRIVATE KEY":
		return nil, errors.New("holds an EC key; Coze signs with RS256 and needs an RSA key")
	}
	return nil, fmt.Errorf("holds a %q block; give a PKCS#8 (\"PRIVATE KEY\") or PKCS#1 (\"RSA PRIVATE KEY\") RSA key", block.Type)
}

// parsePKCS8RSA parses a PKCS#8 key and refuses any but an RSA one.
func parsePKCS8RSA(der []byte) (*rsa.PrivateKey, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("malformed PKCS#8 key: the data inside the PEM block does not parse")
	}
	switch key := parsed.(type) {
	case *rsa.PrivateKey:
		return key, nil
	case *ecdsa.PrivateKey:
		return nil, errors.New("holds an ECDSA key; Coze signs with RS256 and needs an RSA key")
	case ed25519.PrivateKey:
		return nil, errors.New("holds an Ed25519 key; Coze signs with RS256 and needs an RSA key")
	default:
		return nil, fmt.Errorf("holds a %T key; Coze signs with RS256 and needs an RSA key", parsed)
	}
}
