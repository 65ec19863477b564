package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store"
)

// route is one endpoint of the API. The table in routeTable is the only
// place routes are registered, so the OpenAPI test can compare it with the
// document.
type route struct {
	pattern string
	apiKey  bool // back-channel: needs the API key
	h       func(w http.ResponseWriter, r *http.Request) error
}

func (s *Server) routeTable() []route {
	return []route{
		// Back-channel.
		{"POST /v1/sessions", true, s.createSession},
		{verifyPattern, true, s.verifySession},
		{"GET /v1/sessions/{id}", true, s.getSession},
		{"PATCH /v1/sessions/{id}", true, s.patchSession},
		{"DELETE /v1/sessions/{id}", true, s.deleteSession},
		{"POST /v1/sessions/{id}/renew", true, s.renewSession},
		{"GET /v1/subjects/{subject}/sessions", true, s.listSessions},
		{"DELETE /v1/subjects/{subject}/sessions", true, s.revokeSubject},
		{"GET /v1/keys", true, s.listKeys},
		{"POST /v1/keys/rotate", true, s.rotateKeys},
		{"GET /v1/events", true, s.events},
		{"POST /v1/keys/{kid}/revoke", true, s.revokeKey},
		// Public.
		{"POST /v1/refresh", false, s.refresh},
		{"GET /v1/whoami", false, s.whoami},
		{"POST /v1/logout", false, s.logout},
		{"GET /.well-known/jwks.json", false, s.jwks},
		{"GET /.well-known/oauth-authorization-server", false, s.metadata},
		// Operations.
		{"GET /healthz", false, s.healthz},
		{"GET /readyz", false, s.readyz},
		{metricsRoute, false, s.serveMetrics},
		{"GET /openapi.json", false, s.openapi},
	}
}

// apiRoutes is the route table less the routes served elsewhere.
func (s *Server) apiRoutes() []route {
	rts := s.routeTable()
	if s.opts.SeparateMetrics {
		rts = slices.DeleteFunc(rts, func(rt route) bool { return rt.pattern == metricsRoute })
	}
	return rts
}

const metricsRoute = "GET /metrics"

// Routes returns the patterns of every API route, for documentation and
// tests.
func (s *Server) Routes() []string {
	var out []string
	for _, rt := range s.apiRoutes() {
		out = append(out, rt.pattern)
	}
	return out
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	methods := map[string]bool{}
	s.metrics.routeOK = map[string]*routeChildren{}
	for _, rt := range s.routeTable() { // the metrics listener's route too
		s.metrics.routeOK[rt.pattern] = new(routeChildren)
	}
	for _, rt := range s.apiRoutes() {
		mux.Handle(rt.pattern, s.endpoint(rt))
		method, path, _ := strings.Cut(rt.pattern, " ")
		allow[path] = append(allow[path], method)
		methods[method] = true
		if method == http.MethodGet {
			methods[http.MethodHead] = true
		}
	}
	// A known path with another method is 405 with Allow; anything else
	// under /v1/ is a 404 problem. Other paths go to the mounted handler.
	paths := http.NewServeMux()
	for path, ms := range allow {
		if slices.Contains(ms, http.MethodGet) {
			ms = append(ms, http.MethodHead)
		}
		slices.Sort(ms)
		allowed := strings.Join(ms, ", ")
		notAllowed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allowed)
			writeProblem(w, problemFor(errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				fmt.Sprintf("method %s is not allowed here; use %s", r.Method, allowed))))
		})
		paths.Handle(path, notAllowed)
		if !strings.HasPrefix(path, "/v1/") {
			mux.Handle(path, notAllowed)
		}
		// A method some other route takes must not reach that route
		// through its wildcard: GET /v1/sessions/verify is a wrong method
		// on verify, not a session whose ID is "verify".
		for m := range methods {
			if !slices.Contains(ms, m) {
				mux.Handle(m+" "+path, notAllowed)
			}
		}
	}
	if s.opts.SeparateMetrics {
		// Not even the mounted demo answers for it here.
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, problemFor(errorf(http.StatusNotFound, CodeNotFound, "metrics are served on their own listener (--metrics-addr)")))
		})
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if h, p := paths.Handler(r); p != "" {
			h.ServeHTTP(w, r)
			return
		}
		writeProblem(w, problemFor(errorf(http.StatusNotFound, CodeNotFound, "no such endpoint")))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h := s.root.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		writeProblem(w, problemFor(errorf(http.StatusNotFound, CodeNotFound, "no such endpoint")))
	})
	s.mux = mux
	var verify http.Handler
	for _, rt := range s.apiRoutes() {
		if rt.pattern == verifyPattern {
			verify = s.endpoint(rt)
		}
	}
	s.handler = s.instrumentHTTP(s.recoverer(verifyFirst{verify, mux}))
}

