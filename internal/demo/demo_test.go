package demo

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

const testPassword = "correct horse battery"

const (
	uaChromeLinux    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	uaFirefoxWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
)

type app struct {
	h     *Handler
	m     *latch.Manager
	clock *testutil.Clock
	logs  *testutil.Buffer
}

func newApp(t *testing.T, mut ...func(*latch.Config, *Config)) *app {
	t.Helper()
	a := &app{clock: testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), logs: &testutil.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lc := latch.Config{Store: memstore.New(), Now: a.clock.Now, Observer: latch.SlogObserver(logger)}
	dc := Config{Password: testPassword, Logger: logger}
	for _, f := range mut {
		f(&lc, &dc)
	}
	m, err := latch.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(m, dc)
	if err != nil {
		t.Fatal(err)
	}
	a.h, a.m = h, m
	return a
}

// browser is a minimal cookie-keeping client that calls the handler
// directly, as a browser on https://localhost would.
type browser struct {
	t       *testing.T
	a       *app
	ua, ip  string
	cookies map[string]string
}

func (a *app) browser(t *testing.T, ua, ip string) *browser {
	return &browser{t: t, a: a, ua: ua, ip: ip, cookies: map[string]string{}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "https://localhost"+path, body)
	req.RemoteAddr = b.ip + ":40000"
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.ua != "" {
		req.Header.Set("User-Agent", b.ua)
	}
	for name, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: v})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	b.a.h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return response{res, rec.Body.String()}
}

func (b *browser) get(path string) response { return b.do(http.MethodGet, path, nil) }

func hasCookie(res response, name string) bool {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return true
		}
	}
	return false
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

// csrf loads the home page and returns the CSRF token of its forms.
func (b *browser) csrf() string {
	b.t.Helper()
	res := b.get("/")
	if res.StatusCode != http.StatusOK {
		b.t.Fatalf("GET / = %d, want 200", res.StatusCode)
	}
	m := csrfRE.FindStringSubmatch(res.body)
	if m == nil || m[1] == "" {
		b.t.Fatal("the home page has no csrf_token field")
	}
	return html.UnescapeString(m[1])
}

// stripCSRF removes the CSRF tokens, masked differently on every page.
func stripCSRF(body string) string { return csrfRE.ReplaceAllString(body, "") }

// loginToken loads the login form and returns its CSRF token; signed in,
// the home page's.
func (b *browser) loginToken() string {
	b.t.Helper()
	res := b.get("/login")
	if res.StatusCode == http.StatusSeeOther {
		return b.csrf()
	}
	m := csrfRE.FindStringSubmatch(res.body)
	if res.StatusCode != http.StatusOK || m == nil || m[1] == "" {
		b.t.Fatalf("GET /login = %d without a csrf_token", res.StatusCode)
	}
	return html.UnescapeString(m[1])
}

// signIn submits the login form as a browser would: loaded, then posted
// with its CSRF token.
func (b *browser) signIn(user, password string) response {
	b.t.Helper()
	tok := b.loginToken()
	return b.do(http.MethodPost, "/login", url.Values{"username": {user}, "password": {password}, "csrf_token": {tok}})
}

func (b *browser) mustSignIn(user string) string {
	b.t.Helper()
	res := b.signIn(user, testPassword)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		b.t.Fatalf("sign-in as %s: %d Location %q, want 303 to /", user, res.StatusCode, res.Header.Get("Location"))
	}
	return b.sessionID()
}

var sidRE = regexp.MustCompile(`<code id="session-id">([^<]+)</code>`)

func (b *browser) sessionID() string {
	b.t.Helper()
	res := b.get("/")
	m := sidRE.FindStringSubmatch(res.body)
	if m == nil {
		b.t.Fatalf("GET / (%d) shows no session ID", res.StatusCode)
	}
	return m[1]
}

func (a *app) live(t *testing.T, id string) bool {
	t.Helper()
	_, err := a.m.Get(context.Background(), id)
	switch {
	case err == nil:
		return true
	case errors.Is(err, latch.ErrNotFound):
		return false
	}
	t.Fatalf("Get(%s): %v", id, err)
	return false
}

