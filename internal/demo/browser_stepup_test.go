package demo

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/browsertest"
	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/latchhttp"
)

// TestBrowserStepUp: in Chromium, "sign out everywhere else" on a sign-in
// older than ReauthAfter asks for the password again; a wrong password
// changes nothing; the right one renews the session (a new cookie, the new
// auth_time) and signs out the other device. The server's clock is a fake
// started at the real time (cookies expire by the browser's clock), so the
// test moves it instead of waiting.
func TestBrowserStepUp(t *testing.T) {
	b := browsertest.New(t)
	clock := testutil.NewClock(time.Now())
	d := startDemo(t, 30*time.Minute, time.Minute, func(lc *latch.Config, _ *Config) { lc.Now = clock.Now })
	tab, other := b.Tab(), b.NewContext()
	problems := consoleProblems(tab)
	id := d.mustSignIn(t, tab, "alice")
	otherID := d.mustSignIn(t, other, "alice")

	cookie := func() string {
		for _, c := range browsertest.Cookies(t, tab, d.base) {
			if c.Name == latchhttp.DefaultCookieName {
				return c.Value
			}
		}
		return ""
	}
	before := cookie()

	clock.Advance(DefaultReauthAfter + 2*time.Minute)
	browsertest.Do(t, tab, chromedp.Navigate(d.base+"/"))
	browsertest.WaitJS(t, tab, `!!document.getElementById("revoke-others")`, pageWait)
	browsertest.Click(t, tab, "#revoke-others")
	browsertest.WaitJS(t, tab, `!!document.getElementById("confirm-password")`, pageWait)
	if lead := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("confirm-lead"))); !strings.Contains(lead, "7 minutes ago") {
		t.Errorf("confirm page says %q, want how long ago the sign-in was", lead)
	}
	browsertest.Screenshot(t, tab, "step-up-confirm")
	if !d.live(t, otherID) {
		t.Fatal("asking for the password signed the other device out")
	}

	// A wrong password: an error, nothing signed out, the same cookie.
	browsertest.Do(t, tab, chromedp.SendKeys(chromedp.ID("confirm-password"), "not the password"))
	browsertest.Click(t, tab, "#confirm")
	browsertest.WaitJS(t, tab, `!!document.getElementById("confirm-error")`, pageWait)
	if !d.live(t, otherID) || cookie() != before {
		t.Fatal("a wrong password signed the other device out or renewed the session")
	}

	browsertest.Do(t, tab, chromedp.SendKeys(chromedp.ID("confirm-password"), testPassword))
	browsertest.Click(t, tab, "#confirm")
	browsertest.WaitJS(t, tab, `location.pathname === "/" && !!document.getElementById("notice") && document.getElementById("notice").textContent.includes("Signed out 1 other session")`, pageWait)
	browsertest.Screenshot(t, tab, "step-up-done")
	if d.live(t, otherID) || !d.live(t, id) {
		t.Fatal("confirming did not end exactly the other session")
	}
	if after := cookie(); after == "" || after == before {
		t.Fatal("confirming did not renew the session cookie")
	}
	s, err := d.m.Get(context.Background(), id)
	if err != nil || !s.AuthTime().Equal(clock.Now()) || !slices.Equal(s.AMR(), []string{"pwd"}) {
		t.Fatalf("after step-up: auth_time %v, amr %q (%v)", s.AuthTime(), s.AMR(), err)
	}
	// The page still works with the renewed cookie and CSRF token.
	browsertest.Do(t, tab, chromedp.Navigate(d.base+"/"))
	if got := browsertest.Run(t, tab, chromedp.Text(chromedp.ID("session-id"))); strings.TrimSpace(got) != id {
		t.Errorf("session shown %q after renewal, want %s", got, id)
	}
	for _, p := range problems() {
		t.Errorf("console: %s", p)
	}
	d.checkLogs(t, before)
}
