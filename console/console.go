// Package console is coze-eraser's web console: the batches with their
// progress, due times, rate and ETA; one batch's tallies, failures,
// discovery, verification, history and proof of erasure; the queues and
// the workers serving them; and each profile's auth pause and rate. It is
// served by the process that serves the HTTP API (package httpapi), at /,
// with the same keys: a read key reads, a write key may also cancel,
// pause, resume and retry a batch's failures.
//
// The pages are rendered on the server (html/template), refresh
// themselves, and need no JavaScript. A browser signs in once with a key's
// secret and gets a signed cookie (HttpOnly, SameSite=Strict) that names
// the key, never holds the secret, and lasts [SessionLifetime]; every form
// that changes something carries a CSRF token bound to that cookie.
package console

import (
	"crypto/rand"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/ledger"
)

// DefaultRefresh is how often a page reloads itself.
const DefaultRefresh = 5 * time.Second

// MaxBatches bounds the batches the front page lists, newest first (the
// batches Redis lost are listed before them, all of them).
const MaxBatches = 200

// MaxFailures bounds the failures one batch's page lists; the report
// download has them all.
const MaxFailures = 100

// Config configures a [Console].
type Config struct {
	// Redis holds the queues and the ledger; Ledger is the ledger in it
	// (default ledger.New(Redis)).
	Redis  redis.UniversalClient
	Ledger *ledger.Ledger
	// Keys admit the users, as they admit the API's clients; required.
	Keys *httpapi.Keys
	// Refresh is how often a page reloads itself (default
	// [DefaultRefresh]; negative: never).
	Refresh time.Duration
	// Logger receives a line per failed page or action (default
	// slog.Default()). Secrets, session names and ids never reach it.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the web console.
type Console struct {
	cfg       Config
	enqueue   *enqueue.Client
	inspector *asynq.Inspector
	// signing signs the session cookies and CSRF tokens. It is made at
	// start: a restart signs everyone out, and no secret is stored.
	signing []byte
	pages   map[string]*template.Template
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns a console.
func New(cfg Config) (*Console, error) {
	if cfg.Redis == nil || cfg.Keys == nil {
		return nil, errors.New("console: Config.Redis and Config.Keys are required")
	}
	if cfg.Ledger == nil {
		cfg.Ledger = ledger.New(cfg.Redis)
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	signing := make([]byte, 32)
	_, _ = rand.Read(signing) // never fails (crypto/rand)
	return &Console{cfg: cfg, enqueue: enqueue.NewClient(cfg.Redis, enqueue.WithLedger(cfg.Ledger), enqueue.WithClock(cfg.Now)),
		inspector: asynq.NewInspectorFromRedisClient(cfg.Redis), signing: signing, pages: pages}, nil
}

// Handler returns the console's routes. Mount it at "/" beside the API's
// /v1/ routes.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/console.css", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, staticFS, "static/console.css")
	})
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.Handle("GET /{$}", c.signedIn(httpapi.ScopeRead, c.batchesPage))
	mux.Handle("GET /batches/{name}", c.signedIn(httpapi.ScopeRead, c.batchPage))
	mux.Handle("GET /batches/{name}/report.csv", c.signedIn(httpapi.ScopeRead, c.reportDownload("csv")))
	mux.Handle("GET /batches/{name}/report.jsonl", c.signedIn(httpapi.ScopeRead, c.reportDownload("jsonl")))
	mux.Handle("POST /batches/{name}/{action}", c.signedIn(httpapi.ScopeWrite, c.act))
	mux.Handle("GET /queues", c.signedIn(httpapi.ScopeRead, c.queuesPage))
	mux.Handle("GET /profiles", c.signedIn(httpapi.ScopeRead, c.profilesPage))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", nil, errorPage{Title: "Not found", Message: "There is no page here."})
	})
	return secureHeaders(mux)
}

// secureHeaders sets the headers every answer carries: no script, no
// framing, no caching of pages that show batches, no referrer to
// other sites.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin") // not no-referrer: a browser then sends "Origin: null" with the forms
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
