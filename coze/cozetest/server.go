package cozetest

import (
	"net/http/httptest"
)

// Server is a [Fake] served on a loopback port, like httptest.Server.
type Server struct {
	*Fake
	// URL is the base URL to give the client, e.g. http://127.0.0.1:40123.
	URL string
	srv *httptest.Server
}

// NewServer starts a fake API on 127.0.0.1 and a free port. Close it when
// done (t.Cleanup(srv.Close)).
func NewServer(opts ...Option) *Server {
	fake := NewFake(opts...)
	srv := httptest.NewServer(fake)
	return &Server{Fake: fake, URL: srv.URL, srv: srv}
}

// Close stops the server and closes its connections.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}
