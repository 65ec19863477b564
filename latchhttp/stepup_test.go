package latchhttp_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
)

// TestRequireRecentAuthBearer: a Bearer request whose sign-in is older than
// maxAge gets 401 with the RFC 9470 challenge; after re-authentication (a
// renewal with a new auth_time) the new token passes.
func TestRequireRecentAuthBearer(t *testing.T) {
	e := newEnv(t)
	c := e.newClient()
	lr := c.login("alice")
	if res, body := c.bearer("/sensitive", lr.Access); res.StatusCode != 200 || body != "sensitive" {
		t.Fatalf("fresh sign-in: %d %q", res.StatusCode, body)
	}
	e.clock.Advance(6 * time.Minute)
	res, _ := c.bearer("/sensitive", lr.Access)
	want := `Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age="300"`
	if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("stale sign-in: %d %q, want 401 %q", res.StatusCode, res.Header.Get("WWW-Authenticate"), want)
	}
	res, _ = c.bearer("/mfa-only", lr.Access)
	if want := `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:latch:mfa"`; res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("no acr: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	// Re-authenticate through the cookie (the app's own page) with an ACR.
	_, body := c.post("/reauth", url.Values{"acr": {"urn:latch:mfa"}})
	var rn loginResult
	if err := json.Unmarshal([]byte(body), &rn); err != nil {
		t.Fatalf("reauth: %q", body)
	}
	e.remember(rn.Access, rn.Refresh, rn.CSRF)
	for _, path := range []string{"/sensitive", "/mfa-only"} {
		if res, _ := c.bearer(path, rn.Access); res.StatusCode != 200 {
			t.Fatalf("%s after re-authentication: %d", path, res.StatusCode)
		}
	}
	// The token from before the renewal no longer works at all.
	if res, _ := c.bearer("/sensitive", lr.Access); res.StatusCode != 401 || strings.Contains(res.Header.Get("WWW-Authenticate"), "insufficient") {
		t.Fatalf("pre-renewal token: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
}

// TestRequireRecentAuthCookie: a cookie request gets Config.Reauthenticate
// (a browser needs a page, not a status), with the requirement, and the
// handler does not run; without the hook it is a 401 through ErrorHandler.
func TestRequireRecentAuthCookie(t *testing.T) {
	var got latch.AuthRequirement
	e := newEnv(t, func(cfg *latchhttp.Config) {
		cfg.Reauthenticate = func(w http.ResponseWriter, r *http.Request, need latch.AuthRequirement) {
			got = need
			http.Redirect(w, r, "/confirm-password?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		}
	})
	c := e.newClient()
	c.login("alice")
	if res, body := c.get("/sensitive"); res.StatusCode != 200 || body != "sensitive" {
		t.Fatalf("fresh: %d %q", res.StatusCode, body)
	}
	e.clock.Advance(6 * time.Minute)
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, body := c.get("/sensitive")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/confirm-password?next=%2Fsensitive" || body == "sensitive" {
		t.Fatalf("stale cookie session: %d %q %q", res.StatusCode, res.Header.Get("Location"), body)
	}
	if got.MaxAge != 5*time.Minute || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Reauthenticate got %+v; Cache-Control %q", got, res.Header.Get("Cache-Control"))
	}
	c.me() // a fresh CSRF token for the form
	if res, _ := c.post("/reauth", nil); res.StatusCode != 200 {
		t.Fatalf("reauth: %d", res.StatusCode)
	}
	if res, body := c.get("/sensitive"); res.StatusCode != 200 || body != "sensitive" {
		t.Fatalf("after re-authentication: %d %q", res.StatusCode, body)
	}

	// Without the hook: ErrorHandler with ErrInsufficientAuth, 401.
	var handled error
	e2 := newEnv(t, func(cfg *latchhttp.Config) {
		cfg.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			handled = err
			latchhttp.DefaultErrorHandler(w, r, err)
		}
	})
	c2 := e2.newClient()
	c2.login("bob")
	e2.clock.Advance(6 * time.Minute)
	if res, _ := c2.get("/sensitive"); res.StatusCode != 401 || !errors.Is(handled, latch.ErrInsufficientAuth) {
		t.Fatalf("without Reauthenticate: %d, ErrorHandler got %v", res.StatusCode, handled)
	}
	// No session at all: RequireSession's answer.
	handled = nil
	if res, _ := e2.newClient().get("/sensitive"); res.StatusCode != 401 || !errors.Is(handled, latchhttp.ErrUnauthenticated) {
		t.Fatalf("no session: %d", res.StatusCode)
	}
}

func TestRequireRecentAuthRefusesBadACRValues(t *testing.T) {
	e := newEnv(t)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "latchhttp: RequireRecentAuth") {
			t.Fatalf("recover() = %v, want a latchhttp panic", r)
		}
	}()
	e.s.RequireRecentAuth(time.Minute, "two words")
}
