package console_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/console"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/fleet"
	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/internal/asynqwire"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// bundle is a console on a fresh Redis, with a read key and a write key.
type bundle struct {
	t           *testing.T
	rdb         *redis.Client
	ledger      *ledger.Ledger
	url         string
	read, write string
	now         time.Time
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{t: t, rdb: redistest.Start(t).Client(), now: time.Now()}
	b.ledger = ledger.New(b.rdb)
	var lines []string
	for _, k := range []struct {
		name   string
		scopes []httpapi.Scope
		secret *string
	}{{"ops-reader", []httpapi.Scope{httpapi.ScopeRead}, &b.read}, {"ops-writer", []httpapi.Scope{httpapi.ScopeRead, httpapi.ScopeWrite}, &b.write}} {
		secret, line, err := httpapi.NewSecret(k.name, k.scopes)
		if err != nil {
			t.Fatal(err)
		}
		*k.secret = secret
		lines = append(lines, line)
	}
	keys, err := httpapi.ParseKeys(strings.NewReader(strings.Join(lines, "\n")), "keys")
	if err != nil {
		t.Fatal(err)
	}
	c, err := console.New(console.Config{Redis: b.rdb, Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return b.now }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(c.Handler())
	t.Cleanup(ts.Close)
	b.url = ts.URL
	return b
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that each answer can be checked.
func (b *bundle) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signIn signs client in with secret and checks the cookie it gets.
func (b *bundle) signIn(client *http.Client, secret string) {
	b.t.Helper()
	resp, err := client.PostForm(b.url+"/login", url.Values{"secret": {secret}, "next": {"/"}})
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		b.t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	set := resp.Header.Get("Set-Cookie")
	if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") || strings.Contains(set, secret) {
		b.t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, and no secret", set)
	}
}

// get fetches path with client and returns the status and page.
func (b *bundle) get(client *http.Client, path string, header ...string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.url+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends a form with client.
func (b *bundle) post(client *http.Client, path string, form url.Values, header ...string) (int, string, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// batch queues n ids in batch name.
func (b *bundle) batch(name string, n int, opts ...enqueue.Option) {
	b.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.FormatInt(7379996104798150001+int64(i), 10)
	}
	if _, err := enqueue.NewClient(b.rdb).EnqueueAll(context.Background(), slices.Values(ids), append(opts, enqueue.Batch(name))...); err != nil {
		b.t.Fatal(err)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// field reads the number in the element of data-field name after the
// batch's row or heading.
func field(page, batch, name string) string {
	i := strings.Index(page, `data-batch="`+batch+`"`)
	if i < 0 {
		return ""
	}
	m := regexp.MustCompile(`data-field="` + name + `"[^>]*>([^<]*)<`).FindStringSubmatch(page[i:])
	if m == nil {
		return ""
	}
	return m[1]
}

// queueFields reads the data-field numbers of queue's row on the queues
// page.
func queueFields(page, queue string) map[string]string {
	out := map[string]string{}
	i := strings.Index(page, `data-queue="`+queue+`"`)
	if i < 0 {
		return out
	}
	row := page[i:]
	if end := strings.Index(row, "</tr>"); end >= 0 {
		row = row[:end]
	}
	for _, m := range regexp.MustCompile(`data-field="(\w+)"[^>]*>(\d+)<`).FindAllStringSubmatch(row, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestSignIn: pages need a key; the sign-in form takes a secret and gives
// a cookie that names the key, never holds the secret, and stops working
// when tampered with or old; it sends only to this console's pages.
func TestSignIn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.batch("dsr-1", 40, enqueue.Note("DSR-1"))
	client := b.browser()
	if code, _ := b.get(client, "/"); code != http.StatusSeeOther {
		t.Errorf("signed out: %d, want a redirect to the sign-in form", code)
	}
	code, _, page := b.post(client, "/login", url.Values{"secret": {"cze_wrong"}})
	if code != http.StatusUnauthorized || !strings.Contains(page, "not the secret of a key") || strings.Contains(page, "cze_wrong") {
		t.Errorf("wrong secret: %d, page says %q", code, regexp.MustCompile(`role="alert">[^<]*`).FindString(page))
	}
	b.signIn(client, b.read)
	code, page = b.get(client, "/")
	if code != http.StatusOK || field(page, "dsr-1", "total") != "40" || field(page, "dsr-1", "pending") != "40" ||
		!strings.Contains(page, "ops-reader") || !strings.Contains(page, "read only") || strings.Contains(page, b.read) {
		t.Errorf("front page: %d, total %q pending %q", code, field(page, "dsr-1", "total"), field(page, "dsr-1", "pending"))
	}
	resp, err := client.Get(b.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s: %q, want %q", h, resp.Header.Get(h), want)
		}
	}

	u, _ := url.Parse(b.url)
	cookie := client.Jar.Cookies(u)[0]
	tampered := b.browser()
	forged := *cookie                                                                                          //nolint:gosec // G124: a copy of the console's own cookie, renamed
	forged.Value = strings.Replace(cookie.Value, strings.SplitN(cookie.Value, ".", 2)[0], "b3BzLXdyaXRlcg", 1) // "ops-writer"
	tampered.Jar.SetCookies(u, []*http.Cookie{&forged})
	if code, _ := b.get(tampered, "/"); code != http.StatusSeeOther {
		t.Errorf("a cookie renamed to another key: %d, want the sign-in form", code)
	}
	b.now = b.now.Add(console.SessionLifetime + time.Minute)
	if code, _ := b.get(client, "/"); code != http.StatusSeeOther {
		t.Errorf("a session past its lifetime: %d, want the sign-in form", code)
	}

	for next, want := range map[string]string{"//evil.example/x": "/", "https://evil.example": "/", "/\\evil": "/", "/\t/evil.example": "/",
		"/\v/evil.example": "/", "/%09/evil.example": "/%09/evil.example", "/batches/dsr-1": "/batches/dsr-1"} {
		code, loc, _ := b.post(b.browser(), "/login", url.Values{"secret": {b.read}, "next": {next}})
		if code != http.StatusSeeOther || loc != want {
			t.Errorf("next %q: %d to %q, want %q", next, code, loc, want)
		}
	}
	if code, _ := b.get(b.browser(), "/", "Authorization", "Bearer "+b.read); code != http.StatusOK {
		t.Errorf("a bearer header: %d", code)
	}
	req, _ := http.NewRequest(http.MethodHead, b.url+"/", nil)
	resp, err = b.browser().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("HEAD signed out: %d, want the sign-in redirect", resp.StatusCode)
	}
	if code, _ := b.get(b.browser(), "/static/"); code != http.StatusNotFound {
		t.Errorf("/static/: %d, want no listing", code)
	}

	signedIn := b.browser()
	b.signIn(signedIn, b.read)
	if code, _, _ := b.post(signedIn, "/logout", nil, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("sign-out from another site: %d", code)
	}
	if code, _ := b.get(signedIn, "/"); code != http.StatusOK {
		t.Errorf("after a refused sign-out: %d, want still signed in", code)
	}
	_, page = b.get(signedIn, "/")
	token := csrfField.FindStringSubmatch(page)[1]
	if code, loc, _ := b.post(signedIn, "/logout", url.Values{"csrf": {token}}); code != http.StatusSeeOther || loc != "/login" {
		t.Errorf("sign-out: %d to %q", code, loc)
	}
	if code, _ := b.get(signedIn, "/"); code != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want the sign-in form", code)
	}
}

// TestActions: a read key cannot change a batch; a write key's form needs
// its CSRF token and this console as its origin; cancel, pause, resume and
// retry do what the CLI does.
func TestActions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.batch("bulk-7", 25)
	reader, writer := b.browser(), b.browser()
	b.signIn(reader, b.read)
	b.signIn(writer, b.write)

	_, page := b.get(reader, "/batches/bulk-7")
	if strings.Contains(page, `action="/batches/bulk-7/cancel"`) {
		t.Error("a read key's page offers the cancel form")
	}
	token := csrfField.FindStringSubmatch(page)[1] // the sign-out form's
	if code, _, page := b.post(reader, "/batches/bulk-7/cancel", url.Values{"csrf": {token}}); code != http.StatusForbidden || !strings.Contains(page, "Read-only key") {
		t.Errorf("cancel with a read key: %d", code)
	}
	_, page = b.get(writer, "/batches/bulk-7")
	if !strings.Contains(page, `action="/batches/bulk-7/cancel"`) {
		t.Fatal("a write key's page has no cancel form")
	}
	token = csrfField.FindStringSubmatch(page)[1]
	if code, _, _ := b.post(writer, "/batches/bulk-7/cancel", url.Values{}); code != http.StatusForbidden {
		t.Errorf("cancel without the CSRF token: %d", code)
	}
	if code, _, _ := b.post(writer, "/batches/bulk-7/cancel", url.Values{"csrf": {token}}, "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("cancel from another site: %d", code)
	}
	if code, _, _ := b.post(writer, "/batches/bulk-7/cancel", url.Values{"csrf": {token}}, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("cancel from another site (fetch metadata): %d", code)
	}
	if code, _, _ := b.post(writer, "/batches/bulk-7/cancel", url.Values{"csrf": {token}}, "Origin", "null"); code != http.StatusForbidden {
		t.Errorf("cancel from a sandboxed frame (Origin: null): %d", code)
	}
	if bt, _, _ := b.ledger.Batch(context.Background(), "bulk-7"); bt.Cancelled != 0 || bt.Control != ledger.ControlRunning {
		t.Fatalf("refused forms changed the batch: %+v", bt)
	}

	if code, loc, _ := b.post(writer, "/batches/bulk-7/pause", url.Values{"csrf": {token}}); code != http.StatusSeeOther || loc != "/batches/bulk-7?done=pause" {
		t.Errorf("pause: %d to %q", code, loc)
	}
	_, page = b.get(writer, "/batches/bulk-7?done=pause")
	if field(page, "bulk-7", "state") != "paused" || !strings.Contains(page, "Paused: the batch") {
		t.Errorf("after pause: state %q", field(page, "bulk-7", "state"))
	}
	if code, _, _ := b.post(writer, "/batches/bulk-7/pause", url.Values{"csrf": {token}}); code != http.StatusConflict {
		t.Errorf("pause twice: %d, want 409", code)
	}
	if code, _, _ := b.post(writer, "/batches/bulk-7/resume", url.Values{"csrf": {token}}); code != http.StatusSeeOther {
		t.Errorf("resume: %d", code)
	}
	if code, _, _ := b.post(writer, "/batches/bulk-7/cancel", url.Values{"csrf": {token}, "note": {"duplicate of bulk-6"}}); code != http.StatusSeeOther {
		t.Errorf("cancel: %d", code)
	}
	bt, _, _ := b.ledger.Batch(context.Background(), "bulk-7")
	if bt.Cancelled != 25 || bt.Control != ledger.ControlCancelled {
		t.Errorf("after cancel: cancelled %d control %q", bt.Cancelled, bt.Control)
	}
	if n, _ := b.rdb.LLen(context.Background(), asynqwire.StateKey("default", "pending")).Result(); n != 0 {
		t.Errorf("after cancel: %d tasks still queued", n)
	}
	_, page = b.get(writer, "/batches/bulk-7")
	if field(page, "bulk-7", "cancelled") != "25" || field(page, "bulk-7", "pending") != "0" || !strings.Contains(page, "duplicate of bulk-6") {
		t.Errorf("cancelled page: cancelled %q pending %q", field(page, "bulk-7", "cancelled"), field(page, "bulk-7", "pending"))
	}
	if code, _, _ := b.post(writer, "/batches/nope/cancel", url.Values{"csrf": {token}}); code != http.StatusNotFound {
		t.Errorf("cancel a missing batch: %d", code)
	}
	if code, _, _ := b.post(writer, "/batches/bulk-7/explode", url.Values{"csrf": {token}}); code != http.StatusNotFound {
		t.Errorf("an unknown action: %d", code)
	}
	b.batch("bulk-8", 3)
	if code, _, _ := b.post(b.browser(), "/batches/bulk-8/pause", nil, "Authorization", "Bearer "+b.write); code != http.StatusSeeOther {
		t.Errorf("pause with a bearer header and no form token: %d", code)
	}
	code, body := b.get(writer, "/batches/bulk-7/report.csv")
	if code != http.StatusOK || !strings.HasPrefix(body, "# batch: bulk-7") || strings.Count(body, ",cancelled,") != 25 {
		t.Errorf("report download: %d %.80q", code, body)
	}
}

// TestHostileText: text a user or the API wrote reaches the page escaped.
func TestHostileText(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.batch("x-1", 2, enqueue.Note(`<script>alert(1)</script> "quoted" <img src=x onerror=alert(2)>`))
	client := b.browser()
	b.signIn(client, b.read)
	for _, path := range []string{"/", "/batches/x-1"} {
		_, page := b.get(client, path)
		if strings.Contains(page, "<script>") || strings.Contains(page, "<img src=x") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the note is not escaped", path)
		}
	}
	if code, page := b.get(client, "/batches/%3Cscript%3E"); code != http.StatusNotFound || strings.Contains(page, "<script>") {
		t.Errorf("a hostile batch name: %d", code)
	}
}

