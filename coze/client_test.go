package coze_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
)

const testToken = "pat_test_SECRET_TOKEN_value"

func newClient(t *testing.T, url string, opts ...coze.Option) *coze.Client {
	t.Helper()
	c, err := coze.NewClient(url, coze.StaticToken(testToken), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDeleteSendsTheDocumentedRequest(t *testing.T) {
	t.Parallel()
	var got *http.Request
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("X-Tt-Logid", "L1")
		fmt.Fprint(w, `{"code":0,"msg":"","detail":{"logid":"L2"}}`)
	})
	res, err := newClient(t, url+"/").DeleteConversation(context.Background(), "7379996104798150001")
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodDelete || got.URL.Path != "/v1/conversations/7379996104798150001" {
		t.Errorf("request = %s %s", got.Method, got.URL.Path)
	}
	if h := got.Header.Get("Authorization"); h != "Bearer "+testToken {
		t.Errorf("Authorization = %q", h)
	}
	if h := got.Header.Get("Content-Type"); h != "application/json" {
		t.Errorf("Content-Type = %q", h)
	}
	if res.Class != coze.ClassDeleted || res.LogID != "L2" || res.HTTPStatus != 200 || res.Duration <= 0 {
		t.Errorf("result = %+v", res)
	}
}

func TestDeleteEscapesThePath(t *testing.T) {
	t.Parallel()
	var path string
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		fmt.Fprint(w, `{"code":4000}`)
	})
	_, err := newClient(t, url).DeleteConversation(context.Background(), "1/../../admin")
	if err == nil {
		t.Fatal("want an error")
	}
	if path != "/v1/conversations/1%2F..%2F..%2Fadmin" {
		t.Errorf("path = %q: the id must stay one path segment", path)
	}
}

// TestNetworkFaults checks that each way an answer can go wrong ends in the
// transient class, in bounded time and memory.
func TestNetworkFaults(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name    string
		handler http.HandlerFunc
		class   coze.Class
		errHas  string
	}{
		{
			name: "connection reset",
			handler: func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				if tcp, ok := conn.(*net.TCPConn); ok {
					_ = tcp.SetLinger(0) // a reset rather than a clean close; either fails the call
				}
				conn.Close()
			},
			class: coze.ClassTransient,
		},
		{
			name: "answer slower than the timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
			},
			class: coze.ClassTransient, errHas: "deadline exceeded",
		},
		{
			name: "truncated body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
				fmt.Fprint(w, `{"code":0,"ms`)
				rc := http.NewResponseController(w)
				if err := rc.Flush(); err != nil {
					t.Error(err)
					return
				}
				conn, _, err := rc.Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.Close()
			},
			class: coze.ClassTransient, errHas: "reading the response body",
		},
		{
			name: "body trickled one byte per second",
			handler: func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < 1000; i++ {
					if _, err := w.Write([]byte(" ")); err != nil {
						return
					}
					if err := http.NewResponseController(w).Flush(); err != nil {
						return
					}
					select {
					case <-time.After(time.Second):
					case <-r.Context().Done():
						return
					}
				}
			},
			class: coze.ClassTransient, errHas: "reading the response body",
		},
		{
			name: "10 MB body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				chunk := []byte(strings.Repeat("x", 1<<20))
				for i := 0; i < 10; i++ {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			},
			class: coze.ClassUnknown, errHas: "longer than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := serve(t, tt.handler)
			start := time.Now()
			res, err := newClient(t, url, coze.WithTimeout(timeout)).DeleteConversation(context.Background(), "1")
			elapsed := time.Since(start)
			if res.Class != tt.class {
				t.Errorf("class = %s, want %s (err %v)", res.Class, tt.class, err)
			}
			var apiErr *coze.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want *coze.Error", err)
			}
			if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %q, want it to contain %q", err, tt.errHas)
			}
			if elapsed > 3*time.Second {
				t.Errorf("took %v: the request timeout did not bound the call", elapsed)
			}
		})
	}
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := newClient(t, "http://"+addr).DeleteConversation(context.Background(), "1")
	if res.Class != coze.ClassTransient || err == nil {
		t.Errorf("class = %s, err = %v; want transient", res.Class, err)
	}
}

