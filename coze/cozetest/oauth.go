package cozetest

// This file is the fake's side of OAuth JWT service applications, as
// ../shared/coze-api/oauth-jwt.md describes the real API: the token endpoint,
// access tokens bound to an (app, session) identity, and conversation
// ownership, so that only a conversation's creator may delete it.

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenPath is the token endpoint's path. The endpoint has no latency,
// faults or rate limit, and its requests are not in [Fake.Calls] or
// [Fake.Counts]: see [Fake.Mints] and [Fake.TokenRejections].
const TokenPath = "/api/permission/oauth2/token"

// JWTBearerGrant is the only grant_type the token endpoint accepts.
const JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // a grant type name, not a credential

// Token lifetimes the endpoint allows, as oauth-jwt.md says.
const (
	// DefaultTokenDuration is the lifetime when duration_seconds is absent
	// (or 0).
	DefaultTokenDuration = 900 * time.Second
	// MaxTokenDuration is the largest duration_seconds accepted.
	MaxTokenDuration = 86399 * time.Second
)

// ClockSkew is how far a JWT's exp may lie in the past and its iat in the
// future before the token endpoint rejects it: the signer's clock and the
// server's are never quite equal.
const ClockSkew = 5 * time.Second

// The token endpoint's error_code values (oauth-jwt.md, "Errors of the token
// endpoint").
const (
	CodeInvalidRequest       = "invalid_request"        // a wrong parameter: HTTP 400
	CodeInvalidClient        = "invalid_client"         // the JWT is not accepted: HTTP 401
	CodeUnsupportedGrantType = "unsupported_grant_type" // wrong grant_type: HTTP 400
	CodeAccessDeny           = "access_deny"            // the app is deactivated: HTTP 403
	CodeInternalError        = "internal_error"         // the server failed: HTTP 500
)

// StaticTokenApp is the App of the [Identity] every static bearer token (a
// personal access token or service token, see [WithToken]) acts as. Give it
// to [Fake.SetOwner] for conversations a static token created.
const StaticTokenApp = "pat"

// NotCreatorCode is the code a DELETE answers (HTTP 200) when the caller is
// not the conversation's creator: 4200, "resource not found (wrong id, or not
// created by this account)" in NOTES.md's table of the public error codes.
// The delete page says only the creator may delete but not which code others
// get; of the documented codes 4200 is the one whose meaning names the case
// ("not created by this account"), and 4002 "or the account has no permission
// on it" is the fake's already-deleted answer, so 4200 keeps the two apart in
// tests while both classify as not found. 4101 ("token lacks permission")
// would be wrong: it classifies as auth and would pause the whole identity for
// one foreign id.
const NotCreatorCode = 4200

// Identity is who a call to the conversation API acts as: the OAuth app and
// the session_name its access token was minted for, or [StaticTokenApp] and
// an empty session for a static token.
type Identity struct {
	App     string
	Session string
}

type jwtApp struct {
	keys     map[string]*rsa.PublicKey // by kid, the public key's fingerprint
	inactive bool
}

type accessToken struct {
	who     Identity
	expires time.Time
}

// oauthState is the fake's OAuth side; it is guarded by Fake.mu.
type oauthState struct {
	apps       map[string]*jwtApp
	tokens     map[string]accessToken
	jtis       map[string]time.Time // a JWT id seen, until its exp: a JWT is used once
	owners     map[string]Identity  // conversation id → creator
	mints      map[Identity]int
	rejections map[string]int // by error_code
	audience   string
	lifetime   time.Duration
	now        func() time.Time
	logSeq     int64
	sinceSweep int
}

func newOAuthState() oauthState {
	return oauthState{
		apps:       map[string]*jwtApp{},
		tokens:     map[string]accessToken{},
		jtis:       map[string]time.Time{},
		owners:     map[string]Identity{},
		mints:      map[Identity]int{},
		rejections: map[string]int{},
		now:        time.Now,
	}
}

// WithJWTApp registers an active OAuth service app whose JWTs the token
// endpoint accepts, with its public keys by key id (kid).
func WithJWTApp(appID string, keys map[string]*rsa.PublicKey) Option {
	return func(f *Fake) {
		for kid, pub := range keys {
			f.AddJWTKey(appID, kid, pub)
		}
	}
}

