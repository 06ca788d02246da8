package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coze-eraser/coze-eraser/httpapi"
)

// SessionLifetime is how long a sign-in lasts.
const SessionLifetime = 12 * time.Hour

// cookieName is the session cookie's name.
const cookieName = "coze_eraser_session"

// maxForm bounds a form's body: a secret, a note, a token.
const maxForm = 16 << 10

// viewer is who looks at a page: the key, and the CSRF token its forms
// carry (empty for a request signed with a bearer header, which no other
// site can make a browser send).
type viewer struct {
	Key  httpapi.Key
	CSRF string
}

// CanWrite reports whether the viewer may change batches.
func (v viewer) CanWrite() bool { return v.Key.Can(httpapi.ScopeWrite) }

// sign is the MAC of parts under the console's signing key, in hex.
func (c *Console) sign(parts ...string) string {
	mac := hmac.New(sha256.New, c.signing)
	for _, p := range parts {
		mac.Write([]byte(p))
		mac.Write([]byte{0})
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// sessionValue is the cookie of key k until expires: its name, the expiry
// and their MAC, bound to the key's secret by its fingerprint, so that a
// key given a new secret ends the old sessions.
func (c *Console) sessionValue(k httpapi.Key, expires time.Time) string {
	name := base64.RawURLEncoding.EncodeToString([]byte(k.Name))
	exp := strconv.FormatInt(expires.Unix(), 10)
	return name + "." + exp + "." + c.sign("session", name, exp, k.Fingerprint())
}

// session returns the key of a valid session cookie value.
func (c *Console) session(value string) (httpapi.Key, bool) {
	name, rest, ok1 := strings.Cut(value, ".")
	exp, mac, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return httpapi.Key{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(name)
	if err != nil {
		return httpapi.Key{}, false
	}
	k, found := c.cfg.Keys.Lookup(string(raw))
	if !found {
		return httpapi.Key{}, false
	}
	want := c.sign("session", name, exp, k.Fingerprint())
	if subtle.ConstantTimeCompare([]byte(mac), []byte(want)) != 1 {
		return httpapi.Key{}, false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !c.cfg.Now().Before(time.Unix(unix, 0)) {
		return httpapi.Key{}, false
	}
	return k, true
}

// csrfToken is the token of the forms of a session: a MAC of its cookie.
func (c *Console) csrfToken(cookie string) string { return c.sign("csrf", cookie)[:32] }

// signedIn admits the requests of a key with scope: a session cookie, or
// an "Authorization: Bearer" header as the API takes. A page without one
// sends the browser to the sign-in form; a form posted without its CSRF
// token, or from another site, is refused.
func (c *Console) signedIn(scope httpapi.Scope, h func(http.ResponseWriter, *http.Request, viewer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		if !safe {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		v, ok := c.viewer(r)
		switch {
		case !ok && safe:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		case !ok:
			c.render(w, r, http.StatusUnauthorized, "error", nil, errorPage{Title: "Signed out",
				Message: "Your sign-in ended (or the console restarted): sign in again, then repeat the action."})
			return
		case !safe && !c.sameOrigin(r):
			c.render(w, r, http.StatusForbidden, "error", nil, errorPage{Title: "Refused",
				Message: "This form was sent from another site."})
			return
		case !safe && v.CSRF != "" && !c.validCSRF(r, v):
			c.render(w, r, http.StatusForbidden, "error", nil, errorPage{Title: "Refused",
				Message: "The form's token is missing or stale: reload the page and try again."})
			return
		case !v.Key.Can(scope):
			c.render(w, r, http.StatusForbidden, "error", &v, errorPage{Title: "Read-only key",
				Message: "Key " + v.Key.Name + " may read but not change batches: sign in with a key of scope read,write."})
			return
		}
		h(w, r, v)
	})
}

// viewer finds who sends r.
func (c *Console) viewer(r *http.Request) (viewer, bool) {
	if r.Header.Get("Authorization") != "" {
		k, err := c.cfg.Keys.Authenticate(r)
		return viewer{Key: k}, err == nil
	}
	cookie, err := r.Cookie(cookieName)
	if err != nil {
		return viewer{}, false
	}
	k, ok := c.session(cookie.Value)
	return viewer{Key: k, CSRF: c.csrfToken(cookie.Value)}, ok
}

// validCSRF checks the form's token against the session's.
func (c *Console) validCSRF(r *http.Request, v viewer) bool {
	got := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(got), []byte(v.CSRF)) == 1
}

// sameOrigin refuses a form another site made the browser send: by the
// Fetch metadata a modern browser adds, else by Origin. ("Origin: null",
// which a sandboxed frame of any site sends, is not this console's; the
// console's Referrer-Policy keeps its own forms from sending it.)
func (c *Console) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-site form: those carry one
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// loginPage shows the sign-in form.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", nil, loginForm{Next: localPath(r.URL.Query().Get("next"))})
}

// login signs a key in: a session cookie, then back to the page asked for.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(r) {
		c.render(w, r, http.StatusForbidden, "error", nil, errorPage{Title: "Refused", Message: "This form was sent from another site."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	next := localPath(r.PostFormValue("next"))
	k, err := c.cfg.Keys.Check(r.PostFormValue("secret"))
	if err != nil {
		c.render(w, r, http.StatusUnauthorized, "login", nil, loginForm{Next: next,
			Error: "That is not the secret of a key of this console (coze-eraser api-key new makes one)."})
		return
	}
	expires := c.cfg.Now().Add(SessionLifetime)
	//nolint:gosec // G124: Secure whenever the browser came over TLS (secureRequest); a loopback console is plain HTTP
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: c.sessionValue(k, expires), Path: "/", Expires: expires,
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // G710: next is a local path (localPath)
}

// logout ends the browser's session: its cookie is cleared. (The cookie
// is not recorded anywhere: a copy of it stays valid until it expires.)
// Like every form, it must come from the console's own page.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if v, ok := c.viewer(r); !c.sameOrigin(r) || ok && v.CSRF != "" && !c.validCSRF(r, v) {
		c.render(w, r, http.StatusForbidden, "error", nil, errorPage{Title: "Refused", Message: "This form was sent from another site."})
		return
	}
	//nolint:gosec // G124: as login's
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: secureRequest(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// secureRequest reports whether the browser reached the console over
// TLS: directly, or through a proxy in front that says so. The session
// cookie is Secure then, so that it never travels in clear.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// localPath is next when it is a path of this console, "/" otherwise: the
// sign-in form must not send the browser to another site. Control bytes
// are refused outright: a browser drops a tab from a URL, so "/\t/evil"
// would reach it as "//evil", another site.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/"
	}
	for _, c := range []byte(next) {
		if c < 0x20 || c == 0x7f {
			return "/"
		}
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}