func TestSignIn(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")

	res := b.get("/")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Fatalf("GET / without a session = %d to %q, want 303 to /login", res.StatusCode, res.Header.Get("Location"))
	}
	res = b.get("/login")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, `<form method="post" action="/login"`) {
		t.Fatalf("GET /login = %d without the form", res.StatusCode)
	}

	res = b.signIn("alice", testPassword)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in = %d, want 303", res.StatusCode)
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == latchhttp.DefaultCookieName {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("sign-in set no session cookie")
	}
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" {
		t.Errorf("session cookie %+v, want HttpOnly, Secure, SameSite=Lax, Path=/", cookie)
	}

	if res.Header.Get("Location") != "/" {
		t.Fatalf("sign-in redirects to %q, want /", res.Header.Get("Location"))
	}
	res = b.get("/")
	for _, want := range []string{"Hello, alice", `id="session-id"`, "Signed in.", "Chrome on Linux", "This device", `id="idle-left"`} {
		if !strings.Contains(res.body, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	// The banner is shown once: a reload does not bring it back.
	if res := b.get("/"); res.StatusCode != http.StatusOK || strings.Contains(res.body, "Signed in.") {
		t.Errorf("reload: %d, banner still shown: %v", res.StatusCode, strings.Contains(res.body, "Signed in."))
	}
	list, err := a.m.List(context.Background(), "alice")
	if err != nil || len(list) != 1 {
		t.Fatalf("alice has %d sessions (%v), want 1", len(list), err)
	}
	if list[0].IP() != "192.0.2.1" || list[0].UserAgent() != uaChromeLinux {
		t.Errorf("session recorded IP %q UA %q", list[0].IP(), list[0].UserAgent())
	}
	// Already signed in: /login goes home.
	if res := b.get("/login"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Errorf("GET /login when signed in = %d to %q, want 303 to /", res.StatusCode, res.Header.Get("Location"))
	}
	// User names are not case-sensitive.
	b2 := a.browser(t, uaFirefoxWindows, "192.0.2.2")
	if res := b2.signIn("Bob", testPassword); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in as Bob = %d", res.StatusCode)
	}
	if !strings.Contains(b2.get("/").body, "Hello, bob") {
		t.Error("Bob was not signed in as bob")
	}
}

func TestSignInReplacesCarriedSession(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	first := b.mustSignIn("alice")
	csrf := b.csrf()
	// Signing in again over a live session (a session cookie is present,
	// so the form needs the CSRF token) replaces it: fixation defence.
	res := b.do(http.MethodPost, "/login", url.Values{"username": {"bob"}, "password": {testPassword}, "csrf_token": {csrf}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second sign-in = %d", res.StatusCode)
	}
	if a.live(t, first) {
		t.Error("the session the browser carried before signing in is still live")
	}
	if got := b.sessionID(); got == first {
		t.Error("second sign-in kept the session ID")
	}
}

func TestSignInFailure(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	const generic = "That user name and password do not match."
	cases := []struct{ name, user, pw string }{
		{"wrong password", "alice", "not the password"},
		{"unknown user", "mallory", testPassword},
		{"empty", "", ""},
		{"password of wrong case", "alice", strings.ToUpper(testPassword)},
		{"huge password", "alice", strings.Repeat("x", 4000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := b.signIn(c.user, c.pw)
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", res.StatusCode)
			}
			if !strings.Contains(res.body, generic) {
				t.Errorf("page lacks the generic error %q", generic)
			}
			if hasCookie(res, latchhttp.DefaultCookieName) {
				t.Errorf("failed sign-in set a session cookie: %v", res.Cookies())
			}
			if c.pw != "" && strings.Contains(res.body, c.pw) {
				t.Error("the page echoes the password")
			}
		})
	}
	for _, u := range Users {
		if list, _ := a.m.List(context.Background(), u); len(list) != 0 {
			t.Errorf("%s has %d sessions after failed sign-ins", u, len(list))
		}
	}
}

func TestSignInRateLimit(t *testing.T) {
	a := newApp(t, func(_ *latch.Config, c *Config) { c.LoginBurst = 3; c.LoginEvery = time.Minute })
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	// Successful sign-ins are never limited.
	for range 5 {
		b.cookies = map[string]string{}
		b.mustSignIn("alice")
	}
	b.cookies = map[string]string{}
	for i := range 3 {
		if res := b.signIn("alice", "wrong password"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i+1, res.StatusCode)
		}
	}
	b.cookies = map[string]string{}
	res := b.signIn("alice", testPassword)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("sign-in after 3 failures = %d (Retry-After %q), want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if hasCookie(res, latchhttp.DefaultCookieName) {
		t.Error("a rate-limited sign-in set a session cookie")
	}
	// Another address is not affected.
	other := a.browser(t, uaChromeLinux, "198.51.100.7")
	other.mustSignIn("alice")
	// The bucket refills.
	a.clock.Advance(time.Minute)
	b.mustSignIn("alice")
}

