package latchhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

func TestConfigRefusals(t *testing.T) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.ObserverFunc(func(context.Context, latch.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cfg   latchhttp.Config
		field string // "" means accepted
	}{
		{"zero value", latchhttp.Config{}, ""},
		{"strict", latchhttp.Config{SameSite: http.SameSiteStrictMode}, ""},
		{"none is secure by default", latchhttp.Config{SameSite: http.SameSiteNoneMode}, ""},
		{"secure prefix with domain", latchhttp.Config{CookieName: "__Secure-s", CookieDomain: "example.com"}, ""},
		{"dev cookie without prefix", latchhttp.Config{CookieName: "latch", InsecureCookieForDevelopmentOnly: true}, ""},
		{"host prefix with domain", latchhttp.Config{CookieDomain: "example.com"}, "CookieDomain"},
		{"host prefix with path", latchhttp.Config{CookiePath: "/app"}, "CookiePath"},
		{"host prefix lower case with domain", latchhttp.Config{CookieName: "__host-x", CookieDomain: "example.com"}, "CookieDomain"},
		{"host prefix not secure", latchhttp.Config{InsecureCookieForDevelopmentOnly: true}, "InsecureCookieForDevelopmentOnly"},
		{"secure prefix not secure", latchhttp.Config{CookieName: "__Secure-x", InsecureCookieForDevelopmentOnly: true}, "InsecureCookieForDevelopmentOnly"},
		{"samesite none not secure", latchhttp.Config{CookieName: "s", SameSite: http.SameSiteNoneMode, InsecureCookieForDevelopmentOnly: true}, "SameSite"},
		{"unknown samesite", latchhttp.Config{SameSite: 9}, "SameSite"},
		{"bad cookie name", latchhttp.Config{CookieName: "a b"}, "CookieName"},
		{"bad cookie name semicolon", latchhttp.Config{CookieName: "a;b"}, "CookieName"},
		{"relative path", latchhttp.Config{CookieName: "s", CookiePath: "app"}, "CookiePath"},
		{"path with semicolon", latchhttp.Config{CookieName: "s", CookiePath: "/a;Domain=evil"}, "CookiePath"},
		{"bad domain", latchhttp.Config{CookieName: "s", CookieDomain: "exa mple.com"}, "CookieDomain"},
		{"bad trusted origin", latchhttp.Config{TrustedOrigins: []string{"example.com"}}, "TrustedOrigins"},
		{"ip header without proxies", latchhttp.Config{ClientIPHeader: "X-Forwarded-For"}, "ClientIPHeader"},
		{"forwarded header", latchhttp.Config{ClientIPHeader: "Forwarded", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "ClientIPHeader"},
		{"ip header with proxies", latchhttp.Config{ClientIPHeader: "X-Forwarded-For", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, ""},
		{"bypass pattern", latchhttp.Config{CrossOriginBypass: []string{"POST /auth/callback"}}, ""},
		{"bad bypass pattern", latchhttp.Config{CrossOriginBypass: []string{"POST /a/{x"}}, "CrossOriginBypass"},
		{"negative form size", latchhttp.Config{MaxFormSize: -1}, "MaxFormSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := latchhttp.New(m, tc.cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *latchhttp.ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, latchhttp.ErrConfig) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			if ce.Field != tc.field || ce.Reason == "" {
				t.Fatalf("got field %q reason %q, want field %q with a reason", ce.Field, ce.Reason, tc.field)
			}
		})
	}
	if _, err := latchhttp.New(nil, latchhttp.Config{}); !errors.Is(err, latchhttp.ErrConfig) {
		t.Fatalf("nil manager: %v", err)
	}
}

func findSetCookie(t *testing.T, res *http.Response) (*http.Cookie, string) {
	t.Helper()
	var raw []string
	for _, line := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(line, latchhttp.DefaultCookieName+"=") {
			raw = append(raw, line)
		}
	}
	if len(raw) != 1 {
		t.Fatalf("want one session Set-Cookie, got %q", raw)
	}
	c, err := http.ParseSetCookie(raw[0])
	if err != nil {
		t.Fatal(err)
	}
	return c, raw[0]
}

func hasVary(res *http.Response, v string) bool {
	for _, line := range res.Header.Values("Vary") {
		for _, f := range strings.Split(line, ",") {
			if strings.EqualFold(strings.TrimSpace(f), v) {
				return true
			}
		}
	}
	return false
}

