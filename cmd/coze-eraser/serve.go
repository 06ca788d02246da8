package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/httpapi"
	"github.com/coze-eraser/coze-eraser/worker"
)

// defaultAPIAddr is --api-addr's default: loopback only.
const defaultAPIAddr = "127.0.0.1:9465"

// apiFlags are the HTTP API's, shared by serve and worker.
type apiFlags struct {
	addr string
	keys string
}

func (f *apiFlags) register(cmd *cobra.Command, addrDefault string) {
	cmd.Flags().StringVar(&f.addr, "api-addr", addrDefault, "address of the HTTP API for erasure requests (127.0.0.1 by default: put TLS in front to expose it)")
	cmd.Flags().StringVar(&f.keys, "api-keys", "", "the API keys file: one 'NAME SCOPES SHA256HEX' a line (coze-eraser api-key new)")
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
	return &apiListener{keys: keys, ln: ln}, nil
}

// apiListener is the HTTP API, ready to serve once Redis is there.
type apiListener struct {
	keys *httpapi.Keys
	ln   net.Listener
}

// serve serves the API on Redis rdb until ctx ends.
func (l *apiListener) serve(ctx context.Context, a *app, rdb redis.UniversalClient) error {
	srv, err := httpapi.New(httpapi.Config{Redis: rdb, Keys: l.keys})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "api: http://%s (keys: %v)\n", l.ln.Addr(), l.keys.Names())
	return worker.ServeHTTP(ctx, l.ln, srv.Handler())
}

func (a *app) serveCommand() *cobra.Command {
	var (
		rf redisFlags
		af apiFlags
	)
	cmd := &cobra.Command{
		Use:   "serve --api-keys FILE [--api-addr ADDR]",
		Short: "Serve the HTTP API for erasure requests",
		Long: `Serve the HTTP API for erasure requests (POST /v1/erasure-requests, status,
report, failures; the OpenAPI document at /openapi.json) until SIGTERM or
SIGINT. Requests carry Authorization: Bearer <secret> of a key of --api-keys;
read keys read, read,write keys also create. Workers do the deletions: run
them on the same Redis (or give a worker --api-addr to serve the API itself).`,
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
			rdb, err := rf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer rdb.Close()
			if err := api.serve(cmd.Context(), a, rdb); err != nil {
				return &exitError{code: exitSetup, err: fmt.Errorf("api: %w", err)}
			}
			return nil
		},
	}
	rf.register(cmd, 0)
	af.register(cmd, defaultAPIAddr)
	return cmd
}
