package cozetest_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

const (
	appID = "1127900106117"
	kidA  = "_v0VjcMlLdQc3tRTD3jC5Xz29TUnKQOhtuD5k-gpyf4"
	grant = `"grant_type":"urn:ietf:params:oauth:grant-type:jwt-bearer"`
)

var (
	keysOnce     sync.Once
	keyA, keyB   *rsa.PrivateKey
	jtiSeq       atomic.Int64
	defaultBody  = `{` + grant + `,"duration_seconds":900}`
	clockStartAt = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
)

// testKeys generates the package's two RSA keys once: generation is slow.
func testKeys(t *testing.T) (registered, other *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		keyA = mustKey()
		keyB = mustKey()
	})
	return keyA, keyB
}

func mustKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// clock is a settable clock for [cozetest.WithClock].
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(clockStartAt.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// jwtServer serves a fake with one app whose key is kidA, on a test clock.
func jwtServer(t *testing.T, opts ...cozetest.Option) (*cozetest.Server, *clock) {
	t.Helper()
	key, _ := testKeys(t)
	clk := newClock()
	opts = append([]cozetest.Option{
		cozetest.WithJWTApp(appID, map[string]*rsa.PublicKey{kidA: &key.PublicKey}),
		cozetest.WithClock(clk.Now),
	}, opts...)
	srv := cozetest.NewServer(opts...)
	t.Cleanup(srv.Close)
	return srv, clk
}

// claims are the claims a correct client sends, for session (none if "").
func claims(srv *cozetest.Server, now time.Time, session string) jwt.MapClaims {
	u, err := url.Parse(srv.URL)
	if err != nil {
		panic(err)
	}
	c := jwt.MapClaims{
		"iss": appID,
		"aud": u.Host,
		"iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
		"jti": fmt.Sprintf("jti-%d-%d", now.UnixNano(), jtiSeq.Add(1)),
	}
	if session != "" {
		c["session_name"] = session
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signA signs c as a correct client does: RS256 with the registered key.
func signA(c jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kidA
	return tok.SignedString(keyA)
}

// tokenAnswer is what the token endpoint answered.
type tokenAnswer struct {
	Status       int    `json:"-"`
	LogID        string `json:"-"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	ErrorCode    string `json:"error_code"`
	ErrorMessage string `json:"error_message"`
}

func postToken(t *testing.T, srv *cozetest.Server, signed, body string) tokenAnswer {
	t.Helper()
	ans, err := requestToken(srv, signed, body)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

// requestToken POSTs to the token endpoint; it may run on any goroutine.
func requestToken(srv *cozetest.Server, signed, body string) (tokenAnswer, error) {
	req, err := http.NewRequest(http.MethodPost, srv.URL+cozetest.TokenPath, strings.NewReader(body))
	if err != nil {
		return tokenAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if signed != "" {
		req.Header.Set("Authorization", "Bearer "+signed)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return tokenAnswer{}, err
	}
	defer resp.Body.Close()
	ans := tokenAnswer{Status: resp.StatusCode, LogID: resp.Header.Get("X-Tt-Logid")}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return ans, fmt.Errorf("token answer %d is not JSON: %w", resp.StatusCode, err)
	}
	return ans, nil
}

// tryMint gets an access token for session; it may run on any goroutine.
func tryMint(srv *cozetest.Server, clk *clock, session, body string) (tokenAnswer, error) {
	signed, err := signA(claims(srv, clk.Now(), session))
	if err != nil {
		return tokenAnswer{}, err
	}
	ans, err := requestToken(srv, signed, body)
	if err == nil && (ans.Status != http.StatusOK || !strings.HasPrefix(ans.AccessToken, "czs_") || ans.ErrorCode != "") {
		err = fmt.Errorf("mint for %q: %+v", session, ans)
	}
	return ans, err
}

// mint gets an access token for session, failing the test otherwise.
func mint(t *testing.T, srv *cozetest.Server, clk *clock, session, body string) tokenAnswer {
	t.Helper()
	ans, err := tryMint(srv, clk, session, body)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

func deleteAs(t *testing.T, srv *cozetest.Server, token, id string) coze.Result {
	t.Helper()
	res, err := tryDelete(srv, token, id)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tryDelete deletes id with token through the real client, so the fake's
// answers are held against the client's classification; it may run on any
// goroutine.
func tryDelete(srv *cozetest.Server, token, id string) (coze.Result, error) {
	c, err := coze.NewClient(srv.URL, coze.StaticToken(token), coze.WithTimeout(5*time.Second))
	if err != nil {
		return coze.Result{}, err
	}
	res, _ := c.DeleteConversation(context.Background(), id)
	return res, nil
}

func TestTokenEndpointMintsTokenForSession(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	const id = "7379996104798150001"
	srv.SetOwner(appID, "alice", id)
	ans := mint(t, srv, clk, "alice", defaultBody)
	if want := clk.Now().Add(900 * time.Second).Unix(); ans.ExpiresIn != want {
		t.Errorf("expires_in %d, want the absolute time %d", ans.ExpiresIn, want)
	}
	if len(ans.LogID) != 32 {
		t.Errorf("log id %q", ans.LogID)
	}
	if res := deleteAs(t, srv, ans.AccessToken, id); res.Class != coze.ClassDeleted {
		t.Fatalf("delete as alice: %+v", res)
	}
	calls := srv.Calls()
	if len(calls) != 1 || calls[0].Identity != (cozetest.Identity{App: appID, Session: "alice"}) {
		t.Errorf("calls %+v", calls)
	}
	if srv.Mints(appID, "alice") != 1 || srv.TotalMints() != 1 || srv.Mints(appID, "") != 0 {
		t.Errorf("mints %v", srv.MintCounts())
	}
	// duration_seconds is optional, and 86399 is the most.
	noDuration := mint(t, srv, clk, "alice", `{`+grant+`}`)
	if want := clk.Now().Add(cozetest.DefaultTokenDuration).Unix(); noDuration.ExpiresIn != want {
		t.Errorf("default expires_in %d, want %d", noDuration.ExpiresIn, want)
	}
	longest := mint(t, srv, clk, "", `{`+grant+`,"duration_seconds":86399}`)
	if want := clk.Now().Add(86399 * time.Second).Unix(); longest.ExpiresIn != want {
		t.Errorf("86399 s: expires_in %d, want %d", longest.ExpiresIn, want)
	}
	if srv.Mints(appID, "alice") != 2 || srv.Mints(appID, "") != 1 || srv.TotalMints() != 3 {
		t.Errorf("mints %v", srv.MintCounts())
	}
}

func TestTokenEndpointRejects(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	key, other := testKeys(t)
	now := clk.Now()
	good := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := claims(srv, now, "alice")
		if edit != nil {
			edit(c)
		}
		return c
	}
	rs256 := func(edit func(jwt.MapClaims)) string { return sign(t, jwt.SigningMethodRS256, kidA, key, good(edit)) }
	tests := []struct {
		name   string
		signed string
		body   string
		status int
		code   string
	}{
		{"wrong kid", sign(t, jwt.SigningMethodRS256, "other-kid", key, good(nil)), defaultBody, 401, cozetest.CodeInvalidClient},
		{"no kid", sign(t, jwt.SigningMethodRS256, "", key, good(nil)), defaultBody, 401, cozetest.CodeInvalidClient},
		{"wrong key", sign(t, jwt.SigningMethodRS256, kidA, other, good(nil)), defaultBody, 401, cozetest.CodeInvalidClient},
		{"wrong iss", rs256(func(c jwt.MapClaims) { c["iss"] = "999" }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"no iss", rs256(func(c jwt.MapClaims) { delete(c, "iss") }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"wrong aud", rs256(func(c jwt.MapClaims) { c["aud"] = "api.coze.com" }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"no aud", rs256(func(c jwt.MapClaims) { delete(c, "aud") }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"expired", rs256(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		}), defaultBody, 401, cozetest.CodeInvalidClient},
		{"iat in the future", rs256(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"exp not after iat", rs256(func(c jwt.MapClaims) { c["exp"] = now.Unix() }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"no exp", rs256(func(c jwt.MapClaims) { delete(c, "exp") }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"no iat", rs256(func(c jwt.MapClaims) { delete(c, "iat") }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"no jti", rs256(func(c jwt.MapClaims) { delete(c, "jti") }), defaultBody, 401, cozetest.CodeInvalidClient},
		{"HS256", sign(t, jwt.SigningMethodHS256, kidA, []byte("a shared secret"), good(nil)), defaultBody, 401, cozetest.CodeInvalidClient},
		{"alg none", sign(t, jwt.SigningMethodNone, kidA, jwt.UnsafeAllowNoneSignatureType, good(nil)), defaultBody, 401, cozetest.CodeInvalidClient},
		{"RS512", sign(t, jwt.SigningMethodRS512, kidA, key, good(nil)), defaultBody, 401, cozetest.CodeInvalidClient},
		{"no JWT", "", defaultBody, 401, cozetest.CodeInvalidClient},
		{"not a JWT", "not.a.jwt", defaultBody, 401, cozetest.CodeInvalidClient},
		{"wrong grant_type", rs256(nil), `{"grant_type":"client_credentials"}`, 400, cozetest.CodeUnsupportedGrantType},
		{"no grant_type", rs256(nil), `{"duration_seconds":900}`, 400, cozetest.CodeInvalidRequest},
		{"duration too long", rs256(nil), `{` + grant + `,"duration_seconds":86400}`, 400, cozetest.CodeInvalidRequest},
		{"duration negative", rs256(nil), `{` + grant + `,"duration_seconds":-1}`, 400, cozetest.CodeInvalidRequest},
		{"duration not a number", rs256(nil), `{` + grant + `,"duration_seconds":"900"}`, 400, cozetest.CodeInvalidRequest},
		{"body not JSON", rs256(nil), `grant_type=x`, 400, cozetest.CodeInvalidRequest},
	}
	for _, tt := range tests {
		ans := postToken(t, srv, tt.signed, tt.body)
		if ans.Status != tt.status || ans.ErrorCode != tt.code || ans.ErrorMessage == "" || ans.AccessToken != "" || len(ans.LogID) != 32 {
			t.Errorf("%s: %+v, want %d %s", tt.name, ans, tt.status, tt.code)
		}
		t.Logf("%s: %s", tt.name, ans.ErrorMessage)
		if tt.signed != "" && strings.Contains(ans.ErrorMessage, tt.signed) {
			t.Errorf("%s: the message quotes the JWT", tt.name)
		}
	}
	if srv.TotalMints() != 0 {
		t.Errorf("mints %v", srv.MintCounts())
	}
	rejected := srv.TokenRejections()
	if sum := rejected[cozetest.CodeInvalidClient] + rejected[cozetest.CodeInvalidRequest] + rejected[cozetest.CodeUnsupportedGrantType]; sum != len(tests) {
		t.Errorf("rejections %v, want %d in all", rejected, len(tests))
	}
	if res := postTokenMethod(t, srv, http.MethodGet); res != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", res)
	}
}

func postTokenMethod(t *testing.T, srv *cozetest.Server, method string) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+cozetest.TokenPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTokenEndpointRejectsReusedJTI(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	key, _ := testKeys(t)
	c := claims(srv, clk.Now(), "alice")
	signed := sign(t, jwt.SigningMethodRS256, kidA, key, c)
	if ans := postToken(t, srv, signed, defaultBody); ans.Status != http.StatusOK {
		t.Fatalf("first use: %+v", ans)
	}
	if ans := postToken(t, srv, signed, defaultBody); ans.ErrorCode != cozetest.CodeInvalidClient {
		t.Errorf("the same JWT again: %+v", ans)
	}
	c["session_name"] = "bob" // a new JWT with the old jti
	if ans := postToken(t, srv, sign(t, jwt.SigningMethodRS256, kidA, key, c), defaultBody); ans.ErrorCode != cozetest.CodeInvalidClient {
		t.Errorf("another JWT with the jti: %+v", ans)
	}
	if srv.TotalMints() != 1 {
		t.Errorf("mints %v", srv.MintCounts())
	}
}

func TestTokenEndpointAudience(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	key, _ := testKeys(t)
	u, _ := url.Parse(srv.URL)
	for _, aud := range []string{u.Host, u.Hostname()} {
		c := claims(srv, clk.Now(), "")
		c["aud"] = aud
		if ans := postToken(t, srv, sign(t, jwt.SigningMethodRS256, kidA, key, c), defaultBody); ans.Status != http.StatusOK {
			t.Errorf("default audience, aud %q: %+v", aud, ans)
		}
	}
	cn, cnClk := jwtServer(t, cozetest.WithAudience("api.coze.cn"))
	for aud, want := range map[string]int{"api.coze.cn": http.StatusOK, u.Host: http.StatusUnauthorized} {
		c := claims(cn, cnClk.Now(), "")
		c["aud"] = aud
		if ans := postToken(t, cn, sign(t, jwt.SigningMethodRS256, kidA, key, c), defaultBody); ans.Status != want {
			t.Errorf("audience api.coze.cn, aud %q: %+v", aud, ans)
		}
	}
}

// TestRemovedKeyAndDeactivatedApp covers what pauses a profile and what
// resumes it.
func TestRemovedKeyAndDeactivatedApp(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	key, _ := testKeys(t)
	tok := mint(t, srv, clk, "alice", defaultBody).AccessToken

	srv.RemoveJWTKey(appID, kidA)
	if ans := postToken(t, srv, sign(t, jwt.SigningMethodRS256, kidA, key, claims(srv, clk.Now(), "alice")), defaultBody); ans.ErrorCode != cozetest.CodeInvalidClient {
		t.Errorf("removed key: %+v", ans)
	}
	if res := deleteAs(t, srv, tok, "1"); res.Class != coze.ClassDeleted {
		t.Errorf("a token issued before the key was removed: %+v", res)
	}
	srv.RevokeTokens(appID)
	if res := deleteAs(t, srv, tok, "2"); res.Class != coze.ClassAuth || res.Code != 4100 {
		t.Errorf("a revoked token: %+v", res)
	}
	srv.AddJWTKey(appID, kidA, &key.PublicKey)
	tok = mint(t, srv, clk, "alice", defaultBody).AccessToken

	srv.SetAppActive(appID, false)
	if ans := postToken(t, srv, sign(t, jwt.SigningMethodRS256, kidA, key, claims(srv, clk.Now(), "alice")), defaultBody); ans.Status != http.StatusForbidden || ans.ErrorCode != cozetest.CodeAccessDeny {
		t.Errorf("deactivated app: %+v", ans)
	}
	if res := deleteAs(t, srv, tok, "3"); res.Class != coze.ClassAuth {
		t.Errorf("a token of a deactivated app: %+v", res)
	}
	srv.SetAppActive(appID, true)
	mint(t, srv, clk, "alice", defaultBody)
	if res := deleteAs(t, srv, tok, "3"); res.Class != coze.ClassDeleted {
		t.Errorf("after reactivation: %+v", res)
	}
	if got := srv.TokenRejections(); got[cozetest.CodeInvalidClient] != 1 || got[cozetest.CodeAccessDeny] != 1 {
		t.Errorf("rejections %v", got)
	}
}

func TestTokenLifetime(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t, cozetest.WithTokenLifetime(time.Minute))
	start := clk.Now()
	ans := mint(t, srv, clk, "alice", defaultBody)
	if want := start.Add(time.Minute).Unix(); ans.ExpiresIn != want {
		t.Errorf("expires_in %d, want min(900 s, 60 s) later: %d", ans.ExpiresIn, want)
	}
	if shorter := mint(t, srv, clk, "alice", `{`+grant+`,"duration_seconds":30}`); shorter.ExpiresIn != start.Add(30*time.Second).Unix() {
		t.Errorf("30 s asked: expires_in %d", shorter.ExpiresIn)
	}
	clk.Advance(59 * time.Second)
	if res := deleteAs(t, srv, ans.AccessToken, "1"); res.Class != coze.ClassDeleted {
		t.Errorf("a second before expiry: %+v", res)
	}
	clk.Advance(time.Second)
	if res := deleteAs(t, srv, ans.AccessToken, "2"); res.Class != coze.ClassAuth || res.Code != 4100 {
		t.Errorf("at expiry: %+v", res)
	}
	srv.SetTokenLifetime(0)
	if uncapped := mint(t, srv, clk, "alice", defaultBody); uncapped.ExpiresIn != clk.Now().Add(900*time.Second).Unix() {
		t.Errorf("uncapped: expires_in %d", uncapped.ExpiresIn)
	}
}

func TestOnlyTheCreatorDeletes(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	const alices, pats, nobodys = "7379996104798150001", "7379996104798150002", "7379996104798150003"
	srv.SetOwner(appID, "alice", alices)
	srv.SetOwner(cozetest.StaticTokenApp, "", pats)
	alice := mint(t, srv, clk, "alice", defaultBody).AccessToken
	bob := mint(t, srv, clk, "bob", defaultBody).AccessToken

	for _, tt := range []struct {
		who, token, id string
		code           int64
		class          coze.Class
	}{
		{"bob", bob, alices, cozetest.NotCreatorCode, coze.ClassNotFound},
		{"a static token", "pat_x", alices, cozetest.NotCreatorCode, coze.ClassNotFound},
		{"alice", alice, alices, 0, coze.ClassDeleted},
		{"bob", bob, pats, cozetest.NotCreatorCode, coze.ClassNotFound},
		{"a static token", "pat_x", pats, 0, coze.ClassDeleted},
		{"bob", bob, nobodys, 0, coze.ClassDeleted},
		{"an unknown access token", "czs_unknown", nobodys, 4100, coze.ClassAuth},
	} {
		if res := deleteAs(t, srv, tt.token, tt.id); res.Class != tt.class || res.Code != tt.code {
			t.Errorf("%s deletes %s: %+v", tt.who, tt.id, res)
		}
	}
	if got := srv.Counts()[cozetest.AnswerNotCreator]; got != 3 {
		t.Errorf("%d not-creator answers", got)
	}
	if owner, ok := srv.Owner(alices); !ok || owner != (cozetest.Identity{App: appID, Session: "alice"}) {
		t.Errorf("owner %+v %v", owner, ok)
	}
	srv.SetOwner("", "", alices)
	if _, ok := srv.Owner(alices); ok {
		t.Error("the owner was not removed")
	}
}

// TestStaticTokensUnchanged: without JWT apps a czs_ token is as any static
// token; with both, each kind is judged on its own.
func TestStaticTokensUnchanged(t *testing.T) {
	t.Parallel()
	plain := cozetest.NewServer()
	t.Cleanup(plain.Close)
	if res := deleteAs(t, plain, "czs_anything", "1"); res.Class != coze.ClassDeleted {
		t.Errorf("no JWT app: %+v", res)
	}
	srv, clk := jwtServer(t, cozetest.WithToken("pat_good"))
	tok := mint(t, srv, clk, "", defaultBody).AccessToken
	for i, tt := range []struct {
		token string
		want  coze.Class
	}{{tok, coze.ClassDeleted}, {"pat_good", coze.ClassDeleted}, {"pat_bad", coze.ClassAuth}} {
		if res := deleteAs(t, srv, tt.token, strconv.Itoa(100+i)); res.Class != tt.want {
			t.Errorf("token %.8s: %+v", tt.token, res)
		}
	}
}

// TestConcurrentMints mints and deletes from many goroutines at once; the
// counts must add up (run with -race).
func TestConcurrentMints(t *testing.T) {
	t.Parallel()
	srv, clk := jwtServer(t)
	const sessions, perSession = 6, 4
	var wg sync.WaitGroup
	errs := make(chan string, sessions*perSession)
	for s := range sessions {
		for i := range perSession {
			session := "user-" + strconv.Itoa(s)
			id := strconv.Itoa(1000 + s*perSession + i)
			srv.SetOwner(appID, session, id)
			wg.Go(func() {
				ans, err := tryMint(srv, clk, session, defaultBody)
				if err != nil {
					errs <- err.Error()
					return
				}
				if res, err := tryDelete(srv, ans.AccessToken, id); err != nil || res.Class != coze.ClassDeleted {
					errs <- fmt.Sprintf("%s deletes %s: %s %v", session, id, res.Class, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if srv.TotalMints() != sessions*perSession || srv.Mints(appID, "user-0") != perSession || len(srv.MintCounts()) != sessions {
		t.Errorf("mints %v", srv.MintCounts())
	}
}