// TestQueuesAndProfiles: the queues page shows depth and who serves a
// queue; the profiles page shows what the workers report.
func TestQueuesAndProfiles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.batch("bulk-1", 12, enqueue.Queue("bulk"))
	since := b.now.Add(-12 * time.Minute)
	pushback := b.now.Add(-20 * time.Second)
	err := fleet.Publish(context.Background(), b.rdb, ledger.DefaultPrefix, fleet.Report{Instance: "host-1-ab", Host: "host", PID: 1,
		Queues: map[string]int{"default": 1}, Concurrency: 10, Started: b.now, At: b.now, Profiles: []fleet.Profile{
			{Name: "app-eu", AuthPaused: true, AuthPausedSince: &since, ConfiguredRate: 60, EffectiveRate: 60},
			{Name: "app-us", ConfiguredRate: 100, EffectiveRate: 42.5, LastPushback: &pushback, Waiting: 3},
		}})
	if err != nil {
		t.Fatal(err)
	}
	client := b.browser()
	b.signIn(client, b.read)
	_, page := b.get(client, "/queues")
	if !strings.Contains(page, `data-queue="bulk"`) || !strings.Contains(page, "no live worker") || !strings.Contains(page, "default:1") {
		t.Errorf("queues page lacks the bulk queue, its unserved warning, or the worker")
	}
	// bulk's 12 ids wait in the ledger, unknown to asynq until fed: they
	// are its depth all the same; fed as tasks, they are still its depth.
	if got := queueFields(page, "bulk"); got["size"] != "12" || got["unfed"] != "12" || got["pending"] != "0" {
		t.Errorf("bulk before feeding: %v, want depth 12, all 12 waiting to be fed", got)
	}
	if _, err := enqueue.NewClient(b.rdb).Feed(context.Background(), "bulk", 1<<30); err != nil {
		t.Fatal(err)
	}
	_, page = b.get(client, "/queues")
	if got := queueFields(page, "bulk"); got["size"] != "12" || got["unfed"] != "0" || got["pending"] != "12" || !strings.Contains(page, "no live worker") {
		t.Errorf("bulk once fed: %v, want depth 12, all 12 pending, and its unserved warning", got)
	}
	_, page = b.get(client, "/profiles")
	if !regexp.MustCompile(`data-profile="app-eu"[\s\S]*?paused for 12m`).MatchString(page) ||
		!regexp.MustCompile(`data-profile="app-us"[\s\S]*?42.5/s[\s\S]*?20s ago`).MatchString(page) {
		t.Errorf("profiles page does not show app-eu paused for 12m and app-us at 42.5/s")
	}
	if err := fleet.Withdraw(context.Background(), b.rdb, ledger.DefaultPrefix, "host-1-ab"); err != nil {
		t.Fatal(err)
	}
	if _, page = b.get(client, "/profiles"); !strings.Contains(page, "No worker reported") {
		t.Error("a withdrawn worker is still shown")
	}
}

