// Command webapp is a small web application on latch sessions with the
// standard library's ServeMux and the in-memory store: a login form, an
// account page showing the session with an idle-timeout countdown, the
// user's other sessions with "sign out everywhere else", and logout. Every
// form carries a CSRF token.
//
//	go run ./examples/webapp
//
// then open http://localhost:8080 and sign in as alice or bob with the
// password printed at start (or set WEBAPP_PASSWORD).
//
// The session cookie is the default Secure "__Host-latch" cookie even though
// the app serves plain HTTP: browsers treat http://localhost as a secure
// context, so Chromium and Firefox keep it. For browsers that do not (Safari)
// or another host on your LAN, start with -insecure-dev-cookie, which must
// never be used in production.
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

func main() {
	addr := flag.String("addr", "localhost:8080", "listen address")
	insecure := flag.Bool("insecure-dev-cookie", false, "send the session cookie without Secure (development over plain HTTP in browsers that need it; never in production)")
	idle := flag.Duration("idle-timeout", 5*time.Minute, "sign users out after this long without activity")
	flag.Parse()

	password := os.Getenv("WEBAPP_PASSWORD")
	if password == "" {
		b := make([]byte, 9)
		rand.Read(b)
		password = base64.RawURLEncoding.EncodeToString(b)
		log.Printf("webapp: sign in as alice or bob with password %s", password)
	}

	app, err := newApp(appConfig{Password: password, IdleTimeout: *idle, InsecureDevCookie: *insecure})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go app.m.RunSweeper(ctx, time.Minute)

	srv := &http.Server{
		Addr:              *addr,
		Handler:           app.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	log.Printf("webapp: listening on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}

type appConfig struct {
	Password          string
	IdleTimeout       time.Duration
	InsecureDevCookie bool
	Now               func() time.Time // for tests
	Logger            *slog.Logger     // audit events; default JSON on stderr
}

type app struct {
	m        *latch.Manager
	sessions *latchhttp.Sessions
	password string
}

func newApp(cfg appConfig) (*app, error) {
	lc := latch.Config{Store: memstore.New(), IdleTimeout: cfg.IdleTimeout, Now: cfg.Now}
	if cfg.Logger != nil {
		lc.Observer = latch.SlogObserver(cfg.Logger)
	}
	if lc.IdleTimeout > 0 && lc.IdleTimeout <= latch.DefaultTouchInterval {
		lc.TouchInterval = lc.IdleTimeout / 4
	}
	m, err := latch.New(lc)
	if err != nil {
		return nil, err
	}
	hc := latchhttp.Config{}
	if cfg.InsecureDevCookie {
		hc.CookieName = "latch-dev" // browsers refuse __Host- cookies without Secure
		hc.InsecureCookieForDevelopmentOnly = true
	}
	s, err := latchhttp.New(m, hc)
	if err != nil {
		return nil, err
	}
	return &app{m: m, sessions: s, password: cfg.Password}, nil
}

// Handler returns the application: the routes behind the session middleware
// and a few security headers.
func (a *app) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("POST /login", a.login)
	mux.Handle("GET /account", a.sessions.RequireSession(http.HandlerFunc(a.account)))
	mux.Handle("GET /session.json", a.sessions.RequireSession(http.HandlerFunc(a.sessionJSON)))
	mux.Handle("POST /sessions/revoke-others", a.sessions.RequireSession(http.HandlerFunc(a.revokeOthers)))
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write([]byte(appJS))
	})
	return securityHeaders(a.sessions.Middleware(mux))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

var users = map[string]bool{"alice": true, "bob": true}

func (a *app) checkPassword(user, password string) bool {
	ok := subtle.ConstantTimeCompare([]byte(password), []byte(a.password)) == 1
	return ok && users[user]
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	if _, ok := latchhttp.FromContext(r.Context()); ok {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	a.render(w, r, http.StatusOK, "login", map[string]any{"Message": r.URL.Query().Get("m")})
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	user := r.PostFormValue("user")
	if !a.checkPassword(user, r.PostFormValue("password")) {
		a.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Error": "Wrong user name or password."})
		return
	}
	if _, err := a.sessions.Login(w, r, latch.NewSession{Subject: user, Data: []byte(`{"name":"` + user + `"}`)}); err != nil {
		http.Error(w, "Sign-in is unavailable, try again.", http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

type sessionRow struct {
	*latch.Session
	Current bool
}

func (a *app) account(w http.ResponseWriter, r *http.Request) {
	s, _ := latchhttp.FromContext(r.Context())
	list, err := a.m.List(r.Context(), s.Subject())
	if err != nil {
		http.Error(w, "Sessions are unavailable, try again.", http.StatusServiceUnavailable)
		return
	}
	rows := make([]sessionRow, len(list))
	for i, o := range list {
		rows[i] = sessionRow{o, o.ID() == s.ID()}
	}
	name, _ := s.StringValue("name")
	a.render(w, r, http.StatusOK, "account", map[string]any{
		"Name":     name,
		"Session":  s,
		"Info":     latchhttp.SessionInfo(r),
		"Sessions": rows,
		"Message":  r.URL.Query().Get("m"),
	})
}

// sessionJSON lets the page refresh its countdown; fetching it counts as
// activity.
func (a *app) sessionJSON(w http.ResponseWriter, r *http.Request) {
	info := latchhttp.SessionInfo(r)
	info.CSRFToken = "" // the page already has one
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, info)
}

func (a *app) revokeOthers(w http.ResponseWriter, r *http.Request) {
	n, err := a.sessions.RevokeOthers(w, r)
	if err != nil {
		http.Error(w, "Try again.", http.StatusServiceUnavailable)
		return
	}
	msg := "Signed out of every other device."
	if n == 0 {
		msg = "There were no other sessions."
	}
	http.Redirect(w, r, "/account?m="+urlQueryEscape(msg), http.StatusSeeOther)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if err := a.sessions.Logout(w, r); err != nil {
		http.Error(w, "Sign-out failed, try again.", http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, "/?m="+urlQueryEscape("You are signed out."), http.StatusSeeOther)
}