func TestCookieAttributes(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	c.form()
	res, _ := c.post("/login", url.Values{"user": {"alice"}})
	ck, raw := findSetCookie(t, res)
	if !strings.HasPrefix(ck.Value, "lts_") || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("cookie attributes: %s", raw)
	}
	if ck.MaxAge != int(latch.DefaultAbsoluteTimeout/time.Second) {
		t.Fatalf("Max-Age = %d, want the absolute timeout", ck.MaxAge)
	}
	if strings.Contains(raw, "Domain") {
		t.Fatalf("cookie has a Domain: %s", raw)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("login Cache-Control = %q", got)
	}
	if !hasVary(res, "Cookie") || !hasVary(res, "Authorization") {
		t.Fatalf("Vary = %q", res.Header.Values("Vary"))
	}

	// Max-Age follows the absolute deadline: a later renewal gets less.
	e.clock.Advance(20 * time.Minute)
	c.me()
	res, body := c.post("/renew", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("renew: %d %s", res.StatusCode, body)
	}
	ck, _ = findSetCookie(t, res)
	if want := int((latch.DefaultAbsoluteTimeout - 20*time.Minute) / time.Second); ck.MaxAge != want {
		t.Fatalf("renewed Max-Age = %d, want %d", ck.MaxAge, want)
	}

	// Nothing changed: no Set-Cookie, but Vary.
	res, body = c.get("/public")
	if body != "hello alice" || len(res.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("plain request: %q, Set-Cookie %q", body, res.Header.Values("Set-Cookie"))
	}
	if !hasVary(res, "Cookie") {
		t.Fatal("no Vary: Cookie on a plain request")
	}

	// Logout deletes the cookie with identical attributes.
	c.me()
	res, _ = c.post("/logout", nil)
	del, raw := findSetCookie(t, res)
	if del.Value != "" || del.MaxAge >= 0 || !del.Secure || !del.HttpOnly || del.SameSite != http.SameSiteLaxMode || del.Path != "/" || del.Domain != "" {
		t.Fatalf("deletion cookie: %s", raw)
	}
	if res.Header.Get("Clear-Site-Data") != `"cookies"` || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("logout headers: %v", res.Header)
	}
}

func TestCustomCookieAttributes(t *testing.T) {
	e := newEnv(t, func(c *latchhttp.Config) {
		c.CookieName = "__Secure-app"
		c.CookieDomain = "example.com"
		c.CookiePath = "/app"
		c.SameSite = http.SameSiteStrictMode
	})
	// Drive the middleware directly: the jar would not accept Domain=example.com.
	h := e.s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := e.s.Login(w, r, latch.NewSession{Subject: "alice"}); err != nil {
			t.Fatal(err)
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, withAnonCSRF(httptest.NewRequest("POST", "https://app.example.com/app/login", nil), "__Secure-app"))
	res := rec.Result()
	raw := res.Header.Get("Set-Cookie")
	ck, err := http.ParseSetCookie(raw)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Name != "__Secure-app" || ck.Domain != "example.com" || ck.Path != "/app" || ck.SameSite != http.SameSiteStrictMode || !ck.Secure || !ck.HttpOnly {
		t.Fatalf("cookie: %s", raw)
	}

	// The development cookie lacks Secure and nothing else.
	e2 := newEnv(t, func(c *latchhttp.Config) {
		c.CookieName = "latch"
		c.InsecureCookieForDevelopmentOnly = true
	})
	h = e2.s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := e2.s.Login(w, r, latch.NewSession{Subject: "alice"}); err != nil {
			t.Fatal(err)
		}
	}))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, withAnonCSRF(httptest.NewRequest("POST", "http://192.168.1.2/login", nil), "latch"))
	raw = rec.Result().Header.Get("Set-Cookie")
	ck, _ = http.ParseSetCookie(raw)
	if ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
		t.Fatalf("dev cookie: %s", raw)
	}
}

