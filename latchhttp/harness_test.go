package latchhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// events records every event and sends it through the slog observer into
// logs, which the no-token-in-logs test inspects.
type events struct {
	mu   sync.Mutex
	list []latch.Event
	sink latch.Observer
}

func (e *events) Observe(ctx context.Context, ev latch.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	e.sink.Observe(ctx, ev)
}

func (e *events) count(t latch.EventType, reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.list {
		if ev.Type == t && (reason == "" || ev.Reason == reason) {
			n++
		}
	}
	return n
}

// failingStore makes Get fail with ErrUnavailable while down is set.
type failingStore struct {
	store.Store
	mu   sync.Mutex
	down bool
}

func (f *failingStore) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *failingStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return nil, fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return f.Store.Get(ctx, id)
}

// env is an application on the HTTP layer, served over TLS (a Secure
// __Host- cookie is only sent over https by the cookie jar, as by browsers).
type env struct {
	t        *testing.T
	clock    *testutil.Clock
	store    *failingStore
	m        *latch.Manager
	s        *latchhttp.Sessions
	verifier *accesstoken.Verifier
	ev       *events
	logs     *testutil.Buffer // slog observer output and the server's error log
	srv      *httptest.Server
	secrets  []string // every token and CSRF token seen, for the log test
	smu      sync.Mutex
}

const (
	testIssuer   = "https://latch.test"
	testAudience = "latch"
)

func newEnv(t *testing.T, mutate ...func(*latchhttp.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), logs: &testutil.Buffer{}}
	e.ev = &events{sink: latch.SlogObserver(slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}
	e.store = &failingStore{Store: memstore.New()}
	ctx := context.Background()
	kr, err := accesstoken.OpenKeyring(ctx, accesstoken.KeyringConfig{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: kr, Issuer: testIssuer, Audience: testAudience, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.verifier, err = accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: kr, Issuer: testIssuer, Audience: testAudience, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.m, err = latch.New(latch.Config{
		Store:        e.store,
		Now:          e.clock.Now,
		Observer:     e.ev,
		AccessTokens: iss,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := latchhttp.Config{AccessTokens: e.verifier}
	for _, f := range mutate {
		f(&cfg)
	}
	e.s, err = latchhttp.New(e.m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(e.s.Middleware(e.app()))
	e.srv.Config.ErrorLog = log.New(e.logs, "http: ", 0)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

// app is the application under test.
func (e *env) app() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.PostFormValue("user")
		if user == "" {
			http.Error(w, "no user", http.StatusBadRequest)
			return
		}
		iss, err := e.s.Login(w, r, latch.NewSession{Subject: user, Data: json.RawMessage(`{"user":"` + user + `","n":0}`)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// Tests need the other tokens; a browser app would not send them.
		writeJSON(w, map[string]string{
			"refresh_token": iss.RefreshToken.Reveal(),
			"access_token":  iss.AccessToken.Reveal(),
			"csrf_token":    latchhttp.CSRFToken(r),
		})
	})
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		// A login form: the CSRF token of the session, or else anonymous.
		io.WriteString(w, latchhttp.CSRFToken(r))
	})
	mux.HandleFunc("GET /why", func(w http.ResponseWriter, r *http.Request) {
		switch err := latchhttp.AuthError(r.Context()); {
		case err == nil:
			io.WriteString(w, "none")
		case errors.Is(err, latch.ErrExpired):
			io.WriteString(w, "expired")
		case errors.Is(err, latch.ErrRevoked):
			io.WriteString(w, "revoked")
		default:
			io.WriteString(w, "invalid")
		}
	})
	mux.Handle("GET /me", e.s.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, latchhttp.SessionInfo(r))
	})))
	mux.HandleFunc("GET /public", func(w http.ResponseWriter, r *http.Request) {
		sess, ok := latchhttp.FromContext(r.Context())
		if ok {
			fmt.Fprintf(w, "hello %s", sess.Subject())
			return
		}
		io.WriteString(w, "hello stranger")
	})
	mux.Handle("POST /echo", e.s.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Form values the middleware parsed stay available.
		fmt.Fprintf(w, "%s %s", latchhttp.Method(r.Context()), r.PostFormValue("note"))
	})))
	mux.Handle("POST /incr", e.s.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, _ := latchhttp.FromContext(r.Context())
		for {
			_, err := e.m.UpdateData(r.Context(), sess.ID(), 0, func(d json.RawMessage) (json.RawMessage, error) {
				var v struct {
					User string `json:"user"`
					N    int    `json:"n"`
				}
				if err := json.Unmarshal(d, &v); err != nil {
					return nil, err
				}
				v.N++
				return json.Marshal(v)
			})
			if errors.Is(err, latch.ErrConflict) {
				continue // the Manager gave up after many retries; try again
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	})))
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := e.s.Logout(w, r); err != nil {
			http.Error(w, "logout failed", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("POST /renew", e.s.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss, err := e.s.Renew(w, r, latch.Renewal{Claims: json.RawMessage(`{"role":"admin"}`)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]string{"refresh_token": iss.RefreshToken.Reveal(), "access_token": iss.AccessToken.Reveal(), "csrf_token": latchhttp.CSRFToken(r)})
	})))
	mux.Handle("POST /revoke-others", e.s.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := e.s.RevokeOthers(w, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})))
	// Step-up: a sensitive action and the re-authentication that unlocks it.
	mux.Handle("GET /sensitive", e.s.RequireRecentAuth(5*time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sensitive")
	})))
	mux.Handle("GET /mfa-only", e.s.RequireRecentAuth(0, "urn:latch:mfa")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "mfa")
	})))
	mux.Handle("POST /reauth", e.s.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss, err := e.s.Renew(w, r, latch.Renewal{AuthTime: e.clock.Now(), AMR: []string{"pwd"}, ACR: r.PostFormValue("acr")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]string{"refresh_token": iss.RefreshToken.Reveal(), "access_token": iss.AccessToken.Reveal(), "csrf_token": latchhttp.CSRFToken(r)})
	})))
	mux.HandleFunc("GET /flush", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Time{}); err != nil {
			http.Error(w, "SetWriteDeadline: "+err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "a")
		if err := rc.Flush(); err != nil {
			io.WriteString(w, " flush failed: "+err.Error())
			return
		}
		io.WriteString(w, "b")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// client is one browser: a cookie jar and the CSRF token of its last page.
type client struct {
	e    *env
	http *http.Client
	jar  *cookiejar.Jar
	csrf string
}

func (e *env) newClient() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	hc := e.srv.Client()
	c := *hc
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{e: e, http: &c, jar: jar}
}