const verifyPattern = "POST /v1/sessions/verify"

// verifyFirst sends POST /v1/sessions/verify, the hottest route by far,
// straight to its endpoint, sparing it ServeMux's path cleaning and tree
// walk (~0.3 µs of a verify's ~17 µs of CPU; BENCHMARKS.md, issue 15).
// It takes only a request the mux would route there too — that method,
// that exact path, nothing escaped in it (TestVerifyFirstAgreesWithMux) —
// and sets r.Pattern as the mux does; the route has no wildcard, so no
// path value is missing. Everything else goes to the mux.
type verifyFirst struct {
	verify, mux http.Handler
}

func (v verifyFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isVerify(r) {
		r.Pattern = verifyPattern
		v.verify.ServeHTTP(w, r)
		return
	}
	v.mux.ServeHTTP(w, r)
}

func isVerify(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/v1/sessions/verify" && r.URL.RawPath == ""
}

// endpoint adapts a route's handler: the API-key check, then errors
// written as problem documents.
func (s *Server) endpoint(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, proof := r.Header["Dpop"]; proof {
			s.offerNonce(w) // relayed proofs: in their handlers
		}
		if rateLimited[rt.pattern] && !s.allow(w, r) {
			return
		}
		if rt.apiKey && !s.authorized(r) {
			writeProblem(w, problemFor(errorf(http.StatusUnauthorized, CodeUnauthorized,
				"this endpoint needs the API key as Authorization: Bearer <key>")))
			return
		}
		if err := rt.h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// fail writes err as a problem document. Unexpected errors are logged; the
// errors of latch and its stores never contain a token or key.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	// A step-up challenge names what the action demands (RFC 9470 §3).
	if ie := (*latch.InsufficientAuthError)(nil); errors.As(err, &ie) {
		w.Header().Set("WWW-Authenticate", ie.Need.Challenge())
	}
	dpopChallenge(w, err)
	switch p.Code {
	case CodeInternal:
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("route", r.Pattern), slog.String("err", err.Error()))
	case CodeStoreUnavailable:
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "store unavailable", slog.String("route", r.Pattern), slog.String("err", err.Error()))
	}
	writeProblem(w, p)
}

// recoverer turns a panic into a 500 problem. The client never sees the
// panic; the log gets its type and the stack (not its value, which could
// hold request data).
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.String("route", r.Pattern), slog.String("panic_type", fmt.Sprintf("%T", v)),
				slog.String("stack", string(debug.Stack())))
			if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
				return // too late for a problem document
			}
			writeProblem(w, problemFor(errorf(http.StatusInternalServerError, CodeInternal, "unexpected error")))
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder records the status and size of a response. It implements
// Unwrap so http.ResponseController reaches the real writer.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rec *statusRecorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *statusRecorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

func (rec *statusRecorder) Flush() {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	http.NewResponseController(rec.ResponseWriter).Flush()
}

func (rec *statusRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// recorders are reused across requests: a handler does not keep its
// ResponseWriter past returning (net/http forbids it), so a recorder is
// free again once ServeHTTP is back.
var recorders = sync.Pool{New: func() any { return new(statusRecorder) }}

// probes are the routes of health and readiness checks, logged at debug
// level.
var probes = map[string]bool{"GET /healthz": true, "GET /readyz": true}

// instrumentHTTP logs every request and records its duration by route
// pattern and status. The log line has no path, query string, header or
// body: nothing that could carry a secret.
func (s *Server) instrumentHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := monoNow()
		rec := recorders.Get().(*statusRecorder)
		rec.ResponseWriter = w
		next.ServeHTTP(rec, r)
		d := monoNow() - start
		status, bytes := rec.status, rec.bytes
		// Not reached when the handler panics (ErrAbortHandler goes on
		// up): that recorder is left to the garbage collector.
		*rec = statusRecorder{}
		recorders.Put(rec)
		if status == 0 {
			status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.metrics.httpRequest(route, status, d)
		level := slog.LevelInfo
		switch {
		case probes[route]:
			// Probes come every few seconds; a failing readyz has already
			// logged why, as a warning.
			level = slog.LevelDebug
		case status >= 500:
			level = slog.LevelError
		}
		// At --log-level warn a verify logs nothing: do not build its line.
		if !s.log.Enabled(r.Context(), level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Int64("bytes", bytes),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.String("remote", s.clientIP(r)),
		}
		// The path itself is not logged: a careless client could put a
		// token in it. A session ID is public and useful, so it is kept.
		if id := r.PathValue("id"); id != "" {
			if _, err := store.ParseID(id); err == nil {
				attrs = append(attrs, slog.String("session_id", id))
			}
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}