// WithAudience sets the one aud a JWT must carry. Without it the fake accepts
// the host its request was addressed to, with or without the port (for
// example "127.0.0.1:40123" or "127.0.0.1"), which is what a client derives
// from the fake's URL by default; tests of a client that sends the real
// host set WithAudience("api.coze.cn").
func WithAudience(aud string) Option { return func(f *Fake) { f.oauth.audience = aud } }

// WithTokenLifetime caps the lifetime of the access tokens the fake issues;
// see [Fake.SetTokenLifetime].
func WithTokenLifetime(d time.Duration) Option { return func(f *Fake) { f.oauth.lifetime = d } }

// WithClock sets the clock the token endpoint checks exp and iat against and
// access tokens expire by (default time.Now), so tests can expire tokens
// without waiting. The rest of the fake keeps real time.
func WithClock(now func() time.Time) Option { return func(f *Fake) { f.oauth.now = now } }

// AddJWTKey registers a public key under kid for appID, creating the app
// (active) if it is new. It may be called while the fake serves, to restore
// a key [Fake.RemoveJWTKey] took away or to rotate keys.
func (f *Fake) AddJWTKey(appID, kid string, pub *rsa.PublicKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	app := f.oauth.apps[appID]
	if app == nil {
		app = &jwtApp{keys: map[string]*rsa.PublicKey{}}
		f.oauth.apps[appID] = app
	}
	app.keys[kid] = pub
}

// RemoveJWTKey revokes an app's key: later JWTs signed with it are refused
// with invalid_client. Access tokens already issued stay valid until they
// expire, as nothing documents otherwise; [Fake.RevokeTokens] ends them now.
func (f *Fake) RemoveJWTKey(appID, kid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if app := f.oauth.apps[appID]; app != nil {
		delete(app.keys, kid)
	}
}

// RevokeTokens forgets every access token issued to appID: calls with them
// answer 4100, as for a revoked token.
func (f *Fake) RevokeTokens(appID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tok, at := range f.oauth.tokens {
		if at.who.App == appID {
			delete(f.oauth.tokens, tok)
		}
	}
}

// SetAppActive deactivates (false) or reactivates an app, as its owner can
// in Coze. While inactive, the token endpoint answers access_deny for it and
// calls with its access tokens answer 4100.
func (f *Fake) SetAppActive(appID string, active bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if app := f.oauth.apps[appID]; app != nil {
		app.inactive = !active
	}
}

// SetTokenLifetime caps the lifetime of access tokens issued from now on:
// each lives min(duration_seconds, d). 0 removes the cap. The lifetime ends
// on a whole second, the expires_in the endpoint reports, so a lifetime
// under a second may give a token that has already expired.
func (f *Fake) SetTokenLifetime(d time.Duration) {
	f.mu.Lock()
	f.oauth.lifetime = d
	f.mu.Unlock()
}

// SetOwner records appID and session as the creator of the conversations
// ids: a DELETE by any other identity answers [NotCreatorCode]. Use
// [StaticTokenApp] and "" for conversations of a static token. An empty
// appID removes the owner: anyone may delete them, as without SetOwner.
func (f *Fake) SetOwner(appID, session string, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if appID == "" {
			delete(f.oauth.owners, id)
			continue
		}
		f.oauth.owners[id] = Identity{App: appID, Session: session}
	}
	f.changedLocked()
}

// Owner returns the creator of conversation id, if it has one.
func (f *Fake) Owner(id string) (Identity, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	who, ok := f.oauth.owners[id]
	return who, ok
}

// Mints returns how many access tokens the endpoint issued for appID and
// session.
func (f *Fake) Mints(appID, session string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.oauth.mints[Identity{App: appID, Session: session}]
}

// MintCounts returns how many access tokens the endpoint issued, by identity.
func (f *Fake) MintCounts() map[Identity]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[Identity]int, len(f.oauth.mints))
	for who, n := range f.oauth.mints {
		out[who] = n
	}
	return out
}

// TotalMints returns how many access tokens the endpoint issued in all.
func (f *Fake) TotalMints() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	total := 0
	for _, n := range f.oauth.mints {
		total += n
	}
	return total
}

// TokenRejections returns how many token requests the endpoint refused, by
// error_code.
func (f *Fake) TokenRejections() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.oauth.rejections))
	for code, n := range f.oauth.rejections {
		out[code] = n
	}
	return out
}