// TestListingsShown: a batch's discovery and verification listings are on
// its page, with the API's error text escaped.
func TestListingsShown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.batch("dsr-9", 3)
	for _, li := range []ledger.Listing{
		{Phase: ledger.ListingDiscovery, BotID: "7300000000000000001", ConnectorID: "1024", Pages: 3, Found: 120, LogIDs: []string{"20261204A"}, At: b.now},
		{Phase: ledger.ListingVerification, Round: 1, BotID: "7300000000000000001", ConnectorID: "1024", Pages: 1, Found: 0,
			LogIDs: []string{"20261204B"}, At: b.now, Error: `<b>upstream</b> said "no"`},
	} {
		if err := b.ledger.RecordListing(context.Background(), "dsr-9", li); err != nil {
			t.Fatal(err)
		}
	}
	client := b.browser()
	b.signIn(client, b.read)
	_, page := b.get(client, "/batches/dsr-9")
	discovery := strings.Index(page, "<h2>Discovery</h2>")
	if discovery < 0 || !strings.Contains(page[discovery:], "7300000000000000001") || !strings.Contains(page[discovery:], ">120<") {
		t.Error("the discovery listing is not on the page")
	}
	if !strings.Contains(page, "&lt;b&gt;upstream&lt;/b&gt; said &#34;no&#34;") || strings.Contains(page, "<b>upstream") {
		t.Error("the verification listing's error is not on the page, escaped")
	}
}