func TestCSRF(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	own := b.mustSignIn("alice")
	other := a.browser(t, uaFirefoxWindows, "192.0.2.2")
	otherID := other.mustSignIn("alice")
	good := b.csrf()
	otherToken := other.csrf()

	refused := []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"missing token", url.Values{}, nil},
		{"empty token", url.Values{"csrf_token": {""}}, nil},
		{"forged token", url.Values{"csrf_token": {"bm90IGEgdG9rZW4"}}, nil},
		{"token of another session", url.Values{"csrf_token": {otherToken}}, nil},
		{"cross-site with a valid token", url.Values{"csrf_token": {good}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site other origin with a valid token", url.Values{"csrf_token": {good}}, []string{"Sec-Fetch-Site", "same-site"}},
		{"foreign Origin with a valid token", url.Values{"csrf_token": {good}}, []string{"Origin", "https://evil.example"}},
	}
	for _, path := range []string{"/sessions/revoke-others", "/logout", "/sessions/revoke"} {
		for _, c := range refused {
			t.Run(path+"/"+c.name, func(t *testing.T) {
				form := url.Values{"session_id": {otherID}}
				for k, v := range c.form {
					form[k] = v
				}
				res := b.do(http.MethodPost, path, form, c.hdr...)
				if res.StatusCode != http.StatusForbidden {
					t.Fatalf("status %d, want 403", res.StatusCode)
				}
				if !strings.Contains(res.body, "Request refused") {
					t.Error("the 403 page does not explain itself")
				}
				if !a.live(t, own) || !a.live(t, otherID) {
					t.Fatal("a refused request revoked a session")
				}
			})
		}
	}
	// The query string is never a place for the token.
	res := b.do(http.MethodPost, "/sessions/revoke-others?csrf_token="+url.QueryEscape(good), url.Values{})
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("token in the query string: %d, want 403", res.StatusCode)
	}
	// With the token, the same request works.
	res = b.do(http.MethodPost, "/sessions/revoke-others", url.Values{"csrf_token": {good}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("revoke-others with the token = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if a.live(t, otherID) || !a.live(t, own) {
		t.Error("revoke-others did not revoke exactly the other session")
	}
	if !strings.Contains(b.get("/").body, "Signed out 1 other session.") {
		t.Error("no confirmation after revoke-others")
	}
	if strings.Contains(b.get("/").body, "Signed out 1 other session.") {
		t.Error("the confirmation is shown again on reload")
	}
}

// TestLoginCSRF tries to sign a visitor in with a login form they did not
// submit (login CSRF: the victim would then use the attacker's account).
// The attacker knows their own password; what they cannot have is the
// visitor's anonymous CSRF token.
func TestLoginCSRF(t *testing.T) {
	a := newApp(t)
	attacker := a.browser(t, uaChromeLinux, "203.0.113.9")
	attackerToken := attacker.loginToken()
	cases := []struct {
		name     string
		loadForm bool // the victim's browser has its own anonymous cookie
		token    string
		hdr      []string
	}{
		{"no token", true, "", nil},
		{"no token and no cookie", false, "", nil},
		{"made-up token", true, strings.Repeat("A", 86), nil},
		{"garbage token", true, "forged", nil},
		{"another visitor's token", true, attackerToken, nil},
		{"another visitor's token, no cookie", false, attackerToken, nil},
		{"cross-site with the victim's own token", true, "own", []string{"Sec-Fetch-Site", "cross-site"}},
		{"foreign Origin with the victim's own token", true, "own", []string{"Origin", "https://evil.example"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			victim := a.browser(t, uaChromeLinux, "192.0.2.1")
			if c.loadForm {
				own := victim.loginToken()
				if c.token == "own" {
					c.token = own
				}
			}
			form := url.Values{"username": {"bob"}, "password": {testPassword}}
			if c.token != "" {
				form.Set("csrf_token", c.token)
			}
			res := victim.do(http.MethodPost, "/login", form, c.hdr...)
			if res.StatusCode != http.StatusForbidden || !strings.Contains(res.body, "Request refused") {
				t.Fatalf("sign-in = %d, want the 403 page", res.StatusCode)
			}
			if hasCookie(res, latchhttp.DefaultCookieName) {
				t.Fatal("a session cookie was set")
			}
			if list, _ := a.m.List(context.Background(), "bob"); len(list) != 0 {
				t.Fatalf("bob has %d sessions", len(list))
			}
		})
	}
	// The login form carries the token, and signing in with it works; the
	// anonymous cookie is then expired.
	victim := a.browser(t, uaChromeLinux, "192.0.2.1")
	victim.mustSignIn("bob")
	if _, ok := victim.cookies[latchhttp.DefaultCookieName+"-csrf"]; ok {
		t.Error("the anonymous CSRF cookie survived sign-in")
	}
}

// TestSignedOutReason: a device whose session ended elsewhere, or expired,
// lands on the login page with the reason, whether it loads a page or
// posts a form of the old session.
func TestSignedOutReason(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	b.mustSignIn("alice")
	csrf := b.csrf()
	cookie := b.cookies[latchhttp.DefaultCookieName]
	if _, err := a.m.RevokeSubject(context.Background(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	// A form of the revoked session: nothing happens, and the user is told.
	res := b.do(http.MethodPost, "/sessions/revoke-others", url.Values{"csrf_token": {csrf}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?from=ended" {
		t.Fatalf("a form of a revoked session = %d to %q, want 303 to /login?from=ended", res.StatusCode, res.Header.Get("Location"))
	}
	if !strings.Contains(b.get("/login?from=ended").body, "This session was signed out") {
		t.Error("the login page does not say why")
	}
	// A page load of the revoked session.
	b.cookies[latchhttp.DefaultCookieName] = cookie
	if res := b.get("/"); res.Header.Get("Location") != "/login?from=ended" {
		t.Fatalf("GET / with a revoked cookie to %q", res.Header.Get("Location"))
	}
	// An expired one.
	b.mustSignIn("alice")
	a.clock.Advance(latch.DefaultIdleTimeout + time.Second)
	if res := b.get("/"); res.Header.Get("Location") != "/login?from=expired" {
		t.Fatalf("GET / with an expired cookie to %q", res.Header.Get("Location"))
	}
	// Without any cookie, the plain login page.
	if res := b.get("/"); res.Header.Get("Location") != "/login" {
		t.Fatalf("GET / without a cookie to %q", res.Header.Get("Location"))
	}
}

// TestFlashIsOneShot: a planted or unknown flash cookie shows nothing
// beyond the fixed notices, and each notice shows once.
func TestFlashIsOneShot(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	b.mustSignIn("alice")
	flash := latchhttp.DefaultCookieName + "-flash"
	for _, v := range []string{"<script>alert(1)</script>", "revoked-others--1", "revoked-others-x", "nope"} {
		b.cookies[flash] = v
		res := b.get("/")
		if strings.Contains(res.body, `id="notice"`) || strings.Contains(res.body, "<script>alert") {
			t.Errorf("flash %q shows a notice", v)
		}
		if _, ok := b.cookies[flash]; ok {
			t.Errorf("flash %q was not deleted", v)
		}
	}
	b.cookies[flash] = "revoked-others-3"
	if !strings.Contains(b.get("/").body, "Signed out 3 other sessions.") {
		t.Error("the revoked-others notice is not shown")
	}
}

func TestLogout(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	id := b.mustSignIn("alice")
	res := b.do(http.MethodPost, "/logout", url.Values{"csrf_token": {b.csrf()}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?from=signed-out" {
		t.Fatalf("logout = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res.Header.Get("Clear-Site-Data") == "" {
		t.Error("logout sent no Clear-Site-Data")
	}
	if _, ok := b.cookies[latchhttp.DefaultCookieName]; ok {
		t.Error("logout did not delete the cookie")
	}
	if a.live(t, id) {
		t.Error("the session is still live after logout")
	}
	if res := b.get("/login?from=signed-out"); !strings.Contains(res.body, "You are signed out.") {
		t.Error("the login page does not confirm the sign-out")
	}
	if res := b.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("GET / after logout = %d, want 303 to /login", res.StatusCode)
	}
}

func TestOldCookieAfterLogoutIsDead(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	b.mustSignIn("alice")
	stolen := b.cookies[latchhttp.DefaultCookieName]
	b.do(http.MethodPost, "/logout", url.Values{"csrf_token": {b.csrf()}})
	thief := a.browser(t, uaChromeLinux, "203.0.113.9")
	thief.cookies[latchhttp.DefaultCookieName] = stolen
	if res := thief.get("/"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?from=ended" {
		t.Fatalf("a logged-out cookie still opens the page: %d", res.StatusCode)
	}
}

func TestRevoke(t *testing.T) {
	a := newApp(t)
	alice1 := a.browser(t, uaChromeLinux, "192.0.2.1")
	alice2 := a.browser(t, uaFirefoxWindows, "192.0.2.2")
	bob := a.browser(t, uaChromeLinux, "192.0.2.3")
	a1, a2, b1 := alice1.mustSignIn("alice"), alice2.mustSignIn("alice"), bob.mustSignIn("bob")

	page := alice1.get("/").body
	for _, want := range []string{a1, a2, "Chrome on Linux", "Firefox on Windows", "2 sessions", `id="revoke-others"`} {
		if !strings.Contains(page, want) {
			t.Errorf("alice's page lacks %q", want)
		}
	}
	if strings.Contains(page, b1) {
		t.Error("alice's page shows bob's session")
	}
	if n := strings.Count(page, "badge-this"); n != 1 {
		t.Errorf(`"This device" appears %d times, want once`, n)
	}

	csrf := alice1.csrf()
	t.Run("another user's session is refused", func(t *testing.T) {
		res := alice1.do(http.MethodPost, "/sessions/revoke", url.Values{"csrf_token": {csrf}, "session_id": {b1}})
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("revoking bob's session as alice = %d, want 404", res.StatusCode)
		}
		if !a.live(t, b1) {
			t.Fatal("alice revoked bob's session")
		}
		unknown := alice1.do(http.MethodPost, "/sessions/revoke", url.Values{"csrf_token": {csrf}, "session_id": {"ses_AAAAAAAAAAAAAAAAAAAAAAAA"}})
		garbage := alice1.do(http.MethodPost, "/sessions/revoke", url.Values{"csrf_token": {csrf}, "session_id": {"<script>"}})
		if unknown.StatusCode != http.StatusNotFound || garbage.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown/garbage IDs = %d/%d, want 404", unknown.StatusCode, garbage.StatusCode)
		}
		if stripCSRF(unknown.body) != stripCSRF(res.body) {
			t.Error("another user's session ID gets a different answer from an unknown ID: it tells them apart")
		}
	})
	t.Run("own other session", func(t *testing.T) {
		res := alice1.do(http.MethodPost, "/sessions/revoke", url.Values{"csrf_token": {csrf}, "session_id": {a2}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
			t.Fatalf("revoke = %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		if a.live(t, a2) || !a.live(t, a1) {
			t.Fatal("revoke did not end exactly the chosen session")
		}
		if !strings.Contains(alice1.get("/").body, "Session revoked.") {
			t.Error("no confirmation after revoking")
		}
		// The revoked browser is signed out on its next request, and told
		// why.
		if res := alice2.get("/"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?from=ended" {
			t.Fatalf("revoked browser GET / = %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		if _, ok := alice2.cookies[latchhttp.DefaultCookieName]; ok {
			t.Error("the revoked browser's cookie was not deleted")
		}
	})
	t.Run("own current session signs out", func(t *testing.T) {
		res := alice1.do(http.MethodPost, "/sessions/revoke", url.Values{"csrf_token": {csrf}, "session_id": {a1}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?from=signed-out" {
			t.Fatalf("revoking the current session = %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		if a.live(t, a1) {
			t.Fatal("current session still live")
		}
	})
	t.Run("without a session", func(t *testing.T) {
		res := alice2.do(http.MethodPost, "/sessions/revoke", url.Values{"session_id": {b1}})
		if res.StatusCode != http.StatusForbidden || !a.live(t, b1) {
			t.Fatalf("revoke without a session = %d; bob live: %v", res.StatusCode, a.live(t, b1))
		}
	})
}

func TestPagesWithoutSession(t *testing.T) {
	a := newApp(t, func(_ *latch.Config, c *Config) { c.APILinks = true })
	b := a.browser(t, "", "192.0.2.1")
	cases := []struct {
		path   string
		status int
		want   string
	}{
		{"/login", 200, "Sign in"},
		{"/login?from=expired", 200, "Your session expired."},
		{"/login?from=ended", 200, "This session was signed out"},
		{"/login?from=<script>", 200, "Sign in"},
		{"/nope", 404, "Not found"},
		{"/static/nope.css", 404, ""},
		{"/static/app.css", 200, ".countdown"},
		{"/static/app.js", 200, "idle-left"},
		{"/static/favicon.svg", 200, "<svg"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			res := b.get(c.path)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d", res.StatusCode, c.status)
			}
			if !strings.Contains(res.body, c.want) {
				t.Errorf("body lacks %q", c.want)
			}
			checkSecurityHeaders(t, res.Header)
			if strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				checkNoInline(t, res.body)
				if !strings.Contains(res.body, "/openapi.json") {
					t.Error("APILinks set but the footer has no API links")
				}
			}
		})
	}
	if ct := b.get("/static/app.css").Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("app.css Content-Type %q", ct)
	}
	if ct := b.get("/static/app.js").Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("app.js Content-Type %q", ct)
	}
	etag := b.get("/static/app.css").Header.Get("ETag")
	if res := b.do(http.MethodGet, "/static/app.css", nil, "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match = %d, want 304", res.StatusCode)
	}
}

func TestSignedInPagesAreSafe(t *testing.T) {
	a := newApp(t)
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	b.mustSignIn("alice")
	a.browser(t, uaFirefoxWindows, "192.0.2.2").mustSignIn("alice")
	res := b.get("/")
	checkSecurityHeaders(t, res.Header)
	checkNoInline(t, res.body)
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("a page with a CSRF token has Cache-Control %q, want no-store", cc)
	}
	// Every form carries the CSRF token.
	forms := regexp.MustCompile(`(?s)<form\b.*?</form>`).FindAllString(res.body, -1)
	if len(forms) < 4 {
		t.Fatalf("found %d forms, want at least 4 (sign out ×2, revoke, revoke others)", len(forms))
	}
	for _, f := range forms {
		if m := csrfRE.FindStringSubmatch(f); m == nil || m[1] == "" {
			t.Errorf("form without a csrf_token: %.80s…", f)
		}
	}
	// Each page load masks the token differently (BREACH).
	if b.csrf() == b.csrf() {
		t.Error("two page loads carry the same CSRF token")
	}
}

func checkSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy allows inline code: %q", csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"} {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// checkNoInline asserts what the CSP relies on: every script is an empty
// element loading a file, and there is no event-handler attribute, style
// attribute or style element.
func checkNoInline(t *testing.T, body string) {
	t.Helper()
	for _, m := range regexp.MustCompile(`(?s)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(body, -1) {
		if !strings.Contains(m[1], " src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script in the page: %.80q", m[0])
		}
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`<[^>]*\son[a-z]+\s*=`),
		regexp.MustCompile(`<[^>]*\sstyle\s*=`),
		regexp.MustCompile(`<style\b`),
	} {
		if m := re.FindString(body); m != "" {
			t.Errorf("inline code or style in the page: %.80q", m)
		}
	}
}

func TestStatusDoesNotTouch(t *testing.T) {
	a := newApp(t, func(c *latch.Config, _ *Config) { c.IdleTimeout = 10 * time.Minute; c.TouchInterval = time.Minute })
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	id := b.mustSignIn("alice")
	status := func() statusJSON {
		t.Helper()
		res := b.get("/session/status")
		if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("status = %d, Cache-Control %q", res.StatusCode, res.Header.Get("Cache-Control"))
		}
		var st statusJSON
		if err := json.Unmarshal([]byte(res.body), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for range 4 {
		a.clock.Advance(2 * time.Minute)
		st := status()
		if !st.Authenticated || st.SessionID != id {
			t.Fatalf("status %+v, want authenticated as %s", st, id)
		}
	}
	st := status()
	if st.IdleLeftMS != (2 * time.Minute).Milliseconds() {
		t.Errorf("after 8 idle minutes idle_left_ms = %d, want %d: polling the status must not count as activity", st.IdleLeftMS, (2 * time.Minute).Milliseconds())
	}
	a.clock.Advance(2 * time.Minute)
	if st := status(); st.Authenticated || st.Reason != "expired" {
		t.Errorf("status after the idle timeout = %+v, want expired", st)
	}
	if res := b.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("GET / after the idle timeout = %d, want 303", res.StatusCode)
	}

	// Revoked, missing and forged cookies all read "ended".
	b2 := a.browser(t, uaChromeLinux, "192.0.2.1")
	id2 := b2.mustSignIn("alice")
	if err := a.m.Revoke(context.Background(), id2, "admin"); err != nil {
		t.Fatal(err)
	}
	b.cookies = b2.cookies
	if st := status(); st.Authenticated || st.Reason != "ended" {
		t.Errorf("status of a revoked session = %+v, want ended", st)
	}
	b.cookies = map[string]string{}
	if st := status(); st.Authenticated || st.Reason != "ended" {
		t.Errorf("status without a cookie = %+v, want ended", st)
	}
	// A cookie with a live session's ID but a wrong secret reads "ended".
	b3 := a.browser(t, uaChromeLinux, "192.0.2.1")
	b3.mustSignIn("alice")
	tok := []byte(b3.cookies[latchhttp.DefaultCookieName])
	b.cookies = map[string]string{latchhttp.DefaultCookieName: string(tok[:len(tok)-8]) + "AAAAAAAA"}
	if st := status(); st.Authenticated {
		t.Errorf("status with a forged cookie = %+v, want not authenticated", st)
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	a := newApp(t)
	var secrets []string
	b := a.browser(t, uaChromeLinux, "192.0.2.1")
	b.signIn("alice", "wrong password 1")
	b.signIn(testPassword, testPassword) // a password typed as user name
	b.mustSignIn("alice")
	secrets = append(secrets, b.cookies[latchhttp.DefaultCookieName], b.csrf())
	other := a.browser(t, uaChromeLinux, "192.0.2.2")
	other.mustSignIn("alice")
	secrets = append(secrets, other.cookies[latchhttp.DefaultCookieName])
	b.do(http.MethodPost, "/sessions/revoke-others", url.Values{"csrf_token": {"forged"}})
	b.do(http.MethodPost, "/sessions/revoke-others", url.Values{"csrf_token": {b.csrf()}})
	b.do(http.MethodPost, "/logout", url.Values{"csrf_token": {b.csrf()}})
	logs := a.logs.String()
	if !strings.Contains(logs, "sign-in failed") || !strings.Contains(logs, "session.created") {
		t.Fatalf("expected log lines are missing; logs:\n%s", logs)
	}
	for _, s := range append(secrets, testPassword, "wrong password 1") {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("a secret (%d bytes) appears in the logs", len(s))
		}
	}
	for _, u := range a.h.users {
		if strings.Contains(logs, string(u.hash[:])) {
			t.Error("a password hash appears in the logs")
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no password", Config{}},
		{"short password", Config{Password: "short"}},
		{"insecure cookie with __Host- name", Config{Password: testPassword, HTTP: latchhttp.Config{InsecureCookieForDevelopmentOnly: true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(m, c.cfg); err == nil {
				t.Fatal("New accepted it")
			} else if c.cfg.Password != "" && strings.Contains(err.Error(), c.cfg.Password) {
				t.Errorf("error quotes the password: %v", err)
			}
		})
	}
	if _, err := New(nil, Config{Password: testPassword}); err == nil {
		t.Error("New accepted a nil Manager")
	}
}

func TestGeneratePassword(t *testing.T) {
	re := regexp.MustCompile(`^[a-hjkmnp-z2-9]{5}(-[a-hjkmnp-z2-9]{5}){3}$`)
	seen := map[string]bool{}
	for range 50 {
		p := GeneratePassword()
		if !re.MatchString(p) {
			t.Fatalf("GeneratePassword() = %q, want four groups of five unambiguous characters", p)
		}
		if seen[p] {
			t.Fatalf("GeneratePassword repeated %q", p)
		}
		seen[p] = true
		if err := checkPassword(p); err != nil {
			t.Fatalf("New would refuse a generated password: %v", err)
		}
	}
}

func TestUserHidesHash(t *testing.T) {
	users, _, err := hashUsers(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	u := users["alice"]
	for _, s := range []string{u.String(), u.GoString()} {
		if strings.Contains(s, string(u.hash[:])) || strings.Contains(s, string(u.salt[:])) {
			t.Errorf("user prints its hash or salt: %q", s)
		}
	}
	if users["alice"].salt == users["bob"].salt || users["alice"].hash == users["bob"].hash {
		t.Error("alice and bob share a salt or hash")
	}
	if !u.matches(testPassword) || u.matches(testPassword+" ") {
		t.Error("matches is wrong")
	}
}
