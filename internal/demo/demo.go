// Package demo is the web app `latch serve --demo` shows at "/": what a
// newcomer sees first. It is built on the library's own latchhttp middleware,
// exactly as a Go application would use it:
//
//   - a sign-in form for the users alice and bob, whose password is checked
//     against argon2id hashes;
//   - a page showing the current session, with a countdown to its idle
//     deadline that asks the user to sign in again when it runs out;
//   - the user's sessions ("your devices") with revoke buttons, "sign out
//     everywhere else" and sign out.
//
// Mount it with
//
//	h, err := demo.New(manager, demo.Config{Password: pw})
//	...
//	srv.Mount(h)
//
// # Security model
//
//   - The password is never stored: each user keeps an argon2id hash under
//     its own random salt, compared in constant time. An unknown user name
//     costs the same hash and gets the same answer as a wrong password, so
//     the form does not reveal which users exist. Failed attempts are rate
//     limited per client IP.
//   - The session cookie is latchhttp's: HttpOnly, Secure, SameSite=Lax,
//     __Host- prefixed. Every form carries a masked CSRF token — the
//     session's, or on the login form latchhttp's anonymous token, bound to
//     the visitor's own HttpOnly __Host-latch-csrf cookie, so a login form
//     posted from elsewhere signs nobody in — and cross-origin unsafe
//     requests are refused by the middleware.
//   - Notices after a form ("Signed in.") are one-shot: the redirect sets
//     a short-lived cookie naming one of a fixed list of notices, and the
//     page that shows it deletes it. A device whose session ended elsewhere
//     lands on the login page with the reason.
//   - "Sign out everywhere else" is a sensitive action: when the sign-in is
//     older than Config.ReauthAfter, latchhttp.RequireRecentAuth shows a
//     page asking for the password again (rate limited like sign-in);
//     confirming renews the session with the new auth_time and amr ["pwd"]
//     (a new cookie and CSRF token) before the other sessions are revoked.
//   - A user can revoke only their own sessions: a session ID of another
//     user gets the same "no such session" answer as an unknown one.
//   - Every response carries a strict Content-Security-Policy (no inline
//     script or style), X-Content-Type-Options, Referrer-Policy and
//     frame-ancestors/X-Frame-Options.
//   - Nothing it logs contains a token, the password or its hash.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"golang.org/x/time/rate"
)

// Defaults for the login rate limit: failed sign-ins per client IP.
const (
	DefaultLoginBurst = 20              // failed attempts allowed at once
	DefaultLoginEvery = 3 * time.Second // then one more per interval
)

// maxBody caps the request bodies of the demo's forms.
const maxBody = 16 << 10

// Config configures the demo app. Only Password is required.
type Config struct {
	// Password is the password of the demo users alice and bob; at least
	// MinPasswordLen characters. GeneratePassword makes a good one. It is
	// hashed at once and not kept.
	Password string

	// HTTP configures the session cookie and the CSRF layer. Its zero value
	// is the secure default (a "__Host-latch" cookie); set CookieName to
	// the name the rest of the server uses. If ErrorHandler is nil, the
	// demo renders its own error pages.
	HTTP latchhttp.Config

	// Logger receives the demo's own log lines (failed and rate-limited
	// sign-ins, internal errors); default: discard. Session events go to
	// the Manager's observer, not here.
	Logger *slog.Logger

	// LoginBurst and LoginEvery rate-limit failed sign-ins per client IP:
	// LoginBurst failures at once, then one per LoginEvery (defaults
	// DefaultLoginBurst and DefaultLoginEvery).
	LoginBurst int
	LoginEvery time.Duration

	// APILinks adds links to latch serve's OpenAPI document and JWKS in the
	// page footer; set it when the demo is mounted in latch serve.
	APILinks bool

	// ReauthAfter is how long after signing in "sign out everywhere else"
	// still runs without asking for the password again (step-up, RFC 9470
	// max_age); default DefaultReauthAfter. Confirming the password renews
	// the session with the new auth_time.
	ReauthAfter time.Duration
}

// DefaultReauthAfter is Config.ReauthAfter's default.
const DefaultReauthAfter = 5 * time.Minute

