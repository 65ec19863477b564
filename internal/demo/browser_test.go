package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/browsertest"
	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// These tests drive the demo in a real headless Chromium (see package
// browsertest; they are skipped without one unless
// LATCH_REQUIRE_INTEGRATION=1). The demo listens on 127.0.0.1 and is
// browsed as http://localhost: browsers treat localhost as a secure
// context, so Chromium keeps latch's default Secure "__Host-latch" cookie
// over plain HTTP there, and TestBrowserSignIn checks that it does.
//
// Waits are bounded polls of the page's state; no test asserts how long
// anything took.

// pageWait bounds waiting for a page to reach an expected state.
const pageWait = 20 * time.Second

type liveDemo struct {
	base string // http://localhost:PORT
	port string
	m    *latch.Manager
	logs *testutil.Buffer
}

func startDemo(t *testing.T, idle, touch time.Duration, mut ...func(*latch.Config, *Config)) *liveDemo {
	t.Helper()
	logs := &testutil.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lc := latch.Config{
		Store:         memstore.New(),
		IdleTimeout:   idle,
		TouchInterval: touch,
		Observer:      latch.SlogObserver(logger),
	}
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &liveDemo{base: "http://localhost:" + port, port: port, m: m, logs: logs}
}

// signIn fills in and submits the login form in tab and waits for the
// session page.
func (d *liveDemo) signIn(t *testing.T, tab context.Context, user, password string) {
	t.Helper()
	browsertest.Do(t, tab,
		chromedp.Navigate(d.base+"/login"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	browsertest.Click(t, tab, "#signin")
}

func (d *liveDemo) mustSignIn(t *testing.T, tab context.Context, user string) string {
	t.Helper()
	d.signIn(t, tab, user, testPassword)
	browsertest.WaitJS(t, tab, `!!document.getElementById("session-id")`, pageWait)
	return strings.TrimSpace(browsertest.Run(t, tab, chromedp.Text(chromedp.ID("session-id"))))
}

// consoleProblems collects what the page reports on its console: script
// errors and Content-Security-Policy violations.
func consoleProblems(tab context.Context) func() []string {
	var mu sync.Mutex
	var got []string
	msgs := chromedp.Console(tab)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			text := m.String()
			if m.IsException() || strings.Contains(text, "Content Security Policy") || strings.Contains(text, "Refused to") {
				mu.Lock()
				got = append(got, text)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestBrowserSignIn(t *testing.T) {
	b := browsertest.New(t)
	d := startDemo(t, 30*time.Minute, time.Minute)
	tab := b.Tab()
	problems := consoleProblems(tab)

	browsertest.Do(t, tab, chromedp.Navigate(d.base+"/"))
	if loc := browsertest.Location(tab); loc != d.base+"/login" {
		t.Fatalf("signed-out visit to / landed on %s, want the login page", loc)
	}
	browsertest.Screenshot(t, tab, "login")

	// A wrong password: a generic error and no cookie.
	d.signIn(t, tab, "alice", "not the password")
	browsertest.WaitJS(t, tab, `!!document.getElementById("login-error")`, pageWait)
	browsertest.Screenshot(t, tab, "login-error")
	for _, c := range browsertest.Cookies(t, tab, d.base) {
		if c.Name == latchhttp.DefaultCookieName {
			t.Fatal("a failed sign-in left a session cookie")
		}
	}

	id := d.mustSignIn(t, tab, "alice")
	if got := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("subject"))); got != "alice" {
		t.Errorf("subject shown %q, want alice", got)
	}
	browsertest.Screenshot(t, tab, "home")
	// "Signed in." is shown once: a reload does not bring it back.
	if !browsertest.Eval[bool](t, tab, `!!document.getElementById("notice") && document.getElementById("notice").textContent.startsWith("Signed in.")`) {
		t.Error("no \"Signed in.\" banner after signing in")
	}
	browsertest.Do(t, tab, chromedp.Reload())
	browsertest.WaitJS(t, tab, `!!document.getElementById("session-id")`, pageWait)
	if browsertest.Eval[bool](t, tab, `!!document.getElementById("notice")`) {
		t.Error("the \"Signed in.\" banner is shown again after a reload")
	}

	// Chromium kept the Secure __Host- cookie over http://localhost.
	var cookie *network.Cookie
	for _, c := range browsertest.Cookies(t, tab, d.base) {
		if c.Name == latchhttp.DefaultCookieName {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("Chromium holds no __Host-latch cookie after sign-in")
	}
	if !cookie.HTTPOnly || !cookie.Secure || cookie.SameSite != network.CookieSameSiteLax || cookie.Path != "/" {
		t.Errorf("cookie HttpOnly=%v Secure=%v SameSite=%q Path=%q, want HttpOnly, Secure, Lax, /", cookie.HTTPOnly, cookie.Secure, cookie.SameSite, cookie.Path)
	}

	// The page's JavaScript cannot see it.
	jsCookies := browsertest.Eval[string](t, tab, `document.cookie`)
	if strings.Contains(jsCookies, latchhttp.DefaultCookieName) || strings.Contains(jsCookies, cookie.Value) {
		t.Errorf("document.cookie = %q: the session cookie is visible to JavaScript", jsCookies)
	}

	// The countdown runs (the script loaded under the CSP) and shows m:ss.
	browsertest.WaitJS(t, tab, `/^\d+:\d\d$/.test(document.getElementById("idle-left").textContent.trim())`, pageWait)

	sessions, err := d.m.List(context.Background(), "alice")
	if err != nil || len(sessions) != 1 || sessions[0].ID() != id {
		t.Fatalf("alice's sessions: %d (%v), want exactly the one shown (%s)", len(sessions), err, id)
	}
	if got := describeDevice(sessions[0].UserAgent()).Name; got != "Headless Chrome on Linux" {
		t.Errorf("device %q, want Headless Chrome on Linux", got)
	}

	// Sign out from the top bar.
	browsertest.Click(t, tab, "#signout")
	browsertest.WaitJS(t, tab, `location.pathname === "/login" && !!document.getElementById("notice")`, pageWait)
	if d.live(t, id) {
		t.Error("the session is live after signing out")
	}
	for _, p := range problems() {
		t.Errorf("console: %s", p)
	}
	d.checkLogs(t, cookie.Value)
}

func TestBrowserSecondSessionRevoked(t *testing.T) {
	b := browsertest.New(t)
	// A short idle timeout makes the page poll its status often (every
	// 10 s), so the revoked tab notices without waiting long; it is still
	// long enough that no session idles out during the test.
	d := startDemo(t, time.Minute, time.Second)
	first, second := b.Tab(), b.NewContext()

	firstID := d.mustSignIn(t, first, "bob")
	secondID := d.mustSignIn(t, second, "bob")
	if firstID == secondID {
		t.Fatal("two browser contexts share one session")
	}

	// The second session appears in the first one's list, and only the
	// first is marked as this device.
	browsertest.Do(t, first, chromedp.Navigate(d.base+"/"))
	browsertest.WaitJS(t, first, fmt.Sprintf(
		`document.querySelectorAll("#sessions tbody tr").length === 2 && !!document.querySelector('tr[data-session-id=%q]')`, secondID), pageWait)
	current := browsertest.Eval[string](t, first, `document.querySelector("#sessions tr.current").dataset.sessionId`)
	if current != firstID {
		t.Errorf(`"this device" marks %s, want %s`, current, firstID)
	}
	if n := browsertest.Eval[int](t, first, `document.querySelectorAll("#sessions .badge-this").length`); n != 1 {
		t.Errorf(`%d rows marked "This device", want 1`, n)
	}
	row := browsertest.Run(t, first, chromedp.Text(chromedp.CSS(fmt.Sprintf(`tr[data-session-id=%q]`, secondID))))
	if !strings.Contains(row, "Headless Chrome on Linux") || !strings.Contains(row, "127.0.0.1") {
		t.Errorf("the second session's row %q lacks its device or IP", row)
	}
	browsertest.Screenshot(t, first, "two-sessions")
	checkLayouts(t, first)

	// Revoke the second session from the first.
	browsertest.Click(t, first, fmt.Sprintf(`tr[data-session-id=%q] button`, secondID))
	browsertest.WaitJS(t, first, `!!document.getElementById("notice") && document.querySelectorAll("#sessions tbody tr").length === 1`, pageWait)
	browsertest.Screenshot(t, first, "revoked")
	if d.live(t, secondID) || !d.live(t, firstID) {
		t.Fatal("revoking did not end exactly the second session")
	}

	// The second tab, still open, learns it was signed out...
	browsertest.WaitJS(t, second, `!document.getElementById("expired").hidden`, 2*pageWait)
	if h := browsertest.Run(t, second, chromedp.Text(chromedp.ID("expired-heading"))); h != "You were signed out" {
		t.Errorf("overlay heading %q, want %q", h, "You were signed out")
	}
	// Behind the dialog the countdown says what happened: the session
	// did not run out, so no (red) 0:00.
	countdown := browsertest.Eval[string](t, second, `document.getElementById("idle-left").textContent.trim()`)
	over := browsertest.Eval[bool](t, second, `document.getElementById("idle").classList.contains("is-over")`)
	if countdown != "Signed out" || over {
		t.Errorf("countdown behind the dialog shows %q (is-over %v), want \"Signed out\" without the expired style", countdown, over)
	}
	browsertest.Screenshot(t, second, "signed-out-overlay")
	// ...and its next request is not signed in: it lands on the login page,
	// which says why, and its dead cookie is deleted.
	browsertest.Do(t, second, chromedp.Navigate(d.base+"/"))
	if loc := browsertest.Location(second); loc != d.base+"/login?from=ended" {
		t.Fatalf("the revoked browser's next request landed on %s, want the login page with the reason", loc)
	}
	if n := browsertest.Run(t, second, chromedp.Text(chromedp.ID("notice"))); !strings.Contains(n, "signed out, from another device") {
		t.Errorf("login page notice %q does not give the reason", n)
	}
	browsertest.Screenshot(t, second, "login-ended")
	for _, c := range browsertest.Cookies(t, second, d.base) {
		if c.Name == latchhttp.DefaultCookieName {
			t.Error("the revoked browser still holds the session cookie")
		}
	}
	// The first is still signed in.
	browsertest.Do(t, first, chromedp.Navigate(d.base+"/"))
	browsertest.WaitJS(t, first, `!!document.getElementById("session-id")`, pageWait)
}

func TestBrowserCrossSiteFormRejected(t *testing.T) {
	b := browsertest.New(t)
	d := startDemo(t, 30*time.Minute, time.Minute)
	victim, other := b.Tab(), b.NewContext()
	victimID := d.mustSignIn(t, victim, "alice")
	otherID := d.mustSignIn(t, other, "alice")

	// The attacker's site: a page that posts a form to the demo as soon as
	// it loads. It cannot know the CSRF token, so it sends a made-up one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	attacker := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := d.base + r.URL.Query().Get("target")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>You won a prize</title>
<form id="f" method="post" action="%s">
<input type="hidden" name="csrf_token" value="forged">
<input type="hidden" name="session_id" value="%s">
</form>
<script>document.getElementById("f").submit()</script>`, action, otherID)
	})}
	go attacker.Serve(ln)
	t.Cleanup(func() { attacker.Close() })
	_, aport, _ := net.SplitHostPort(ln.Addr().String())

	origins := []struct{ name, origin string }{
		// Another site: SameSite=Lax keeps the cookie off the POST, and
		// the cross-origin check refuses it anyway.
		{"cross-site", "http://127.0.0.1:" + aport},
		// The same site on another port: the browser does send the
		// cookie, so only latch's cross-origin check stands in the way.
		{"same-site other origin", "http://localhost:" + aport},
	}
	for _, o := range origins {
		for _, target := range []string{"/sessions/revoke-others", "/sessions/revoke", "/logout"} {
			t.Run(o.name+target, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(victim, pageWait)
				defer cancel()
				responses := chromedp.Events(ctx, network.ResponseReceived)
				browsertest.Do(t, victim, chromedp.Navigate(o.origin+"/?target="+target))
				status := int64(-1)
				for ev, err := range responses {
					if err != nil {
						t.Fatalf("no response from %s within %v: %v", target, pageWait, err)
					}
					if ev.Response.URL == d.base+target {
						status = ev.Response.Status
						break
					}
				}
				if status != http.StatusForbidden {
					t.Errorf("the forged POST to %s got %d, want 403", target, status)
				}
				browsertest.WaitJS(t, victim, `document.body && document.body.textContent.includes("Request refused")`, pageWait)
				browsertest.Screenshot(t, victim, "refused")
				if !d.live(t, victimID) || !d.live(t, otherID) {
					t.Fatal("the forged form ended a session")
				}
			})
		}
	}
	// The victim is still signed in, in the same session.
	browsertest.Do(t, victim, chromedp.Navigate(d.base+"/"))
	browsertest.WaitJS(t, victim, `!!document.getElementById("session-id")`, pageWait)
	if got := browsertest.Run(t, victim, chromedp.Text(chromedp.ID("session-id"))); got != victimID {
		t.Errorf("the victim's session changed from %s to %s", victimID, got)
	}
}

// TestBrowserLoginCSRF: the login form carries the anonymous CSRF token in
// Chromium, and a login form the visitor did not get from the demo — a
// tampered token, another visitor's token, a form on another site — signs
// nobody in.
func TestBrowserLoginCSRF(t *testing.T) {
	b := browsertest.New(t)
	d := startDemo(t, 30*time.Minute, time.Minute)
	victim, other := b.Tab(), b.NewContext()
	problems := consoleProblems(victim)
	anonName := latchhttp.DefaultCookieName + "-csrf"

	loadForm := func(tab context.Context) string {
		t.Helper()
		browsertest.Do(t, tab, chromedp.Navigate(d.base+"/login"), chromedp.WaitVisible(chromedp.ID("username")))
		return browsertest.Eval[string](t, tab, `document.querySelector('#login-form input[name="csrf_token"]').value`)
	}
	anonCookie := func(tab context.Context) *network.Cookie {
		for _, c := range browsertest.Cookies(t, tab, d.base) {
			if c.Name == anonName {
				return c
			}
		}
		return nil
	}
	signedIn := func(tab context.Context) bool {
		for _, c := range browsertest.Cookies(t, tab, d.base) {
			if c.Name == latchhttp.DefaultCookieName {
				return true
			}
		}
		return false
	}

	tok := loadForm(victim)
	if len(tok) != 86 {
		t.Fatalf("the login form's csrf_token is %q, want an 86-character token", tok)
	}
	ck := anonCookie(victim)
	if ck == nil || !ck.HTTPOnly || !ck.Secure || ck.SameSite != network.CookieSameSiteLax || ck.Path != "/" {
		t.Fatalf("anonymous CSRF cookie %+v, want HttpOnly, Secure, Lax, /", ck)
	}
	if js := browsertest.Eval[string](t, victim, `document.cookie`); strings.Contains(js, anonName) {
		t.Error("page scripts can read the anonymous CSRF cookie")
	}
	otherTok := loadForm(other)

	// submitWith fills in the right password and submits the form with
	// its csrf_token set to tok (removed if tok is "-").
	submitWith := func(name, tok string) {
		t.Helper()
		loadForm(victim)
		browsertest.Do(t, victim,
			chromedp.SendKeys(chromedp.ID("username"), "alice"),
			chromedp.SendKeys(chromedp.ID("password"), testPassword),
		)
		set := fmt.Sprintf(`document.querySelector('#login-form input[name="csrf_token"]').value = %q`, tok)
		if tok == "-" {
			set = `document.querySelector('#login-form input[name="csrf_token"]').remove()`
		}
		browsertest.Eval[any](t, victim, set)
		res := browsertest.Click(t, victim, "#signin")
		if res == nil || res.Status != http.StatusForbidden {
			t.Errorf("%s: sign-in answered %v, want 403", name, res)
		}
		browsertest.WaitJS(t, victim, `document.body && document.body.textContent.includes("Request refused")`, pageWait)
		if signedIn(victim) {
			t.Fatalf("%s: the browser was signed in", name)
		}
	}
	submitWith("no token", "-")
	submitWith("made-up token", strings.Repeat("A", 86))
	submitWith("another visitor's token", otherTok)
	browsertest.Screenshot(t, victim, "refused")

	// A login form on another site, with the attacker's own (valid)
	// credentials and token: login CSRF.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	attacker := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Free prize</title>
<form id="f" method="post" action="%s/login">
<input type="hidden" name="csrf_token" value="%s">
<input type="hidden" name="username" value="bob">
<input type="hidden" name="password" value="%s">
</form>
<script>document.getElementById("f").submit()</script>`, d.base, otherTok, testPassword)
	})}
	go attacker.Serve(ln)
	t.Cleanup(func() { attacker.Close() })
	ctx, cancel := context.WithTimeout(victim, pageWait)
	responses := chromedp.Events(ctx, network.ResponseReceived)
	browsertest.Do(t, victim, chromedp.Navigate("http://"+ln.Addr().String()+"/"))
	status := int64(-1)
	for ev, err := range responses {
		if err != nil {
			t.Fatalf("no answer to the cross-site login form: %v", err)
		}
		if ev.Response.URL == d.base+"/login" {
			status = ev.Response.Status
			break
		}
	}
	cancel()
	if status != http.StatusForbidden {
		t.Errorf("cross-site login form got %d, want 403", status)
	}
	if signedIn(victim) {
		t.Fatal("the cross-site form signed the browser in")
	}
	for _, u := range Users {
		if list, _ := d.m.List(context.Background(), u); len(list) != 0 {
			t.Fatalf("%s has %d sessions after forged sign-ins", u, len(list))
		}
	}

	// The form as served signs in, and the anonymous cookie is gone.
	d.mustSignIn(t, victim, "alice")
	if anonCookie(victim) != nil {
		t.Error("the anonymous CSRF cookie survived sign-in")
	}
	for _, p := range problems() {
		t.Errorf("console: %s", p)
	}
}