func (e *env) remember(s ...string) {
	e.smu.Lock()
	defer e.smu.Unlock()
	for _, v := range s {
		if v != "" {
			e.secrets = append(e.secrets, v)
		}
	}
}

// do sends a request and returns the response with its body read.
func (c *client) do(req *http.Request) (*http.Response, string) {
	c.e.t.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	for _, sc := range res.Cookies() {
		c.e.remember(sc.Value)
	}
	return res, string(b)
}

func (c *client) req(method, path string, body io.Reader) *http.Request {
	c.e.t.Helper()
	req, err := http.NewRequest(method, c.e.srv.URL+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	return req
}

func (c *client) get(path string) (*http.Response, string) {
	c.e.t.Helper()
	return c.do(c.req("GET", path, nil))
}

// post sends a url-encoded form, adding the CSRF token as a form field.
func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if c.csrf != "" && !form.Has("csrf_token") {
		form.Set("csrf_token", c.csrf)
	}
	req := c.req("POST", path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

type loginResult struct {
	Refresh string `json:"refresh_token"`
	Access  string `json:"access_token"`
	CSRF    string `json:"csrf_token"`
}

// form loads the login form and keeps its CSRF token.
func (c *client) form() string {
	c.e.t.Helper()
	res, body := c.get("/form")
	if res.StatusCode != http.StatusOK || body == "" {
		c.e.t.Fatalf("GET /form: %d %q", res.StatusCode, body)
	}
	c.e.remember(body)
	c.csrf = body
	return body
}

func (c *client) login(user string) loginResult {
	c.e.t.Helper()
	c.form()
	res, body := c.post("/login", url.Values{"user": {user}})
	if res.StatusCode != http.StatusOK {
		c.e.t.Fatalf("login: %d %s", res.StatusCode, body)
	}
	var lr loginResult
	if err := json.Unmarshal([]byte(body), &lr); err != nil {
		c.e.t.Fatal(err)
	}
	c.e.remember(lr.Refresh, lr.Access, lr.CSRF)
	c.csrf = lr.CSRF
	return lr
}

// sessionCookie returns the session cookie in the jar.
func (c *client) sessionCookie() string {
	u, _ := url.Parse(c.e.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == latchhttp.DefaultCookieName {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setSessionCookie(v string) {
	u, _ := url.Parse(c.e.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: latchhttp.DefaultCookieName, Value: v, Path: "/", Secure: true, HttpOnly: true}})
}

func (c *client) me() (latchhttp.Info, int) {
	c.e.t.Helper()
	res, body := c.get("/me")
	var info latchhttp.Info
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			c.e.t.Fatal(err)
		}
		c.e.remember(info.CSRFToken)
		c.csrf = info.CSRFToken
	}
	return info, res.StatusCode
}

// bearer sends a GET with an access token.
func (c *client) bearer(path, tok string) (*http.Response, string) {
	c.e.t.Helper()
	req := c.req("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return c.do(req)
}
