package latchhttp_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// The anonymous CSRF token as docs/protocol.md section 2 specifies it,
// written here from the spec rather than with the package's own helpers,
// so the tests also check the bytes other clients rely on.

const anonCookie = latchhttp.DefaultCookieName + "-csrf"

func specAnonKey(secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("latch anon csrf v1"))
	return mac.Sum(nil)
}

func specMask(k []byte) string {
	b := make([]byte, 64)
	rand.Read(b[:32])
	for i := range 32 {
		b[32+i] = b[i] ^ k[i]
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// specValid reports whether tok unmasks to the anonymous key of cookie.
func specValid(cookie, tok string) bool {
	secret, err := base64.RawURLEncoding.Strict().DecodeString(cookie)
	if err != nil || len(secret) != 32 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) != 64 {
		return false
	}
	got := make([]byte, 32)
	for i := range 32 {
		got[i] = b[i] ^ b[32+i]
	}
	return subtle.ConstantTimeCompare(got, specAnonKey(secret)) == 1
}

// withAnonCSRF gives req an anonymous CSRF cookie (for the session cookie
// cookieName) and a matching X-CSRF-Token, as a login form would.
func withAnonCSRF(req *http.Request, cookieName string) *http.Request {
	secret := make([]byte, 32)
	rand.Read(secret)
	req.AddCookie(&http.Cookie{Name: cookieName + "-csrf", Value: base64.RawURLEncoding.EncodeToString(secret)})
	req.Header.Set("X-CSRF-Token", specMask(specAnonKey(secret)))
	return req
}

// anonCookieOf returns the anonymous CSRF cookie the jar holds.
func (c *client) anonCookie() string {
	u, _ := url.Parse(c.e.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == anonCookie {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setAnonCookie(v string) {
	u, _ := url.Parse(c.e.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: anonCookie, Value: v, Path: "/", Secure: true, HttpOnly: true}})
}

func findAnonSetCookie(res *http.Response) *http.Cookie {
	for _, line := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(line, anonCookie+"=") {
			ck, err := http.ParseSetCookie(line)
			if err == nil {
				return ck
			}
		}
	}
	return nil
}

func TestAnonymousCSRFCookie(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	res, tok := c.get("/form")
	ck := findAnonSetCookie(res)
	if ck == nil {
		t.Fatalf("no anonymous CSRF cookie set: %q", res.Header.Values("Set-Cookie"))
	}
	if len(ck.Value) != 43 || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" || ck.MaxAge != 7200 {
		t.Fatalf("anonymous CSRF cookie attributes: %+v", ck)
	}
	if !specValid(ck.Value, tok) {
		t.Fatal("the token is not a masking of HMAC-SHA256(cookie secret, \"latch anon csrf v1\")")
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("a page with a token: Cache-Control %q", res.Header.Get("Cache-Control"))
	}
	// The next page keeps the secret, refreshes Max-Age, and masks anew.
	res, tok2 := c.get("/form")
	ck2 := findAnonSetCookie(res)
	if ck2 == nil || ck2.Value != ck.Value || ck2.MaxAge != 7200 {
		t.Fatalf("second page: cookie %+v, want the same secret with a fresh Max-Age", ck2)
	}
	if tok2 == tok || !specValid(ck.Value, tok2) {
		t.Fatal("tokens are not masked per page, or the second is invalid")
	}
	// A page that asks for no token sets no cookie.
	if res, _ := c.get("/public"); findAnonSetCookie(res) != nil {
		t.Fatal("a page without a form set the anonymous cookie")
	}
	// A malformed cookie is replaced, not used.
	for _, bad := range []string{"x", strings.Repeat("A", 42) + "B", base64.RawURLEncoding.EncodeToString(make([]byte, 31))} {
		c2 := e.newClient()
		c2.setAnonCookie(bad)
		res, tok := c2.get("/form")
		ck := findAnonSetCookie(res)
		if ck == nil || ck.Value == bad || !specValid(ck.Value, tok) {
			t.Fatalf("malformed cookie %q: new cookie %+v", bad, ck)
		}
	}
	// A token made by any implementation of the spec works.
	secret := make([]byte, 32)
	rand.Read(secret)
	c3 := e.newClient()
	c3.setAnonCookie(base64.RawURLEncoding.EncodeToString(secret))
	c3.csrf = specMask(specAnonKey(secret))
	if res, body := c3.post("/login", url.Values{"user": {"alice"}}); res.StatusCode != 200 {
		t.Fatalf("login with a spec-made token: %d %s", res.StatusCode, body)
	}
}

