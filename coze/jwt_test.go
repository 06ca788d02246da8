package coze_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/coze-eraser/coze-eraser/coze"
)

const (
	testAppID = "1127900106117"
	testKeyID = "_v0VjcMlLdQc3tRTD3jC5Xz29TUnKQOhtuD5k-gpyf4"
)

// testKeys are generated once per package: a 2048-bit key takes a while
// under -race.
var testKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// pkcs8PEM and pkcs1PEM encode a key as Coze's download (PKCS#8) and as
// openssl's traditional format (PKCS#1).
func pkcs8PEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pkcs1PEM(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// writeKey replaces path with content the way Kubernetes updates a secret:
// a new file renamed over the old one.
func writeKey(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fakeClock is the clock of both the app and the token server.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mintRecord is what the token server saw in one accepted request.
type mintRecord struct {
	header   map[string]any
	claims   jwt.MapClaims
	duration int64
	token    string
}

// tokenServer is a token endpoint that verifies the JWT as Coze does
// (signature by kid, iss, aud, iat, exp, a jti used once) and issues tokens
// with a chosen lifetime.
type tokenServer struct {
	*httptest.Server
	clock    *fakeClock
	requests atomic.Int64

	mu       sync.Mutex
	lifetime time.Duration
	keys     map[string]*rsa.PublicKey
	jtis     map[string]bool
	jwts     []string
	mints    []mintRecord
	gate     func()                                 // when set, runs first
	reply    func(http.ResponseWriter, string) bool // when set and true, it answered
}

func newTokenServer(t *testing.T, clock *fakeClock, key *rsa.PrivateKey) *tokenServer {
	t.Helper()
	s := &tokenServer{
		clock:    clock,
		lifetime: time.Minute,
		keys:     map[string]*rsa.PublicKey{testKeyID: &key.PublicKey},
		jtis:     map[string]bool{},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// set changes the server's behaviour under its lock.
func (s *tokenServer) set(fn func(s *tokenServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *tokenServer) records() []mintRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mintRecord(nil), s.mints...)
}

// secrets returns every JWT and token the server has seen or issued.
func (s *tokenServer) secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.jwts...)
	for _, m := range s.mints {
		out = append(out, m.token)
	}
	return out
}

func (s *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	gate, reply := s.gate, s.reply
	s.mu.Unlock()
	if gate != nil {
		gate()
	}
	signed, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	s.jwts = append(s.jwts, signed)
	s.mu.Unlock()
	if reply != nil && reply(w, signed) {
		return
	}
	var body struct {
		GrantType       string `json:"grant_type"`
		DurationSeconds int64  `json:"duration_seconds"`
	}
	if r.Method != http.MethodPost || r.URL.Path != coze.TokenPath || r.Header.Get("Content-Type") != "application/json" {
		answerError(w, http.StatusBadRequest, "invalid_request", "wrong method, path or content type")
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.GrantType != coze.JWTBearerGrant {
		answerError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type")
		return
	}
	tok, err := s.verify(signed)
	if err != nil {
		answerError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	s.issue(w, tok, body.DurationSeconds)
}

// verify checks the JWT and that its jti is new.
func (s *tokenServer) verify(signed string) (*jwt.Token, error) {
	tok, err := jwt.Parse(signed, func(tok *jwt.Token) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		kid, _ := tok.Header["kid"].(string)
		if key, ok := s.keys[kid]; ok {
			return key, nil
		}
		return nil, errors.New("unknown kid")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(s.clock.Now), jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(), jwt.WithIssuer(testAppID), jwt.WithAudience(strings.TrimPrefix(s.URL, "http://")))
	if err != nil {
		return nil, err
	}
	claims, _ := tok.Claims.(jwt.MapClaims)
	jti, _ := claims["jti"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	if jti == "" || s.jtis[jti] {
		return nil, errors.New("jti missing or used before")
	}
	s.jtis[jti] = true
	return tok, nil
}

func (s *tokenServer) issue(w http.ResponseWriter, tok *jwt.Token, duration int64) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	access := "czs_" + hex.EncodeToString(raw[:])
	s.mu.Lock()
	expires := s.clock.Now().Add(s.lifetime).Unix()
	claims, _ := tok.Claims.(jwt.MapClaims)
	s.mints = append(s.mints, mintRecord{header: tok.Header, claims: claims, duration: duration, token: access})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"expires_in":%d}`, access, expires)
}

func answerError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(coze.LogIDHeader, "20261203140000LOGID")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"error_code": code, "error_message": msg})
	_, _ = w.Write(body)
}

// fixture is an app talking to a token server, sharing a fake clock.
type fixture struct {
	app     *coze.JWTApp
	srv     *tokenServer
	clock   *fakeClock
	keyPath string
	keyPEM  []byte
}

func newFixture(t *testing.T, edit func(*coze.JWTConfig), opts ...coze.JWTOption) *fixture {
	t.Helper()
	f := &fixture{clock: newClock(), keyPath: filepath.Join(t.TempDir(), "private_key.pem")}
	f.keyPEM = pkcs8PEM(t, testKeys()[0])
	writeKey(t, f.keyPath, f.keyPEM)
	f.srv = newTokenServer(t, f.clock, testKeys()[0])
	cfg := coze.JWTConfig{
		BaseURL: f.srv.URL, AppID: testAppID, KeyID: testKeyID, PrivateKeyFile: f.keyPath, Now: f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	app, err := coze.NewJWTApp(cfg, opts...)
	if err != nil {
		t.Fatalf("NewJWTApp: %v", err)
	}
	f.app = app
	return f
}

// token calls Token and fails the test on an error.
func (f *fixture) token(t *testing.T, session string) string {
	t.Helper()
	tok, err := f.app.Token(context.Background(), session)
	if err != nil {
		t.Fatalf("Token(%q): %v", session, err)
	}
	return tok
}

// assertNoSecrets fails if s holds the key or any JWT or token.
func (f *fixture) assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	secrets := f.srv.secrets()
	for _, line := range strings.Split(string(f.keyPEM), "\n") {
		if !strings.HasPrefix(line, "-----") && len(line) > 20 {
			secrets = append(secrets, line)
		}
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("%s holds a secret: %q", what, s)
			return
		}
	}
}

func TestJWTAppMintsAndReuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	first := f.token(t, "")
	if again := f.token(t, ""); again != first {
		t.Errorf("second Token = a new token; want the cached one")
	}
	alice := f.token(t, "alice")
	if alice == first {
		t.Errorf("the session's token is the app's token; want one minted for the session")
	}
	if got := f.app.Mints(); got != 2 {
		t.Errorf("Mints() = %d, want 2", got)
	}
	recs := f.srv.records()
	if len(recs) != 2 {
		t.Fatalf("the server issued %d tokens, want 2", len(recs))
	}
	now := f.clock.Now().Unix()
	for i, rec := range recs {
		checkJWT(t, rec, now, f.srv.URL)
		if got := rec.duration; got != 900 {
			t.Errorf("mint %d: duration_seconds = %d, want 900 (the default)", i, got)
		}
	}
	if _, ok := recs[0].claims["session_name"]; ok {
		t.Errorf("session_name sent for the empty session; want it absent")
	}
	if got := recs[1].claims["session_name"]; got != "alice" {
		t.Errorf("session_name = %v, want alice", got)
	}
	if recs[0].claims["jti"] == recs[1].claims["jti"] {
		t.Errorf("two JWTs share the jti %v", recs[0].claims["jti"])
	}
}

// checkJWT checks the header and claims of one minted JWT.
func checkJWT(t *testing.T, rec mintRecord, now int64, baseURL string) {
	t.Helper()
	h, c := rec.header, rec.claims
	if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] != testKeyID {
		t.Errorf("header = %v; want alg RS256, typ JWT, kid %s", h, testKeyID)
	}
	if c["iss"] != testAppID {
		t.Errorf("iss = %v, want %s", c["iss"], testAppID)
	}
	if aud, ok := c["aud"].(string); !ok || aud != strings.TrimPrefix(baseURL, "http://") {
		t.Errorf("aud = %#v; want the string %q, the base URL's host", c["aud"], strings.TrimPrefix(baseURL, "http://"))
	}
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	if int64(iat) != now || exp <= iat || exp-iat > 600 {
		t.Errorf("iat = %v, exp = %v; want iat = now (%d) and exp a few minutes later", iat, exp, now)
	}
	jti, _ := c["jti"].(string)
	if raw, err := hex.DecodeString(jti); err != nil || len(raw) < 32 {
		t.Errorf("jti = %q; want at least 32 random bytes, hex encoded", jti)
	}
}

func TestJWTAppRenewsBeforeExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lifetime, renewAt time.Duration
	}{
		{time.Minute, 54 * time.Second},         // a tenth of the lifetime before
		{1000 * time.Second, 970 * time.Second}, // capped at 30 s before
		{24 * time.Hour, 24*time.Hour - 30*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.lifetime.String(), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.srv.set(func(s *tokenServer) { s.lifetime = tt.lifetime })
			first := f.token(t, "s")
			f.clock.Advance(tt.renewAt - time.Second)
			if got := f.token(t, "s"); got != first || f.app.Mints() != 1 {
				t.Fatalf("1 s before the renewal point: a new token (mints %d); want the cached one", f.app.Mints())
			}
			f.clock.Advance(time.Second)
			// At the renewal point the still-valid token is used while a
			// new one is minted in the background.
			if got := f.token(t, "s"); got != first {
				t.Fatalf("at the renewal point: a caller waited for a new token; want the valid one while renewing")
			}
			waitForCond(t, "the background renewal", func() bool { return f.app.Mints() == 2 })
			if got := f.token(t, "s"); got == first {
				t.Fatalf("after the renewal: the old token; want the new one")
			}
		})
	}
}

func TestJWTAppSingleFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const callers = 100
	var started atomic.Int64
	allStarted := make(chan struct{})
	// The mint is held until every caller has asked, so that they all
	// need the token while it is being minted.
	f.srv.set(func(s *tokenServer) { s.gate = func() { waitOrTimeout(allStarted) } })
	tokens := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if started.Add(1) == callers {
				close(allStarted)
			}
			tokens[i], errs[i] = f.app.Token(context.Background(), "bob")
		})
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || tokens[i] != tokens[0] {
			t.Fatalf("caller %d: %v; want the one token every caller shares", i, errs[i])
		}
	}
	if got, reqs := f.app.Mints(), f.srv.requests.Load(); got != 1 || reqs != 1 {
		t.Errorf("%d callers caused %d mints and %d requests; want 1", callers, got, reqs)
	}
}

func waitOrTimeout(ch <-chan struct{}) {
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
	}
}

func TestJWTAppSharesAFailingMint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const callers = 100
	var started atomic.Int64
	allStarted := make(chan struct{})
	f.srv.set(func(s *tokenServer) {
		s.gate = func() { waitOrTimeout(allStarted) }
		s.reply = func(w http.ResponseWriter, _ string) bool {
			answerError(w, http.StatusInternalServerError, "internal_error", "try later")
			return true
		}
	})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range callers {
		wg.Go(func() {
			if started.Add(1) == callers {
				close(allStarted)
			}
			if _, err := f.app.Token(context.Background(), "carol"); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != callers {
		t.Errorf("%d of %d callers failed; want all", failed.Load(), callers)
	}
	// Callers that asked while the mint was held share it; one that was
	// descheduled between counting itself and asking may start another.
	// 100 requests would be a herd.
	if reqs := f.srv.requests.Load(); reqs > 3 {
		t.Errorf("%d callers caused %d requests; want them to share the failing mint", callers, reqs)
	}
	f.srv.set(func(s *tokenServer) { s.gate, s.reply = nil, nil })
	f.token(t, "carol") // the failure was not cached
	if got := f.app.Mints(); got != 1 {
		t.Errorf("Mints() = %d, want 1", got)
	}
}

func TestJWTAppWaitEndsWithTheCallersContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	release := make(chan struct{})
	f.srv.set(func(s *tokenServer) { s.gate = func() { waitOrTimeout(release) } })
	patient := make(chan error, 1)
	go func() {
		_, err := f.app.Token(context.Background(), "dan")
		patient <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.app.Token(ctx, "dan"); !errors.Is(err, context.Canceled) {
		t.Errorf("Token with a cancelled context = %v; want context.Canceled", err)
	}
	close(release)
	if err := <-patient; err != nil {
		t.Errorf("the other caller: %v; want the token (one caller giving up must not fail the mint)", err)
	}
}

func TestJWTAppMintTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, coze.WithMintTimeout(100*time.Millisecond))
	release := make(chan struct{})
	defer close(release)
	f.srv.set(func(s *tokenServer) { s.gate = func() { waitOrTimeout(release) } })
	_, err := f.app.Session("erin").Token()
	var te *coze.TokenError
	if !errors.As(err, &te) || te.Class() != coze.ClassTransient {
		t.Errorf("Token() from a hanging endpoint = %v; want a transient *TokenError", err)
	}
}

func TestJWTAppEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *coze.JWTConfig) { c.MaxSessions = 3 })
	for _, s := range []string{"a", "b", "c", "a", "d"} { // d evicts b, the least recently used
		f.token(t, s)
	}
	if got := f.app.Mints(); got != 4 {
		t.Fatalf("Mints() = %d, want 4", got)
	}
	for _, s := range []string{"a", "c", "d"} {
		f.token(t, s)
	}
	if got := f.app.Mints(); got != 4 {
		t.Errorf("Mints() = %d after a, c, d again; want 4 (all cached)", got)
	}
	f.token(t, "b")
	if got := f.app.Mints(); got != 5 {
		t.Errorf("Mints() = %d after b again; want 5 (b was evicted)", got)
	}
}

func TestJWTAppTokenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		class  coze.Class
		want   []string
	}{
		{"invalid_request", 400, `{"error_code":"invalid_request","error_message":"duration_seconds is wrong"}`,
			coze.ClassAuth, []string{"invalid_request", `"duration_seconds is wrong"`, "HTTP 400", "logid L1"}},
		{"invalid_client", 401, `{"error_code":"invalid_client","error_message":"jwt verify failed"}`,
			coze.ClassAuth, []string{"invalid_client", `"jwt verify failed"`, "key id"}},
		{"access_deny", 403, `{"error_code":"access_deny","error_message":"app deactivated"}`,
			coze.ClassAuth, []string{"access_deny", `"app deactivated"`}},
		{"unsupported_grant_type", 400, `{"error_code":"unsupported_grant_type","error_message":"bad grant"}`,
			coze.ClassPermanent, []string{"unsupported_grant_type", `"bad grant"`}},
		{"internal_error", 500, `{"error_code":"internal_error","error_message":"oops"}`,
			coze.ClassTransient, []string{"internal_error", `"oops"`}},
		{"unknown code on 4xx", 400, `{"error_code":"new_code","error_message":"m"}`, coze.ClassAuth, []string{"new_code"}},
		{"500 HTML", 500, `<html>bad gateway</html>`, coze.ClassTransient, []string{"HTTP 500", "not a JSON answer"}},
		{"502 empty", 502, ``, coze.ClassTransient, []string{"HTTP 502"}},
		{"429", 429, `{"error_code":"","error_message":""}`, coze.ClassRateLimited, []string{"HTTP 429"}},
		{"404 wrong base URL", 404, `404 page not found`, coze.ClassAuth, []string{"HTTP 404"}},
		{"200 without token", 200, `{"expires_in":1}`, coze.ClassAuth, []string{"access_token", "empty"}},
		{"200 relative expires_in", 200, `{"access_token":"czs_x","expires_in":900}`, coze.ClassAuth,
			[]string{"expires_in 900", "absolute"}},
		{"200 not JSON", 200, `access_token=czs_secret`, coze.ClassAuth, []string{"not a JSON answer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.srv.set(func(s *tokenServer) {
				s.reply = func(w http.ResponseWriter, _ string) bool {
					w.Header().Set(coze.LogIDHeader, "L1")
					w.WriteHeader(tt.status)
					_, _ = w.Write([]byte(tt.body))
					return true
				}
			})
			_, err := f.app.Token(context.Background(), "s")
			var te *coze.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Token = %v; want a *TokenError", err)
			}
			if te.Class() != tt.class || te.Status != tt.status {
				t.Errorf("class %s, status %d; want %s, %d", te.Class(), te.Status, tt.class, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			f.assertNoSecrets(t, "the error", err.Error())
			if strings.Contains(err.Error(), "czs_") {
				t.Errorf("the error %q quotes the answer's token", err)
			}
		})
	}
}

// TestJWTAppErrorsHideAnEchoedJWT: a broken proxy that echoes the request
// must not put the JWT into the error.
func TestJWTAppErrorsHideAnEchoedJWT(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.srv.set(func(s *tokenServer) {
		s.reply = func(w http.ResponseWriter, signed string) bool {
			w.Header().Set(coze.LogIDHeader, "id-"+signed)
			answerError(w, http.StatusUnauthorized, "invalid_client", "refused Bearer "+signed)
			return true
		}
	})
	_, err := f.app.Token(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("Token = %v; want invalid_client", err)
	}
	f.assertNoSecrets(t, "the error", err.Error())
}

func TestJWTAppNetworkErrorIsTransient(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.srv.Close()
	_, err := f.app.Token(context.Background(), "")
	var te *coze.TokenError
	if !errors.As(err, &te) || te.Class() != coze.ClassTransient || te.Status != 0 {
		t.Fatalf("Token from a closed server = %v; want a transient *TokenError without status", err)
	}
	f.assertNoSecrets(t, "the error", err.Error())
}

func TestJWTAppDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	defer target.Close()
	f := newFixture(t, nil)
	f.srv.set(func(s *tokenServer) {
		s.reply = func(w http.ResponseWriter, _ string) bool {
			w.Header().Set("Location", target.URL)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return true
		}
	})
	if _, err := f.app.Token(context.Background(), ""); err == nil {
		t.Errorf("Token after a redirect succeeded; want an error")
	}
	if followed.Load() != 0 {
		t.Errorf("the redirect was followed, JWT and all")
	}
}

// TestJWTAppKeepsAValidTokenWhileRenewalFails: during the renewal window a
// failing endpoint costs nothing until the token really expires.
func TestJWTAppKeepsAValidTokenWhileRenewalFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	first := f.token(t, "s")
	f.srv.set(func(s *tokenServer) {
		s.reply = func(w http.ResponseWriter, _ string) bool {
			answerError(w, http.StatusInternalServerError, "internal_error", "down")
			return true
		}
	})
	f.clock.Advance(55 * time.Second) // past the renewal point of a 60 s token
	for range 10 {
		if got := f.token(t, "s"); got != first {
			t.Fatalf("Token during a failing renewal = a new token; want the still-valid one")
		}
		// The renewal runs in the background: let it fail before the
		// next call, so that the calls do not all find it in flight.
		waitForCond(t, "the renewal attempt", func() bool { return f.srv.requests.Load() >= 2 })
	}
	if reqs := f.srv.requests.Load(); reqs != 2 {
		t.Errorf("%d requests; want 2 (the mint and one renewal attempt per second)", reqs)
	}
	f.clock.Advance(5 * time.Second) // expired
	if _, err := f.app.Token(context.Background(), "s"); err == nil {
		t.Errorf("Token after expiry with a failing endpoint succeeded; want the error")
	}
}

func TestJWTAppPicksUpARotatedKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	before := f.token(t, "a")
	keys := testKeys()
	// The endpoint now knows only the new key; only a JWT signed with it
	// passes.
	writeKey(t, f.keyPath, pkcs1PEM(keys[1]))
	f.srv.set(func(s *tokenServer) { s.keys = map[string]*rsa.PublicKey{testKeyID: &keys[1].PublicKey} })
	f.token(t, "b")
	if got := f.token(t, "a"); got != before {
		t.Errorf("the key change dropped a's cached token; want it kept until renewal")
	}

	if err := os.Remove(f.keyPath); err != nil {
		t.Fatal(err)
	}
	_, err := f.app.Token(context.Background(), "c")
	if err == nil || !strings.Contains(err.Error(), f.keyPath) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Token with the key file gone = %v; want an error naming the file and the cause", err)
	}
	if got := f.token(t, "a"); got != before {
		t.Errorf("with the key file gone, a's valid token was not served")
	}
	f.clock.Advance(time.Minute)
	if _, err := f.app.Token(context.Background(), "a"); err == nil {
		t.Errorf("a's token expired and the key is gone, yet Token succeeded")
	}
	writeKey(t, f.keyPath, pkcs8PEM(t, keys[1]))
	f.token(t, "c")
}

func TestNewJWTAppRefusesBadConfig(t *testing.T) {
	t.Parallel()
	keyPath := filepath.Join(t.TempDir(), "key.pem")
	writeKey(t, keyPath, pkcs8PEM(t, testKeys()[0]))
	valid := coze.JWTConfig{BaseURL: "https://api.coze.cn", AppID: testAppID, KeyID: testKeyID, PrivateKeyFile: keyPath}
	tests := []struct {
		name string
		edit func(*coze.JWTConfig)
		want string
	}{
		{"no base URL", func(c *coze.JWTConfig) { c.BaseURL = "" }, "BaseURL"},
		{"relative base URL", func(c *coze.JWTConfig) { c.BaseURL = "api.coze.cn" }, "BaseURL"},
		{"credentials in the URL", func(c *coze.JWTConfig) { c.BaseURL = "https://u:p@api.coze.cn" }, "BaseURL"},
		{"no app id", func(c *coze.JWTConfig) { c.AppID = "" }, "AppID"},
		{"space in key id", func(c *coze.JWTConfig) { c.KeyID = "a b" }, "KeyID"},
		{"no key file", func(c *coze.JWTConfig) { c.PrivateKeyFile = "" }, "PrivateKeyFile"},
		{"TTL too short", func(c *coze.JWTConfig) { c.TokenTTL = time.Millisecond }, "TokenTTL"},
		{"TTL too long", func(c *coze.JWTConfig) { c.TokenTTL = 24 * time.Hour }, "TokenTTL"},
		{"TTL not whole seconds", func(c *coze.JWTConfig) { c.TokenTTL = 1500 * time.Millisecond }, "TokenTTL"},
		{"negative MaxSessions", func(c *coze.JWTConfig) { c.MaxSessions = -1 }, "MaxSessions"},
	}
	for _, tt := range tests {
		cfg := valid
		tt.edit(&cfg)
		if _, err := coze.NewJWTApp(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewJWTApp = %v; want an error naming %s", tt.name, err, tt.want)
		}
	}
	app, err := coze.NewJWTApp(valid)
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	got := app.Config()
	if got.Audience != "api.coze.cn" || got.TokenTTL != coze.DefaultTokenTTL || got.MaxSessions != coze.DefaultMaxSessions {
		t.Errorf("defaults: audience %q, TTL %v, sessions %d; want api.coze.cn, 15m, %d",
			got.Audience, got.TokenTTL, got.MaxSessions, coze.DefaultMaxSessions)
	}
	if _, err := coze.NewJWTApp(valid, coze.WithMintTimeout(-time.Second)); err == nil {
		t.Errorf("a negative mint timeout was accepted")
	}
}

func TestNewJWTAppRefusesBadKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&testKeys()[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 300)
	_, _ = rand.Read(garbage)
	rsaPEM := pkcs8PEM(t, testKeys()[0])
	tests := []struct {
		name    string
		content []byte // nil: no file
		want    string
	}{
		{"missing", nil, "no such file"},
		{"empty", []byte{}, "empty"},
		{"not PEM", []byte("app_id=1127900106117\n"), "not PEM"},
		{"EC in PKCS#8", pkcs8PEM(t, ec), "ECDSA key"},
		{"EC in SEC 1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), "EC key"},
		{"garbage in PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: garbage}), "malformed PKCS#8"},
		{"garbage in PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: garbage}), "malformed PKCS#1"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), "no private key"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: garbage}), "encrypted"},
		{"truncated", rsaPEM[:len(rsaPEM)/2], "not PEM"},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".pem")
		if tt.content != nil {
			writeKey(t, path, tt.content)
		}
		_, err := coze.NewJWTApp(coze.JWTConfig{
			BaseURL: "https://api.coze.cn", AppID: testAppID, KeyID: testKeyID, PrivateKeyFile: path,
		})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewJWTApp = %v; want an error naming the file and saying %q", tt.name, err, tt.want)
			continue
		}
		if hexed := hex.EncodeToString(garbage[:16]); strings.Contains(err.Error(), hexed) ||
			strings.Contains(err.Error(), string(rsaPEM[40:80])) {
			t.Errorf("%s: the error quotes the file: %v", tt.name, err)
		}
	}
	if _, err := coze.NewJWTApp(coze.JWTConfig{
		BaseURL: "https://api.coze.cn", AppID: testAppID, KeyID: testKeyID, PrivateKeyFile: dir,
	}); err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("a directory as key file: %v; want an error saying so", err)
	}
}

func TestJWTAppWarnsOfAReadableKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.pem")
	writeKey(t, path, pkcs1PEM(testKeys()[0]))
	if err := os.Chmod(path, 0o644); err != nil { //nolint:gosec // readable by others: the warning under test
		t.Fatal(err)
	}
	var warned []fs.FileMode
	_, err := coze.NewJWTApp(coze.JWTConfig{
		BaseURL: "https://api.coze.cn", AppID: testAppID, KeyID: testKeyID, PrivateKeyFile: path,
	}, coze.OnKeyReadableByOthers(func(p string, perm fs.FileMode) {
		if p == path {
			warned = append(warned, perm)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || warned[0] != 0o644 {
		t.Errorf("warnings = %v; want one, for mode 0644", warned)
	}
}

func TestJWTAppPrintsNoSecrets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	src := f.app.Session("alice")
	if _, err := src.Token(); err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(coze.ContextTokenSource); !ok {
		t.Errorf("a session's source is not a ContextTokenSource")
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{f.app, src, f.app.Config()} {
			out := fmt.Sprintf(format, v)
			f.assertNoSecrets(t, format+" output", out)
			if strings.Contains(out, "alice") {
				t.Errorf("%s output %q names the session: personal data", format, out)
			}
		}
	}
}

// waitForCond waits up to 5 s for cond, polling.
func waitForCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestJWTAppStopsUsingATokenCloseToExpiry: in the first half of the
// renewal window a caller gets the old token while the renewal runs; in
// the second half, when a call might reach the API after the token
// expired, it waits for the new one instead.
func TestJWTAppStopsUsingATokenCloseToExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	first := f.token(t, "s") // a 60 s token: renewal window 54 s to 60 s
	release := make(chan struct{})
	f.srv.set(func(s *tokenServer) { s.gate = func() { waitOrTimeout(release) } })
	f.clock.Advance(55 * time.Second)
	if got := f.token(t, "s"); got != first {
		t.Fatal("early in the renewal window: a caller waited for the renewal")
	}
	f.clock.Advance(3 * time.Second) // 58 s: 2 s left
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if tok, err := f.app.Token(ctx, "s"); err == nil {
		t.Fatalf("late in the renewal window: got a token (%v) while the renewal is held; want the caller to wait", tok == first)
	}
	close(release)
	if got := f.token(t, "s"); got == first {
		t.Error("after the renewal: the old token")
	}
}