// identify resolves a bearer token to the identity it acts as; false means
// the call answers 4100. An access token the endpoint issued acts as its
// (app, session) while it is unexpired and its app active. Once any JWT app
// is configured, another czs_ token is unknown; every other token is a
// static one, judged as before JWT apps existed. Called with f.mu held.
func (f *Fake) identify(token string) (Identity, bool) {
	if at, ok := f.oauth.tokens[token]; ok {
		app := f.oauth.apps[at.who.App]
		live := f.oauth.now().Before(at.expires) && app != nil && !app.inactive
		return at.who, live
	}
	if strings.HasPrefix(token, "czs_") && len(f.oauth.apps) > 0 {
		return Identity{}, false
	}
	if token == "" || (f.token != "" && token != f.token) {
		return Identity{}, false
	}
	return Identity{App: StaticTokenApp}, true
}

// mayDelete reports whether who may delete conversation id: anyone may when
// it has no owner. Called with f.mu held.
func (f *Fake) mayDelete(id string, who Identity) bool {
	owner, owned := f.oauth.owners[id]
	return !owned || owner == who
}

// oauthError is a refusal of the token endpoint.
type oauthError struct {
	status int
	code   string
	msg    string
}

func (e *oauthError) Error() string { return e.code + ": " + e.msg }

func invalidRequest(format string, args ...any) *oauthError {
	return &oauthError{http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf(format, args...)}
}

func invalidClient(format string, args ...any) *oauthError {
	return &oauthError{http.StatusUnauthorized, CodeInvalidClient, fmt.Sprintf(format, args...)}
}

// jwtClaims are the claims oauth-jwt.md lists.
type jwtClaims struct {
	jwt.RegisteredClaims
	SessionName string `json:"session_name,omitempty"`
}