// TestLoginCSRFAttacks tries to sign a visitor in with a form they did not
// submit: no session may be created.
func TestLoginCSRFAttacks(t *testing.T) {
	var lastErr error
	e := newEnv(t, func(c *latchhttp.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			lastErr = err
			latchhttp.DefaultErrorHandler(w, r, err)
		}
	})
	attacker := e.newClient()
	attackerTok := attacker.form()
	madeUp := specMask(make([]byte, 32))
	secret := make([]byte, 32)
	rand.Read(secret)
	foreignTok := specMask(specAnonKey(secret)) // minted for a cookie the victim does not have

	for _, tc := range []struct {
		name   string
		form   bool // the victim loaded the login form first
		tok    string
		hdr    []string
		reason string
	}{
		{"no token", true, "", nil, "missing-token"},
		{"no token, no cookie", false, "", nil, "missing-token"},
		{"made-up token", true, madeUp, nil, "invalid-token"},
		{"another visitor's token", true, attackerTok, nil, "invalid-token"},
		{"another visitor's token, no cookie", false, attackerTok, nil, "invalid-token"},
		{"token for another cookie", true, foreignTok, nil, "invalid-token"},
		{"garbage token", true, "not-a-token", nil, "invalid-token"},
		{"Basic credentials are ambient", true, "", []string{"Authorization", "Basic YWxpY2U6cHc="}, "missing-token"},
		{"cross-site", true, "own", []string{"Sec-Fetch-Site", "cross-site"}, "cross-origin"},
		{"same-site", true, "own", []string{"Sec-Fetch-Site", "same-site"}, "cross-origin"},
		{"foreign origin", true, "own", []string{"Origin", "https://evil.example"}, "cross-origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := e.newClient()
			if tc.form {
				own := victim.form()
				if tc.tok == "own" {
					tc.tok = own
				}
			}
			before := e.ev.count(latch.EventCSRFRejected, tc.reason)
			f := url.Values{"user": {"victim"}}
			if tc.tok != "" {
				f.Set("csrf_token", tc.tok)
			}
			req := victim.req("POST", "/login", strings.NewReader(f.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			res, body := victim.do(req)
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("login: %d %s, want 403", res.StatusCode, body)
			}
			var ce *latchhttp.CSRFError
			if !errors.As(lastErr, &ce) || ce.Reason != tc.reason {
				t.Fatalf("error %v, want a CSRFError %q", lastErr, tc.reason)
			}
			if e.ev.count(latch.EventCSRFRejected, tc.reason)-before != 1 {
				t.Fatal("no csrf.rejected event")
			}
			if victim.sessionCookie() != "" {
				t.Fatal("a session cookie was set")
			}
			if list, _ := e.m.List(t.Context(), "victim"); len(list) != 0 {
				t.Fatalf("%d sessions created", len(list))
			}
		})
	}
}

