package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// HTTP server limits. Bodies are capped separately (MaxBodySize).
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 32 << 10 // room for an 8 KiB access token and cookies
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// to finish after its context ends.
	ShutdownTimeout = 20 * time.Second
	// LameDuck is how long Serve goes on answering, closing each
	// connection after its answer, after its context ends and before it
	// closes idle connections: a
	// request a client wrote on an idle keep-alive connection just before
	// the signal is still answered (with Connection: close) instead of
	// being cut off unread.
	LameDuck = 250 * time.Millisecond
)

// HTTPServer returns an http.Server for s with the timeouts and header
// limit above, logging its own errors (TLS handshakes, malformed requests)
// to s's logger.
func (s *Server) HTTPServer() *http.Server {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// Event streams never finish on their own: end them when the server
	// shuts down, so the drain is not spent waiting for them.
	hs.RegisterOnShutdown(s.endStreams)
	return hs
}

// MetricsHTTPServer returns an http.Server for a listener of its own that
// serves only GET /metrics (see Options.SeparateMetrics), with the same
// limits as HTTPServer. Its requests are logged like the API's.
func (s *Server) MetricsHTTPServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle(metricsRoute, s.endpoint(route{metricsRoute, false, s.serveMetrics}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problemFor(errorf(http.StatusNotFound, CodeNotFound, "this listener serves only GET /metrics")))
	})
	hs := s.HTTPServer()
	hs.Handler = s.instrumentHTTP(s.recoverer(mux))
	return hs
}

// Serve serves hs on ln (over TLS when certFile is set) until ctx ends,
// then answers for LameDuck more, closing each connection after its
// answer, then stops accepting connections and waits up to drain for
// in-flight requests to finish. It returns nil after a clean shutdown.
func Serve(ctx context.Context, hs *http.Server, ln net.Listener, certFile, keyFile string, drain time.Duration) error {
	// While draining, every answer closes its connection. (SetKeepAlivesEnabled
	// would close idle connections at once, cutting off requests a client
	// has just written on them.)
	var draining atomic.Bool
	next := hs.Handler
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
	errc := make(chan error, 1)
	go func() {
		var err error
		if certFile != "" {
			err = hs.ServeTLS(ln, certFile, keyFile)
		} else {
			err = hs.Serve(ln)
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	draining.Store(true)
	select {
	case <-time.After(min(LameDuck, drain)):
	case err := <-errc:
		return err
	}
	err := hs.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