func TestBrowserIdleTimeout(t *testing.T) {
	b := browsertest.New(t)
	d := startDemo(t, 3*time.Second, time.Second)
	tab := b.Tab()
	problems := consoleProblems(tab)
	d.mustSignIn(t, tab, "alice")

	// Nothing is clicked: the countdown runs out, the page checks with the
	// server, and the overlay asks to sign in again.
	browsertest.WaitJS(t, tab, `!document.getElementById("expired").hidden`, pageWait)
	if h := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("expired-heading"))); h != "Your session expired" {
		t.Errorf("overlay heading %q, want %q", h, "Your session expired")
	}
	if focused := browsertest.Eval[string](t, tab, `document.activeElement && document.activeElement.id`); focused != "expired-login" {
		t.Errorf("focus is on %q, want the sign-in link", focused)
	}
	browsertest.Screenshot(t, tab, "expired-overlay")

	browsertest.Click(t, tab, "#expired-login")
	browsertest.WaitJS(t, tab, `location.pathname === "/login" && !!document.getElementById("notice") && document.getElementById("notice").textContent.includes("expired")`, pageWait)
	for _, p := range problems() {
		t.Errorf("console: %s", p)
	}
}

// checkLayouts checks that the page fits a phone's width without sideways
// scrolling, and takes screenshots of it there and in dark mode.
func checkLayouts(t *testing.T, tab context.Context) {
	t.Helper()
	browsertest.Do(t, tab, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Reload())
	browsertest.WaitJS(t, tab, `!!document.getElementById("sessions")`, pageWait)
	if w := browsertest.Eval[int](t, tab, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
		t.Errorf("on a 390 px wide phone the page is %d px too wide", w)
	}
	checkHeaderOneLine(t, tab, "phone")
	browsertest.Screenshot(t, tab, "phone")
	browsertest.Do(t, tab, chromedp.EmulateViewport(1280, 900), chromedp.Reload())
	browsertest.WaitJS(t, tab, `!!document.getElementById("sessions")`, pageWait)
	checkHeaderOneLine(t, tab, "desktop")
	browsertest.Screenshot(t, tab, "desktop")
	if os.Getenv("LATCH_SCREENSHOTS") != "" {
		// Reduced motion turns the CSS transitions off, so the screenshot
		// shows the dark colours, not a transition towards them.
		dark := []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}, {Name: "prefers-reduced-motion", Value: "reduce"}}
		if _, err := chromedp.Call(tab, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: dark}); err == nil {
			browsertest.Screenshot(t, tab, "dark")
			chromedp.Call(tab, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
		}
	}
}