// Handler is the demo web app. It is safe for concurrent use.
type Handler struct {
	m       *latch.Manager
	s       *latchhttp.Sessions
	log     *slog.Logger
	now     func() time.Time
	users   map[string]*user
	decoy   *user // hashed for unknown user names, so they cost the same
	hashSem chan struct{}
	limiter *ipLimiter
	cookie  string
	cfg     Config
	pages   map[string]*template.Template
	static  map[string]asset
	urls    map[string]string // static file name → versioned URL
	h       http.Handler
}

// New returns the demo app over m. It hashes the password for the demo
// users (argon2id, a fraction of a second) and refuses a missing or short
// password and insecure HTTP settings with an error saying why.
func New(m *latch.Manager, cfg Config) (*Handler, error) {
	if m == nil {
		return nil, errors.New("demo: a *latch.Manager is required")
	}
	if err := checkPassword(cfg.Password); err != nil {
		return nil, err
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = DefaultLoginBurst
	}
	if cfg.LoginEvery <= 0 {
		cfg.LoginEvery = DefaultLoginEvery
	}
	h := &Handler{
		m:       m,
		log:     cfg.Logger,
		now:     m.Now,
		hashSem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		cookie:  cfg.HTTP.CookieName,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.cookie == "" {
		h.cookie = latchhttp.DefaultCookieName
	}
	h.limiter = newIPLimiter(rate.Every(cfg.LoginEvery), cfg.LoginBurst)
	if cfg.HTTP.ErrorHandler == nil {
		cfg.HTTP.ErrorHandler = h.httpError
	}
	if cfg.ReauthAfter <= 0 {
		cfg.ReauthAfter = DefaultReauthAfter
	}
	if cfg.HTTP.Reauthenticate == nil {
		cfg.HTTP.Reauthenticate = h.confirmPage
	}
	s, err := latchhttp.New(m, cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	h.s = s
	h.cfg = cfg
	h.cfg.Password = "" // not kept
	if h.users, h.decoy, err = hashUsers(cfg.Password); err != nil {
		return nil, err
	}
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if h.static, err = loadStatic(); err != nil {
		return nil, err
	}
	h.urls = make(map[string]string, len(h.static))
	for name, a := range h.static {
		h.urls[name] = a.url
	}
	h.h = h.routes()
	return h, nil
}

// ServeHTTP serves the demo app.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.h.ServeHTTP(w, r) }

func (h *Handler) routes() http.Handler {
	app := http.NewServeMux()
	app.HandleFunc("GET /{$}", h.home)
	app.HandleFunc("GET /login", h.loginForm)
	app.HandleFunc("POST /login", h.login)
	app.HandleFunc("POST /logout", h.logout)
	app.HandleFunc("POST /sessions/revoke", h.revoke)
	// Signing out the other devices is the sensitive action: it asks for
	// the password again unless the user signed in within ReauthAfter.
	app.Handle("POST /sessions/revoke-others", h.s.RequireRecentAuth(h.cfg.ReauthAfter)(http.HandlerFunc(h.revokeOthers)))
	app.HandleFunc("POST /sessions/revoke-others/confirm", h.confirmRevokeOthers)
	app.HandleFunc("/", h.notFound)

	outer := http.NewServeMux()
	// Static files and the status endpoint need no session from the
	// middleware: the status endpoint must not count as activity (see
	// status.go), and assets are public.
	outer.HandleFunc("GET /static/{file}", h.serveStatic)
	outer.HandleFunc("GET /session/status", h.status)
	outer.Handle("/", h.s.Middleware(app))
	return securityHeaders(limitBody(outer))
}

// contentSecurityPolicy allows nothing but this origin's own files: no inline
// script or style, no framing, forms posting only here.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		next.ServeHTTP(w, r)
	})
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the address failed sign-ins are counted against.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// render executes a page template into a buffer, then writes it with the
// status code, so a template error never produces half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	t, ok := h.pages[page]
	if !ok {
		panic("demo: no page template " + page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "demo: rendering a page failed", slog.String("page", page), slog.String("err", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// redirect answers a form POST with 303 See Other.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// storeFailed logs err (latch errors never contain a token) and renders the
// 503 page.
func (h *Handler) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "demo: "+what+" failed", slog.String("err", err.Error()))
	h.errorPage(w, r, http.StatusServiceUnavailable)
}

// ctxTimeout bounds store calls made on behalf of a request.
func ctxTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

func trimForm(r *http.Request, name string) string {
	return strings.TrimSpace(r.PostFormValue(name))
}