func TestFixation(t *testing.T) {
	e := newEnv(t)
	attacker := e.newClient()
	attacker.login("mallory")
	planted := attacker.sessionCookie()

	victim := e.newClient()
	victim.setSessionCookie(planted)
	// The victim's login page carries the planted session's CSRF token.
	if info, code := victim.me(); code != http.StatusOK || info.Subject != "mallory" {
		t.Fatalf("planted session: %d %+v", code, info)
	}
	victim.login("alice")
	got := victim.sessionCookie()
	if got == "" || got == planted {
		t.Fatal("the planted cookie was kept")
	}
	if info, _ := victim.me(); info.Subject != "alice" {
		t.Fatalf("victim is %q", info.Subject)
	}
	if _, err := e.m.Validate(context.Background(), planted); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("planted session after login: %v, want revoked", err)
	}
	if _, code := attacker.me(); code != http.StatusUnauthorized {
		t.Fatalf("attacker still signed in: %d", code)
	}

	// A garbage pre-login cookie is neither adopted nor kept.
	v2 := e.newClient()
	v2.setSessionCookie("lts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	res, body := v2.get("/public")
	if body != "hello stranger" {
		t.Fatalf("garbage cookie: %q", body)
	}
	if ck, _ := findSetCookie(t, res); ck.MaxAge >= 0 {
		t.Fatal("garbage cookie not deleted")
	}
	if v2.sessionCookie() != "" {
		t.Fatal("jar still holds the garbage cookie")
	}
	v2.login("bob")
	if info, _ := v2.me(); info.Subject != "bob" {
		t.Fatalf("after login: %+v", info)
	}
}

func TestDeadCookieCleared(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	c.login("alice")
	if _, err := e.m.RevokeSubject(context.Background(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	res, body := c.get("/public")
	if body != "hello stranger" {
		t.Fatalf("revoked session still authenticates: %q", body)
	}
	ck, _ := findSetCookie(t, res)
	if ck.MaxAge >= 0 || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("dead cookie not deleted")
	}
	if c.sessionCookie() != "" {
		t.Fatal("jar still holds the cookie")
	}
	// Later requests carry no cookie and get no Set-Cookie.
	res, _ = c.get("/public")
	if len(res.Header.Values("Set-Cookie")) != 0 {
		t.Fatal("Set-Cookie without a change")
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	lr := c.login("alice")
	old := c.sessionCookie()
	c.me()
	if res, _ := c.bearer("/me", lr.Access); res.StatusCode != http.StatusOK {
		t.Fatalf("access token before logout: %d", res.StatusCode)
	}
	res, _ := c.post("/logout", nil)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	if c.sessionCookie() != "" {
		t.Fatal("cookie kept after logout")
	}
	// The old cookie, refresh token and access token are all dead.
	replay := e.newClient()
	replay.setSessionCookie(old)
	if _, code := replay.me(); code != http.StatusUnauthorized {
		t.Fatalf("old cookie after logout: %d", code)
	}
	if _, err := e.m.Refresh(context.Background(), lr.Refresh); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("refresh after logout: %v", err)
	}
	res, _ = replay.bearer("/me", lr.Access)
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("access token after logout: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	if e.ev.count(latch.EventRevoked, "logout") != 1 {
		t.Fatal("no logout event")
	}
}

func TestLogoutBearer(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	lr := c.login("alice")
	api := e.newClient()
	req := api.req("POST", "/logout", nil)
	req.Header.Set("Authorization", "Bearer "+lr.Access)
	if res, _ := api.do(req); res.StatusCode != http.StatusNoContent {
		t.Fatalf("bearer logout: %d", res.StatusCode)
	}
	if _, code := c.me(); code != http.StatusUnauthorized {
		t.Fatalf("cookie after bearer logout: %d", code)
	}
}

func TestRenew(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	lr := c.login("alice")
	old := c.sessionCookie()
	info, _ := c.me()
	oldCSRF := info.CSRFToken
	res, _ := c.post("/renew", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("renew: %d", res.StatusCode)
	}
	ck, _ := findSetCookie(t, res)
	if ck.Value == old || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("renew kept the cookie")
	}
	info2, code := c.me()
	if code != http.StatusOK || info2.SessionID != info.SessionID {
		t.Fatalf("after renew: %d %+v", code, info2)
	}
	replay := e.newClient()
	replay.setSessionCookie(old)
	if _, code := replay.me(); code != http.StatusUnauthorized {
		t.Fatalf("old cookie after renew: %d", code)
	}
	if _, err := e.m.Refresh(context.Background(), lr.Refresh); err == nil {
		t.Fatal("old refresh token works after renew")
	}
	// Access tokens issued before the renewal end with it too.
	if res, _ := e.newClient().bearer("/me", lr.Access); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("access token from before the renewal: %d", res.StatusCode)
	}
	// A CSRF token of a page served before the renewal is refused.
	c.csrf = oldCSRF
	if res, _ := c.post("/echo", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("old CSRF token after renew: %d", res.StatusCode)
	}
}