// checkHeaderOneLine checks that the signed-in top bar keeps the brand,
// the user's name and the sign-out button on one line.
func checkHeaderOneLine(t *testing.T, tab context.Context, layout string) {
	t.Helper()
	rows := browsertest.Eval[int](t, tab, `(function () {
		var tops = ["brand", "who-name", "signout"].map(function (c) {
			var el = document.getElementById(c) || document.querySelector("." + c);
			var r = el.getBoundingClientRect();
			return Math.round(r.top + r.height / 2);
		});
		return new Set(tops.map(function (y) { return Math.round(y / 12); })).size;
	})()`)
	if rows != 1 {
		t.Errorf("%s: the top bar wraps onto %d lines", layout, rows)
	}
	if name := browsertest.Eval[int](t, tab, `Math.round(document.getElementById("who-name").getBoundingClientRect().width)`); name < 20 {
		t.Errorf("%s: the user's name is squeezed to %d px", layout, name)
	}
}

func (d *liveDemo) live(t *testing.T, id string) bool {
	t.Helper()
	_, err := d.m.Get(context.Background(), id)
	return err == nil
}

// checkLogs asserts that no secret reached the logs.
func (d *liveDemo) checkLogs(t *testing.T, secrets ...string) {
	t.Helper()
	logs := d.logs.String()
	for _, s := range append(secrets, testPassword) {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("a secret (%d bytes) appears in the logs", len(s))
		}
	}
}
