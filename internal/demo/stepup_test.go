package demo

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/latchhttp"
)

// TestRevokeOthersStepUp: "sign out everywhere else" runs at once right
// after sign-in; later it asks for the password again, refuses a wrong one
// (nothing revoked), and with the right one renews the session (new
// cookie, new auth_time, amr ["pwd"]) and then revokes the others.
func TestRevokeOthersStepUp(t *testing.T) {
	a := newApp(t)
	alice1 := a.browser(t, uaChromeLinux, "192.0.2.1")
	alice2 := a.browser(t, uaFirefoxWindows, "192.0.2.2")
	a1, a2 := alice1.mustSignIn("alice"), alice2.mustSignIn("alice")
	s, err := a.m.Get(context.Background(), a1)
	if err != nil || !slices.Equal(s.AMR(), []string{"pwd"}) {
		t.Fatalf("sign-in recorded amr %q (%v), want [pwd]", s.AMR(), err)
	}

	a.clock.Advance(DefaultReauthAfter + time.Minute)
	oldCookie := alice1.cookies[latchhttp.DefaultCookieName]
	res := alice1.do(http.MethodPost, "/sessions/revoke-others", url.Values{"csrf_token": {alice1.csrf()}})
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, `id="confirm-password"`) || !strings.Contains(res.body, "6 minutes ago") {
		t.Fatalf("stale sign-in: %d, want the confirm page; body %.300s", res.StatusCode, res.body)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("confirm page Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	checkSecurityHeaders(t, res.Header)
	checkNoInline(t, res.body)
	if !a.live(t, a2) {
		t.Fatal("asking for the password revoked a session")
	}
	tok := html.UnescapeString(csrfRE.FindStringSubmatch(res.body)[1])

	wrong := alice1.do(http.MethodPost, "/sessions/revoke-others/confirm", url.Values{"csrf_token": {tok}, "password": {"not the password"}})
	if wrong.StatusCode != http.StatusUnauthorized || !strings.Contains(wrong.body, `id="confirm-error"`) || !a.live(t, a2) {
		t.Fatalf("wrong password: %d, a2 live %v", wrong.StatusCode, a.live(t, a2))
	}
	if alice1.cookies[latchhttp.DefaultCookieName] != oldCookie {
		t.Fatal("a wrong password renewed the session")
	}
	noToken := alice1.do(http.MethodPost, "/sessions/revoke-others/confirm", url.Values{"password": {testPassword}})
	if noToken.StatusCode != http.StatusForbidden || !a.live(t, a2) {
		t.Fatalf("confirm without a CSRF token: %d", noToken.StatusCode)
	}

	ok := alice1.do(http.MethodPost, "/sessions/revoke-others/confirm", url.Values{"csrf_token": {tok}, "password": {testPassword}})
	if ok.StatusCode != http.StatusSeeOther || ok.Header.Get("Location") != "/" {
		t.Fatalf("confirm: %d to %q", ok.StatusCode, ok.Header.Get("Location"))
	}
	if a.live(t, a2) || !a.live(t, a1) {
		t.Fatal("confirm did not end exactly the other sessions")
	}
	if c := alice1.cookies[latchhttp.DefaultCookieName]; c == "" || c == oldCookie {
		t.Fatal("confirm did not renew the session cookie")
	}
	s, err = a.m.Get(context.Background(), a1)
	if err != nil || !s.AuthTime().Equal(a.clock.Now()) || !slices.Equal(s.AMR(), []string{"pwd"}) {
		t.Fatalf("after confirm: auth_time %v amr %q (%v), want now and [pwd]", s.AuthTime(), s.AMR(), err)
	}
	if _, err := a.m.Validate(context.Background(), oldCookie); err == nil {
		t.Fatal("the cookie from before the renewal still works")
	}
	if page := alice1.get("/").body; !strings.Contains(page, "Signed out 1 other session.") {
		t.Error("no confirmation after signing out the others")
	}
	// Within ReauthAfter of the confirmation, the action runs directly.
	alice2.mustSignIn("alice")
	if res := alice1.do(http.MethodPost, "/sessions/revoke-others", url.Values{"csrf_token": {alice1.csrf()}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("fresh re-authentication: %d, want the action to run", res.StatusCode)
	}
}