func TestRevokeOthers(t *testing.T) {
	e := newEnv(t)
	laptop, phone, tablet, bob := e.newClient(), e.newClient(), e.newClient(), e.newClient()
	laptop.login("alice")
	phone.login("alice")
	tablet.login("alice")
	bob.login("bob")
	laptop.me()
	res, body := laptop.post("/revoke-others", nil)
	if res.StatusCode != http.StatusOK || body != "2" {
		t.Fatalf("revoke others: %d %q", res.StatusCode, body)
	}
	if _, code := laptop.me(); code != http.StatusOK {
		t.Fatal("current session revoked")
	}
	for _, c := range []*client{phone, tablet} {
		if _, code := c.me(); code != http.StatusUnauthorized {
			t.Fatal("other session still valid")
		}
	}
	if _, code := bob.me(); code != http.StatusOK {
		t.Fatal("another subject's session revoked")
	}
}

func TestConcurrentUpdates(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	c.login("alice")
	c.me()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				form := url.Values{"csrf_token": {c.csrf}}
				req, _ := http.NewRequest("POST", e.srv.URL+"/incr", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				res, err := c.http.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				res.Body.Close()
				if res.StatusCode != http.StatusNoContent {
					errs <- res.Status
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sess, ok := c.session(t)
	if !ok {
		t.Fatal("no session")
	}
	n, _ := sess.Value("n")
	if string(n) != strconv.Itoa(workers*each) {
		t.Fatalf("n = %s, want %d (lost updates)", n, workers*each)
	}
}

// session loads the client's session through the manager.
func (c *client) session(t *testing.T) (*latch.Session, bool) {
	s, err := c.e.m.Validate(context.Background(), c.sessionCookie())
	return s, err == nil
}

func TestIdleAndAbsoluteExpiry(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	c.login("alice")
	info, _ := c.me()
	if info.IdleSecondsLeft != int64(latch.DefaultIdleTimeout/time.Second) {
		t.Fatalf("idle seconds left = %d", info.IdleSecondsLeft)
	}
	// Activity keeps the session alive past the idle timeout…
	for range 5 {
		e.clock.Advance(20 * time.Minute)
		info, code := c.me()
		if code != http.StatusOK {
			t.Fatalf("active session expired: %d", code)
		}
		if want := int64((latch.DefaultIdleTimeout) / time.Second); info.IdleSecondsLeft != want {
			t.Fatalf("idle seconds left after touch = %d, want %d", info.IdleSecondsLeft, want)
		}
	}
	// …and a minute under the touch interval shows the countdown.
	e.clock.Advance(30 * time.Second)
	info, _ = c.me()
	if want := int64((latch.DefaultIdleTimeout - 30*time.Second) / time.Second); info.IdleSecondsLeft != want {
		t.Fatalf("idle seconds left = %d, want %d", info.IdleSecondsLeft, want)
	}
	// Idle expiry.
	e.clock.Advance(latch.DefaultIdleTimeout)
	res, _ := c.get("/me")
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("idle session accepted: %d", res.StatusCode)
	}
	if ck, _ := findSetCookie(t, res); ck.MaxAge >= 0 {
		t.Fatal("idle-expired cookie not deleted")
	}
	if e.ev.count(latch.EventExpired, "idle-timeout") != 1 {
		t.Fatal("no idle-timeout event")
	}

	// Absolute expiry, however active the session.
	c.login("alice")
	for elapsed := time.Duration(0); elapsed < latch.DefaultAbsoluteTimeout-20*time.Minute; elapsed += 20 * time.Minute {
		e.clock.Advance(20 * time.Minute)
		if _, code := c.me(); code != http.StatusOK {
			t.Fatalf("active session expired after %v", elapsed)
		}
	}
	info, _ = c.me()
	if info.IdleSecondsLeft > int64(20*time.Minute/time.Second) {
		t.Fatalf("countdown ignores the absolute deadline: %d s", info.IdleSecondsLeft)
	}
	e.clock.Advance(20 * time.Minute)
	if _, code := c.me(); code != http.StatusUnauthorized {
		t.Fatal("session outlived its absolute deadline")
	}
	if e.ev.count(latch.EventExpired, "absolute-timeout") != 1 {
		t.Fatal("no absolute-timeout event")
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	lr := c.login("alice")
	e.store.setDown(true)
	res, _ := c.get("/public")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("store down, cookie: %d", res.StatusCode)
	}
	if len(res.Header.Values("Set-Cookie")) != 0 {
		t.Fatal("cookie deleted on a store failure")
	}
	if res, _ := c.bearer("/public", lr.Access); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("store down, bearer: %d", res.StatusCode)
	}
	e.store.setDown(false)
	if _, code := c.me(); code != http.StatusOK {
		t.Fatal("session lost after the store came back")
	}
}