func TestAnonymousCSRFLogin(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	anonTok := c.form()
	anonSecret := c.anonCookie()
	lr := c.login("alice")
	if c.anonCookie() != "" {
		t.Fatal("the anonymous CSRF cookie survived login")
	}
	if lr.CSRF == "" || specValid(anonSecret, lr.CSRF) {
		t.Fatal("after login CSRFToken must return the session's token")
	}
	// After login only the session token works, even with the old
	// anonymous cookie put back.
	c.setAnonCookie(anonSecret)
	c.csrf = anonTok
	if res, _ := c.post("/echo", url.Values{"note": {"x"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous token with a session: %d", res.StatusCode)
	}
	c.csrf = lr.CSRF
	if res, body := c.post("/echo", url.Values{"note": {"x"}}); res.StatusCode != 200 || body != "cookie x" {
		t.Fatalf("session token: %d %s", res.StatusCode, body)
	}
	// The session page hands out no anonymous cookie.
	if res, _ := c.get("/form"); findAnonSetCookie(res) != nil {
		t.Fatal("an anonymous cookie set for a signed-in visitor")
	}
}

// TestEndedSessionIsAnonymous: a request whose session cookie no longer
// works is anonymous — it needs the anonymous token, and a rejection says
// why the session did not count.
func TestEndedSessionIsAnonymous(t *testing.T) {
	var lastErr error
	e := newEnv(t, func(c *latchhttp.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			lastErr = err
			latchhttp.DefaultErrorHandler(w, r, err)
		}
	})
	c := e.newClient()
	if _, why := c.get("/why"); why != "none" {
		t.Fatalf("AuthError without credentials: %s", why)
	}
	c.login("alice")
	c.me()
	if _, why := c.get("/why"); why != "none" {
		t.Fatalf("AuthError with a live session: %s", why)
	}
	sessTok := c.csrf
	cookie := c.sessionCookie()
	if _, err := e.m.RevokeSubject(t.Context(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, why := c.get("/why"); why != "revoked" {
		t.Fatalf("AuthError after revocation: %s", why)
	}
	c.setSessionCookie(cookie)
	// A form of the ended session.
	res, _ := c.post("/logout", nil)
	if res.StatusCode != http.StatusForbidden || !errors.Is(lastErr, latchhttp.ErrCSRF) || !errors.Is(lastErr, latch.ErrRevoked) {
		t.Fatalf("post of an ended session: %d %v, want 403 matching ErrCSRF and latch.ErrRevoked", res.StatusCode, lastErr)
	}
	if strings.Contains(lastErr.Error(), sessTok) {
		t.Fatal("the error contains the token")
	}
	if c.sessionCookie() != "" {
		t.Fatal("the dead session cookie was not deleted")
	}
	// An expired session says so.
	c.login("alice")
	e.clock.Advance(latch.DefaultIdleTimeout + time.Second)
	if _, why := c.get("/why"); why != "expired" {
		t.Fatalf("AuthError after the idle timeout: %s", why)
	}
	// Signing in again from the login page works.
	c.login("alice")
	if info, code := c.me(); code != 200 || info.Subject != "alice" {
		t.Fatalf("sign-in after the session ended: %d", code)
	}
}

func TestAnonymousCSRFExempt(t *testing.T) {
	e := newEnv(t, func(c *latchhttp.Config) { c.AnonymousCSRFExempt = []string{"POST /echo", "POST /logout"} })
	c := e.newClient()
	// Without a session, exempt endpoints need no token...
	if res, _ := c.post("/logout", nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("exempt endpoint without a session: %d", res.StatusCode)
	}
	// ...but still refuse cross-site requests...
	req := c.req("POST", "/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res, _ := c.do(req); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post to an exempt endpoint: %d", res.StatusCode)
	}
	// ...others do, and with a session the session token is required.
	if res, _ := c.post("/login", url.Values{"user": {"alice"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("login without a token: %d", res.StatusCode)
	}
	c.login("alice")
	c.csrf = ""
	if res, _ := c.post("/echo", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("exempt endpoint with a session, no token: %d", res.StatusCode)
	}

	m, err := latch.New(latch.Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = latchhttp.New(m, latchhttp.Config{AnonymousCSRFExempt: []string{"POST /{x"}})
	var ce *latchhttp.ConfigError
	if !errors.As(err, &ce) || ce.Field != "AnonymousCSRFExempt" {
		t.Fatalf("bad pattern: %v", err)
	}
	// The same pattern in both lists is fine.
	if _, err := latchhttp.New(m, latchhttp.Config{AnonymousCSRFExempt: []string{"POST /cb"}, CrossOriginBypass: []string{"POST /cb"}}); err != nil {
		t.Fatal(err)
	}
}

// TestAnonymousTokenAfterCommit: once the response is written no cookie can
// be set, so a visitor without one gets no token rather than a useless one.
func TestAnonymousTokenAfterCommit(t *testing.T) {
	m, err := latch.New(latch.Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := latchhttp.New(m, latchhttp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("page"))
		tok = latchhttp.CSRFToken(r)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "https://example.com/", nil))
	if tok != "" {
		t.Fatal("a token without a cookie to back it")
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	cookie := base64.RawURLEncoding.EncodeToString(secret)
	req := httptest.NewRequest("GET", "https://example.com/", nil)
	req.AddCookie(&http.Cookie{Name: anonCookie, Value: cookie})
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !specValid(cookie, tok) {
		t.Fatal("a visitor with a cookie gets a valid token after commit too")
	}
}

// FuzzAnonymousCSRF posts hostile anonymous CSRF cookies and tokens: the
// middleware must accept exactly the pairs the spec accepts, and never
// panic or answer 5xx.
func FuzzAnonymousCSRF(f *testing.F) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver})
	if err != nil {
		f.Fatal(err)
	}
	s, err := latchhttp.New(m, latchhttp.Config{})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	secret := make([]byte, 32)
	good := base64.RawURLEncoding.EncodeToString(secret)
	f.Add(good, specMask(specAnonKey(secret)))
	f.Add(good, specMask(make([]byte, 32)))
	f.Add(good+"=", specMask(specAnonKey(secret)))
	f.Add(strings.Repeat("_", 43), strings.Repeat("-", 86))
	f.Add("", "")
	f.Add(`"`+good+`"`, "x")
	f.Fuzz(func(t *testing.T, cookie, tok string) {
		req := httptest.NewRequest("POST", "https://example.com/login", nil)
		req.Header["Cookie"] = []string{anonCookie + "=" + cookie}
		req.Header["X-Csrf-Token"] = []string{tok}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d", rec.Code)
		}
		v := cookie
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		want := http.StatusForbidden
		if !strings.ContainsAny(cookie, ";") && specValid(v, tok) {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Fatalf("cookie %q token %q: status %d, want %d", cookie, tok, rec.Code, want)
		}
	})
}