func TestErrorsNeverCarryTheToken(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		fmt.Fprint(w, r.Header.Get("Authorization")) // a hostile server echoes it
	})
	_, err := newClient(t, url).DeleteConversation(context.Background(), "1")
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error carries the token: %v", err)
	}
}

func TestTokenErrorsAreAuthAndSecretFree(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "pat_with space", "pat_with\nnewline"} {
		c, err := coze.NewClient("http://127.0.0.1:1", coze.StaticToken(bad))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.DeleteConversation(context.Background(), "1")
		if res.Class != coze.ClassAuth {
			t.Errorf("token %q: class %s, want auth", bad, res.Class)
		}
		if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error quotes the token: %v", err)
		}
	}
}

func TestFileTokenIsReadAgainAfterRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("  pat_one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := coze.FileToken(path)
	if tok, err := src.Token(); err != nil || tok != "pat_one" {
		t.Fatalf("Token() = %q, %v", tok, err)
	}
	if err := os.WriteFile(path, []byte("pat_two_longer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		tok, err := src.Token()
		if err == nil && tok == "pat_two_longer" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated token not picked up: %q, %v", tok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFileTokenMissingFile(t *testing.T) {
	t.Parallel()
	_, err := coze.FileToken(filepath.Join(t.TempDir(), "nope")).Token()
	if err == nil || !strings.Contains(err.Error(), "token file") {
		t.Errorf("err = %v, want it to name the token file", err)
	}
}

func TestNewClientRejectsBadBaseURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "api.coze.cn", "ftp://x", "http://"} {
		if _, err := coze.NewClient(u, coze.StaticToken("t")); err == nil {
			t.Errorf("NewClient(%q) accepted", u)
		}
	}
}

// TestRedirectIsNeverFollowed: a redirect must not turn the DELETE into a
// GET whose success is taken for a deletion, nor carry the token along.
func TestRedirectIsNeverFollowed(t *testing.T) {
	t.Parallel()
	var followed bool
	target := serve(t, func(w http.ResponseWriter, r *http.Request) {
		followed = true
		fmt.Fprint(w, `{"code":0}`)
	})
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", target+"/elsewhere")
		w.WriteHeader(http.StatusMovedPermanently)
		fmt.Fprint(w, `{"code":0}`)
	})
	res, err := newClient(t, url).DeleteConversation(context.Background(), "1")
	if followed {
		t.Error("the redirect was followed")
	}
	if res.Class == coze.ClassDeleted || err == nil {
		t.Errorf("a 301 was classified %s", res.Class)
	}
	if res.Class != coze.ClassUnknown || res.HTTPStatus != 301 {
		t.Errorf("class %s status %d, want unknown 301", res.Class, res.HTTPStatus)
	}
}

// tenMB is written by the oversized-body server without allocating per call.
var tenMB = []byte(strings.Repeat("x", 10<<20))

// TestOversizedBodyMemoryIsBounded: a 10 MB answer costs the client about
// its read limit, not 10 MB. Not parallel: it measures the heap.
func TestOversizedBodyMemoryIsBounded(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(tenMB) })
	c := newClient(t, url, coze.WithTimeout(5*time.Second))
	_, _ = c.DeleteConversation(context.Background(), "1") // warm the connection pool
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, _ := c.DeleteConversation(context.Background(), "1")
	runtime.ReadMemStats(&after)
	if res.Class != coze.ClassUnknown {
		t.Errorf("class %s", res.Class)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("the call allocated %d bytes for a 10 MB body; the read limit is %d", alloc, coze.DefaultMaxBodyBytes)
	}
}