func TestBearer(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	lr := c.login("alice")
	api := e.newClient()
	res, body := api.bearer("/public", lr.Access)
	if body != "hello alice" {
		t.Fatalf("bearer: %d %q", res.StatusCode, body)
	}
	if len(res.Header.Values("Set-Cookie")) != 0 {
		t.Fatal("bearer response sets a cookie")
	}
	// Unsafe methods need no CSRF token, even cross-site.
	req := api.req("POST", "/echo", strings.NewReader("note=hi"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "bearer "+lr.Access)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res, body := api.do(req); res.StatusCode != http.StatusOK || body != "bearer hi" {
		t.Fatalf("bearer POST: %d %q", res.StatusCode, body)
	}
	// An invalid bearer token does not fall back to the cookie.
	req = c.req("GET", "/me", nil)
	req.Header.Set("Authorization", "Bearer "+lr.Access+"x")
	if res, _ := c.do(req); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad bearer with a good cookie: %d", res.StatusCode)
	}
	// A refresh or session token is not an access token.
	for _, tok := range []string{lr.Refresh, c.sessionCookie()} {
		if res, _ := api.bearer("/me", tok); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("non-access token as bearer: %d", res.StatusCode)
		}
	}
	// Tokens in the query string are never read.
	if res, _ := api.get("/me?access_token=" + url.QueryEscape(lr.Access)); res.StatusCode != http.StatusUnauthorized {
		t.Fatal("access token read from the query string")
	}
	if res, _ := api.get("/me?" + latchhttp.DefaultCookieName + "=" + url.QueryEscape(c.sessionCookie())); res.StatusCode != http.StatusUnauthorized {
		t.Fatal("session token read from the query string")
	}
	// Revocation ends bearer access at once.
	if _, err := e.m.RevokeSubject(context.Background(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	if res, _ := api.bearer("/me", lr.Access); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bearer after revocation: %d", res.StatusCode)
	}
}

func TestResponseController(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	res, body := c.get("/flush")
	if res.StatusCode != http.StatusOK || body != "ab" {
		t.Fatalf("ResponseController through the middleware: %d %q", res.StatusCode, body)
	}
	if !hasVary(res, "Cookie") {
		t.Fatal("no Vary after Flush")
	}
}

func TestHelpersAfterHeadersWritten(t *testing.T) {
	e := newEnv(t)
	h := e.s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		if _, err := e.s.Login(w, r, latch.NewSession{Subject: "alice"}); !errors.Is(err, latchhttp.ErrHeadersWritten) {
			t.Errorf("Login after WriteHeader: %v", err)
		}
		if err := e.s.Logout(w, r); !errors.Is(err, latchhttp.ErrHeadersWritten) {
			t.Errorf("Logout after WriteHeader: %v", err)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))

	// Outside the middleware the helpers panic with a clear message.
	defer func() {
		if p := recover(); p == nil || !strings.HasPrefix(p.(string), "latchhttp: ") {
			t.Fatalf("panic = %v", p)
		}
	}()
	e.s.Login(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), latch.NewSession{Subject: "alice"})
}

func TestEarlyHintsDoNotCommit(t *testing.T) {
	e := newEnv(t)
	h := e.s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		if _, err := e.s.Login(w, r, latch.NewSession{Subject: "alice"}); err != nil {
			t.Errorf("Login after 103: %v", err)
		}
	}))
	srv := httptest.NewTLSServer(h) // the recorder does not model 1xx responses
	defer srv.Close()
	req, err := http.NewRequest("POST", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Client().Do(withAnonCSRF(req, latchhttp.DefaultCookieName))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Set-Cookie"), latchhttp.DefaultCookieName+"=lts_") {
		t.Fatalf("no cookie after 103: %d %v", res.StatusCode, res.Header)
	}
}

