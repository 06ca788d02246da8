package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/console"
	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/worker"
)

// defaultAPIAddr is --api-addr's default: loopback only.
const defaultAPIAddr = "127.0.0.1:9465"

// apiFlags are the HTTP API's, shared by serve and worker.
type apiFlags struct {
	addr    string
	keys    string
	refresh time.Duration
}

func (f *apiFlags) register(cmd *cobra.Command, addrDefault string) {
	cmd.Flags().StringVar(&f.addr, "api-addr", addrDefault, "address of the HTTP API for erasure requests (127.0.0.1 by default: put TLS in front to expose it)")
	cmd.Flags().StringVar(&f.keys, "api-keys", "", "the API keys file: one 'NAME SCOPES SHA256HEX' a line (coze-eraser api-key new)")
	cmd.Flags().DurationVar(&f.refresh, "console-refresh", console.DefaultRefresh, "how often the web console's pages (at / of --api-addr) reload themselves; 0: never")
}

// load reads the keys file and opens the listener, before any wait for
// Redis: a bad flag is reported at once. It returns nil without an address.
func (f *apiFlags) load() (*apiListener, error) {
	if f.addr == "" {
		return nil, nil
	}
	if f.keys == "" {
		return nil, setupError("--api-keys is required with --api-addr: make a key with 'coze-eraser api-key new NAME --scope read,write'")
	}
	keys, err := httpapi.LoadKeys(f.keys)
	if err != nil {
		return nil, setupError("--api-keys: %v", err)
	}
	ln, err := net.Listen("tcp", f.addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, setupError("--api-addr %s: address already in use: stop what listens there, or give another address", f.addr)
	case err != nil:
		return nil, setupError("--api-addr: %v", err)
	}
	refresh := f.refresh
	if refresh <= 0 {
		refresh = -1 // console.Config: never
	}
	return &apiListener{keys: keys, ln: ln, refresh: refresh}, nil
}

// apiListener is the HTTP API, ready to serve once Redis is there.
type apiListener struct {
	keys    *httpapi.Keys
	ln      net.Listener
	refresh time.Duration // the console's
	// ledger is the one the API writes to (with --redis-replicas, its
	// writes wait for them); nil: ledger.New.
	ledger *ledger.Ledger
	// sessions list as the profiles' sessions for subject requests; nil
	// refuses them (apisubjects.go).
	sessions *apiSessions
}

// serve serves the API on Redis rdb until ctx ends.
func (l *apiListener) serve(ctx context.Context, a *app, rdb redis.UniversalClient) error {
	cfg := httpapi.Config{Redis: rdb, Keys: l.keys, Ledger: l.ledger}
	l.sessions.config(&cfg, rdb)
	srv, err := httpapi.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "api: http://%s (the console at http://%s/; keys: %v)\n", l.ln.Addr(), l.ln.Addr(), l.keys.Names())
	web, err := console.New(console.Config{Redis: rdb, Keys: l.keys, Refresh: l.refresh})
	if err != nil {
		return err
	}
	return worker.ServeHTTP(ctx, l.ln, routes(srv.Handler(), web.Handler()))
}

// routes serves the API's routes (/v1/, /openapi.json) and the web
// console at everything else.
func routes(api, web http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/openapi.json", api)
	mux.Handle("/", web)
	return mux
}

func (a *app) serveCommand() *cobra.Command {
	var (
		rf redisFlags
		af apiFlags
		pf profileFlags
	)
	cmd := &cobra.Command{
		Use:   "serve --api-keys FILE [--api-addr ADDR]",
		Short: "Serve the HTTP API for erasure requests",
		Long: `Serve the HTTP API for erasure requests (POST /v1/erasure-requests, status,
report, failures; the OpenAPI document at /openapi.json) until SIGTERM or
SIGINT. Requests carry Authorization: Bearer <secret> of a key of --api-keys;
read keys read, read,write keys also create. Workers do the deletions: run
them on the same Redis (or give a worker --api-addr to serve the API itself).

With --profiles (the workers' file) and COZE_ERASER_SESSION_KEY_FILE, a
request may name a data subject (an OAuth app profile, a session, bots)
instead of ids: the server lists the session's conversations, as
erase-subject does, and queues them as a verified batch.`,
		Example: `  coze-eraser api-key new dsr-platform --scope read,write   # prints the secret and the line for keys.txt
  coze-eraser serve --api-keys keys.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if af.addr == "" {
				return setupError("--api-addr: give an address, such as %s", defaultAPIAddr)
			}
			api, err := af.load()
			if err != nil {
				return err
			}
			defer api.ln.Close() //nolint:errcheck // closed by the server too
			if api.sessions, err = a.serveSessions(pf); err != nil {
				return err
			}
			rdb, err := rf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer rdb.Close()
			if api.ledger, _, err = rf.writer(rdb); err != nil {
				return err
			}
			if err := api.serve(cmd.Context(), a, rdb); err != nil {
				return &exitError{code: exitSetup, err: fmt.Errorf("api: %w", err)}
			}
			return nil
		},
	}
	rf.register(cmd, 0)
	af.register(cmd, defaultAPIAddr)
	pf.register(cmd)
	return cmd
}
