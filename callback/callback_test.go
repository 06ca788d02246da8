package callback_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/callback"
	"github.com/coze-eraser/coze-eraser/internal/logbuf"
)

// receiver is an httptest server that records what reaches it.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // "METHOD body"
}

func newReceiver(t *testing.T, answer http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+string(body))
		r.mu.Unlock()
		answer(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

func delivery(u string) callback.Delivery {
	return callback.Delivery{URL: u, Summary: callback.Summary{Batch: "gdpr-7", Completion: 1, Total: 3, Deleted: 3}}
}

// TestSendRefusesRedirects: a 302 must not become a bodiless GET counted as
// delivered, and a 307 must not carry the body and signature elsewhere,
// whether the Sender uses its own client or the caller's (which follows
// redirects by default). The delivery fails and says where it was sent.
func TestSendRefusesRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, client := range []struct {
			name string
			c    *http.Client
		}{{"default client", nil}, {"caller's client", &http.Client{Timeout: 5 * time.Second}}} {
			t.Run(http.StatusText(status)+"/"+client.name, func(t *testing.T) {
				t.Parallel()
				target := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
				from := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, target.URL+"/elsewhere?token=t0ps3cret", status)
				})
				s := &callback.Sender{Client: client.c, Secret: []byte("k"), Logger: slog.New(slog.DiscardHandler)}
				err := s.Send(context.Background(), delivery(from.URL+"/hook"))
				if got := target.got(); len(got) != 0 {
					t.Errorf("the redirect target received %q", got)
				}
				if len(from.got()) != 1 {
					t.Errorf("the receiver got %d requests, want 1", len(from.got()))
				}
				if err == nil {
					t.Fatal("a redirect was counted as delivered")
				}
				host := strings.TrimPrefix(target.URL, "http://")
				if msg := err.Error(); !strings.Contains(msg, "redirect") || !strings.Contains(msg, host) || strings.Contains(msg, "t0ps3cret") || strings.Contains(msg, "elsewhere") {
					t.Errorf("error %q: want it to say the receiver redirected to %s, and nothing of the target's path or query", msg, host)
				}
			})
		}
	}
	// The caller's client is left as it was: other users of it still
	// follow redirects.
	c := &http.Client{}
	_ = (&callback.Sender{Client: c, Logger: slog.New(slog.DiscardHandler)}).Send(context.Background(), delivery("http://127.0.0.1:1/"))
	if c.CheckRedirect != nil {
		t.Error("Send changed the caller's client")
	}
}

// TestSendErrorsHideCredentials: whatever goes wrong, the error never
// holds the URL's userinfo or query; asynq stores it in Redis and shows it.
func TestSendErrorsHideCredentials(t *testing.T) {
	t.Parallel()
	failing := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	})
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL, _ := url.Parse(dead.URL)
	dead.Close()
	withUser := func(raw string) string {
		return strings.Replace(raw, "http://", "http://alice:hunter2@", 1) + "/hook?token=qs3cret"
	}
	for name, u := range map[string]string{
		"HTTP 500":           withUser(failing.URL),
		"connection refused": withUser("http://" + deadURL.Host),
		"invalid port":       "http://alice:hunter2@127.0.0.1:99999/hook?token=qs3cret",
		"bad escape":         "http://alice:hunter2@127.0.0.1:1/%zz?token=qs3cret",
		"control character":  "http://alice:hunter2@127.0.0.1:1/a\nb?token=qs3cret",
	} {
		var logs logbuf.Buffer
		s := &callback.Sender{Client: &http.Client{Timeout: 5 * time.Second}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		err := s.Send(context.Background(), delivery(u))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for what, text := range map[string]string{"error": err.Error(), "log": logs.String()} {
			if strings.Contains(text, "hunter2") || strings.Contains(text, "alice") || strings.Contains(text, "qs3cret") {
				t.Errorf("%s: the %s shows a credential: %q", name, what, text)
			}
		}
		if !strings.Contains(logs.String(), "callback delivery failed") {
			t.Errorf("%s: no log line: %q", name, logs.String())
		}
	}
}