func TestClientIP(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	for _, tc := range []struct {
		name, remote, xff string
		cfg               latchhttp.Config
		want              string
	}{
		{"remote addr", "203.0.113.9:5555", "198.51.100.1", latchhttp.Config{}, "203.0.113.9"},
		{"ipv6 remote", "[2001:db8::1]:443", "", latchhttp.Config{}, "2001:db8::1"},
		{"untrusted proxy", "203.0.113.9:5555", "198.51.100.1", latchhttp.Config{ClientIPHeader: "X-Forwarded-For", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "203.0.113.9"},
		{"trusted proxy", "10.0.0.2:5555", "192.0.2.7, 198.51.100.1, 10.0.0.3", latchhttp.Config{ClientIPHeader: "x-forwarded-for", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "198.51.100.1"},
		{"garbage header", "10.0.0.2:5555", "not-an-ip", latchhttp.Config{ClientIPHeader: "X-Forwarded-For", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "10.0.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			m, err := latch.New(latch.Config{Store: memstore.New(), Now: clk.Now, Observer: latch.ObserverFunc(func(_ context.Context, ev latch.Event) {
				mu.Lock()
				seen = append(seen, ev.IP)
				mu.Unlock()
			})})
			if err != nil {
				t.Fatal(err)
			}
			s, err := latchhttp.New(m, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var ip string
			h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				iss, err := s.Login(w, r, latch.NewSession{Subject: "alice"})
				if err != nil {
					t.Fatal(err)
				}
				ip = iss.Session.IP()
			}))
			req := withAnonCSRF(httptest.NewRequest("POST", "/", nil), latchhttp.DefaultCookieName)
			req.RemoteAddr = tc.remote
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if ip != tc.want {
				t.Fatalf("client IP = %q, want %q", ip, tc.want)
			}
		})
	}
	if !slices.Contains(seen, "198.51.100.1") {
		t.Fatalf("events saw IPs %q", seen)
	}
}

func TestHijack(t *testing.T) {
	e := newEnv(t)
	h := e.s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Error("the middleware's writer is not an http.Hijacker")
			return
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		buf.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if string(b) != "hijacked" {
		t.Fatalf("body %q", b)
	}
}

func TestHelpersFailClosed(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	c.login("alice")
	c.me()
	cookie := c.sessionCookie()
	// Logout while the store cannot be read: the middleware answers 503
	// before the handler runs, and the cookie stays.
	e.store.setDown(true)
	res, _ := c.post("/logout", nil)
	if res.StatusCode != http.StatusServiceUnavailable || len(res.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("logout with the store down: %d %q", res.StatusCode, res.Header.Values("Set-Cookie"))
	}
	e.store.setDown(false)
	if c.sessionCookie() != cookie {
		t.Fatal("cookie changed by a failed logout")
	}

	// Login whose fixation revocation cannot be done fails without a cookie.
	h := e.s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.store.setDown(true)
		defer e.store.setDown(false)
		if _, err := e.s.Login(w, r, latch.NewSession{Subject: "bob"}); !errors.Is(err, latch.ErrUnavailable) {
			t.Errorf("Login with the store down: %v", err)
		}
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", latchhttp.DefaultCookieName+"="+cookie)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if sc := rec.Result().Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Fatalf("failed login set %q", sc)
	}
}

func TestTouchRecordsClient(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	c.login("alice")
	req := c.req("GET", "/me", nil)
	req.Header.Set("User-Agent", "Browser/2.0")
	e.clock.Advance(2 * latch.DefaultTouchInterval)
	if res, _ := c.do(req); res.StatusCode != http.StatusOK {
		t.Fatal(res.Status)
	}
	s, ok := c.session(t)
	if !ok || s.UserAgent() != "Browser/2.0" || s.IP() != "127.0.0.1" {
		t.Fatalf("touch recorded UA %q IP %q", s.UserAgent(), s.IP())
	}
	if !s.LastSeenAt().Equal(e.clock.Now()) {
		t.Fatalf("LastSeenAt %v, want %v", s.LastSeenAt(), e.clock.Now())
	}
}