// serveToken answers POST /api/permission/oauth2/token.
func (f *Fake) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	now := f.oauth.now()
	f.oauth.logSeq++
	logID := newLogID(now, f.oauth.logSeq)
	f.mu.Unlock()
	w.Header().Set("X-Tt-Logid", logID)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10) // a token request is a few dozen bytes
	token, expires, err := f.mint(r, now)
	w.Header().Set("Content-Type", "application/json")
	var oe *oauthError
	if errors.As(err, &oe) {
		f.mu.Lock()
		f.oauth.rejections[oe.code]++
		f.mu.Unlock()
		w.WriteHeader(oe.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error_code": oe.code, "error_message": oe.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "expires_in": expires.Unix()})
}

// mint checks a token request and issues its access token. Errors are
// *oauthError.
func (f *Fake) mint(r *http.Request, now time.Time) (string, time.Time, error) {
	duration, err := readTokenRequest(r)
	if err != nil {
		return "", time.Time{}, err
	}
	v, err := f.verifyJWT(r, now)
	if err != nil {
		return "", time.Time{}, err
	}
	return f.issue(v, duration, now)
}

// readTokenRequest parses the JSON body and returns the lifetime asked for.
func readTokenRequest(r *http.Request) (time.Duration, error) {
	var body struct {
		GrantType       string `json:"grant_type"`
		DurationSeconds int64  `json:"duration_seconds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return 0, invalidRequest("the body is not a JSON token request")
	}
	switch body.GrantType {
	case JWTBearerGrant:
	case "":
		return 0, invalidRequest("grant_type is required")
	default:
		return 0, &oauthError{http.StatusBadRequest, CodeUnsupportedGrantType, "grant_type must be " + JWTBearerGrant}
	}
	maxSeconds := int64(MaxTokenDuration / time.Second)
	switch {
	case body.DurationSeconds == 0:
		return DefaultTokenDuration, nil
	case body.DurationSeconds < 0 || body.DurationSeconds > maxSeconds:
		return 0, invalidRequest("duration_seconds must be between 1 and %d", maxSeconds)
	}
	return time.Duration(body.DurationSeconds) * time.Second, nil
}

// verifiedJWT is a JWT whose signature and claims passed, with the key that
// verified it.
type verifiedJWT struct {
	claims *jwtClaims
	kid    string
	key    *rsa.PublicKey
}

// verifyJWT checks the Bearer JWT: RS256 only, a kid registered for the app
// named by iss, the signature, aud, exp, iat and a jti. It does not check
// that the jti is new: issue does, under the lock that records it.
func (f *Fake) verifyJWT(r *http.Request, now time.Time) (verifiedJWT, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return verifiedJWT{}, invalidClient("no JWT in the Authorization header")
	}
	v := verifiedJWT{claims: &jwtClaims{}}
	claims := v.claims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithAudience(f.audiences(r)...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(ClockSkew),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		v.kid, _ = t.Header["kid"].(string)
		var kerr error
		v.key, kerr = f.publicKey(claims.Issuer, v.kid)
		return v.key, kerr
	})
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			return verifiedJWT{}, oe
		}
		if errors.Is(err, jwt.ErrTokenMalformed) { // its message may quote bytes of the JWT
			return verifiedJWT{}, invalidClient("the JWT is malformed")
		}
		// The jwt package's other messages name the check that failed,
		// never the token's content.
		return verifiedJWT{}, invalidClient("the JWT is not valid: %v", err)
	}
	switch {
	case claims.IssuedAt == nil:
		return verifiedJWT{}, invalidClient("iat is required")
	case !claims.ExpiresAt.After(claims.IssuedAt.Time):
		return verifiedJWT{}, invalidClient("exp must be later than iat")
	case claims.ID == "":
		return verifiedJWT{}, invalidClient("jti is required")
	}
	return v, nil
}

// audiences returns the aud values a JWT may carry.
func (f *Fake) audiences(r *http.Request) []string {
	f.mu.Lock()
	aud := f.oauth.audience
	f.mu.Unlock()
	if aud != "" {
		return []string{aud}
	}
	auds := []string{r.Host}
	if host, _, err := net.SplitHostPort(r.Host); err == nil {
		auds = append(auds, host)
	}
	return auds
}

// publicKey returns the key an app registered under kid.
func (f *Fake) publicKey(appID, kid string) (*rsa.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	app := f.oauth.apps[appID]
	switch {
	case appID == "":
		return nil, invalidClient("iss (the app id) is required")
	case app == nil:
		return nil, invalidClient("iss is not a known app id")
	case kid == "":
		return nil, invalidClient("the JWT header has no kid")
	case app.keys[kid] == nil:
		return nil, invalidClient("kid is not a public key of the app")
	}
	return app.keys[kid], nil
}

// issue records the JWT as used and issues an access token for its app and
// session, unless the key was removed meanwhile, the app is inactive or the
// jti was seen.
func (f *Fake) issue(v verifiedJWT, asked time.Duration, now time.Time) (string, time.Time, error) {
	token, err := newAccessToken()
	if err != nil {
		return "", time.Time{}, &oauthError{http.StatusInternalServerError, CodeInternalError, "no randomness"}
	}
	claims := v.claims
	f.mu.Lock()
	defer f.mu.Unlock()
	app := f.oauth.apps[claims.Issuer] // apps are never removed: publicKey found it
	switch {
	case app.keys[v.kid] != v.key:
		return "", time.Time{}, invalidClient("kid is not a public key of the app")
	case app.inactive:
		return "", time.Time{}, &oauthError{http.StatusForbidden, CodeAccessDeny, "the app is deactivated"}
	}
	if _, seen := f.oauth.jtis[claims.ID]; seen {
		return "", time.Time{}, invalidClient("jti was used before: a JWT is good for one token")
	}
	f.oauth.jtis[claims.ID] = claims.ExpiresAt.Time
	lifetime := asked
	if f.oauth.lifetime > 0 {
		lifetime = min(lifetime, f.oauth.lifetime)
	}
	// expires_in is whole seconds: the token ends exactly when it says.
	expires := time.Unix(now.Add(lifetime).Unix(), 0)
	who := Identity{App: claims.Issuer, Session: claims.SessionName}
	f.oauth.tokens[token] = accessToken{who: who, expires: expires}
	f.oauth.mints[who]++
	f.sweepLocked(now)
	return token, expires, nil
}

// sweepLocked forgets expired access tokens (an unknown czs_ token answers
// as an expired one does) and the ids of expired JWTs (which are refused
// anyway), every so many mints, so long runs stay bounded.
func (f *Fake) sweepLocked(now time.Time) {
	if f.oauth.sinceSweep++; f.oauth.sinceSweep < 256 {
		return
	}
	f.oauth.sinceSweep = 0
	for tok, at := range f.oauth.tokens {
		if !now.Before(at.expires) {
			delete(f.oauth.tokens, tok)
		}
	}
	for jti, exp := range f.oauth.jtis {
		if now.After(exp.Add(ClockSkew)) {
			delete(f.oauth.jtis, jti)
		}
	}
}

// newAccessToken returns "czs_" and 64 random hex digits.
func newAccessToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "czs_" + hex.EncodeToString(b[:]), nil
}