// TestSendTimeoutIsLoggedAndCounted: a receiver that answers after the
// client's timeout is a failed delivery, logged with the batch, the
// attempt, the reason and the URL without its query, and reported to
// OnResult as a timeout; one that answers 2xx in time is reported as
// delivered and not logged.
func TestSendTimeoutIsLoggedAndCounted(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	var logs logbuf.Buffer
	var mu sync.Mutex
	counts := map[callback.Outcome]int{}
	s := &callback.Sender{
		Client:   &http.Client{Timeout: 50 * time.Millisecond},
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		OnResult: func(o callback.Outcome) { mu.Lock(); counts[o]++; mu.Unlock() },
	}
	err := s.Send(context.Background(), delivery(slow.URL+"/hook?token=qs3cret"))
	if err == nil {
		t.Fatal("an answer after the timeout was counted as delivered")
	}
	line := logs.String()
	for _, want := range []string{"level=WARN", "callback delivery failed", "batch=gdpr-7", "attempt=1", "reason=timeout",
		"url=" + slow.URL + "/hook?… "} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "qs3cret") || strings.Contains(err.Error(), "qs3cret") {
		t.Errorf("the query is shown: %q / %q", line, err)
	}

	ok := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	logs = logbuf.Buffer{}
	if err := s.Send(context.Background(), delivery(ok.URL)); err != nil {
		t.Fatalf("delivery to a 204 receiver: %v", err)
	}
	if logs.String() != "" {
		t.Errorf("a delivered callback was logged: %q", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if counts[callback.OutcomeTimeout] != 1 || counts[callback.OutcomeDelivered] != 1 || len(counts) != 2 {
		t.Errorf("outcomes %v, want one timeout and one delivered", counts)
	}
}

// TestSendReportsEachFailureKind: every way a delivery fails maps to its
// own bounded outcome.
func TestSendReportsEachFailureKind(t *testing.T) {
	t.Parallel()
	status := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	redirect := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusMovedPermanently) })
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		ctx  context.Context
		url  string
		want callback.Outcome
		msg  string
	}{
		{context.Background(), status.URL, callback.OutcomeHTTPStatus, "HTTP 502"},
		{context.Background(), redirect.URL, callback.OutcomeRedirect, "without a Location"},
		{context.Background(), dead.URL, callback.OutcomeConnection, "connection refused"},
		{context.Background(), "http://127.0.0.1:1/%zz", callback.OutcomeInvalid, "invalid URL"},
		{canceled, status.URL, callback.OutcomeCanceled, "canceled"},
	} {
		var got callback.Outcome
		s := &callback.Sender{Logger: slog.New(slog.DiscardHandler), OnResult: func(o callback.Outcome) { got = o }}
		err := s.Send(tt.ctx, delivery(tt.url))
		if got != tt.want || err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: outcome %q, error %v; want %q and an error containing %q", tt.url, got, err, tt.want, tt.msg)
		}
	}
}

// TestValidateURL: the extremes of a callback URL.
func TestValidateURL(t *testing.T) {
	t.Parallel()
	long := "https://example.com/" + strings.Repeat("a", callback.MaxURLLength)
	for _, tt := range []struct {
		url  string
		want string // "" when valid
	}{
		{"https://example.com/hooks/erasure", ""},
		{"http://127.0.0.1:8080/cb?token=abc", ""},
		{"http://[::1]:65535/", ""},
		{"https://example.com:1", ""},
		{"https://example.com/" + strings.Repeat("a", callback.MaxURLLength-len("https://example.com/")), ""},
		{"", "must not be empty"},
		{"http://example.com:0/", `port "0": must be a number from 1 to 65535`},
		{"http://example.com:65536/", `port "65536"`},
		{"http://example.com:99999/", `port "99999"`},
		{"http://example.com:/", `port ""`},
		{"http://example.com:8o/", "not a valid URL"},
		{"http:///hook", "has no host"},
		{"http://:80/", "has no host"},
		{"http://alice:hunter2@example.com/", "user name or password"},
		{"http://alice@example.com/", "user name or password"},
		{"javascript:alert(1)", `scheme "javascript"`},
		{"file:///etc/passwd", `scheme "file"`},
		{"ftp://example.com/", `scheme "ftp"`},
		{"/relative", `scheme ""`},
		{"example.com/hook", `scheme ""`},
		{"http:example.com", "absolute URL"},
		{long, "at most 2048"},
		{"https://example.com/a\nb", "control characters"},
		{"https://example.com/a b", "spaces"},
		{"https://example.com/\x7f", "control characters"},
		{"https://example.com/hook#frag", "fragment"},
	} {
		err := callback.ValidateURL(tt.url)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%.60q: %v", tt.url, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%.60q: %v, want an error containing %q", tt.url, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%.60q: the error shows the password: %v", tt.url, err)
		}
	}
}

// TestRedact: no userinfo, query or fragment survives, parsable or not.
func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://example.com/hook":                     "https://example.com/hook",
		"https://alice:hunter2@example.com:8443/h?t=s": "https://example.com:8443/h?…",
		"https://example.com/h#frag":                   "https://example.com/h?…",
		"http://alice:hunter2@127.0.0.1:1/%zz?t=s":     "http://127.0.0.1:1/%zz?…",
		"http://alice:hun@ter2@127.0.0.1:1/a\nb?t=s":   "http://127.0.0.1:1/a?b?…",
		"alice:hunter2@example.com/hook":               "example.com/hook",
	} {
		if got := callback.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
