package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func TestWebapp(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, err := newApp(appConfig{Password: "correct horse", IdleTimeout: 5 * time.Minute, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(a.Handler())
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar

	page := func(res *http.Response, err error) (int, string, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		tok := ""
		if m := csrfField.FindStringSubmatch(string(b)); m != nil {
			tok = m[1]
		}
		return res.StatusCode, string(b), tok
	}

	code, body, tok := page(c.Get(srv.URL + "/"))
	if code != 200 || !strings.Contains(body, "Sign in") {
		t.Fatalf("home: %d", code)
	}
	if tok == "" {
		t.Fatal("the login form has no CSRF token")
	}
	// The login form needs its token: without it, or with one of another
	// visitor, the right password signs nobody in.
	other, _ := cookiejar.New(nil)
	oc := *srv.Client()
	oc.Jar = other
	_, _, otherTok := page(oc.Get(srv.URL + "/"))
	for _, bad := range []string{"", otherTok, strings.Repeat("A", 86)} {
		code, _, _ = page(c.PostForm(srv.URL+"/login", url.Values{"user": {"alice"}, "password": {"correct horse"}, "csrf_token": {bad}}))
		if code != http.StatusForbidden {
			t.Fatalf("login with token %.8q: %d, want 403", bad, code)
		}
	}
	if list, _ := a.m.List(t.Context(), "alice"); len(list) != 0 {
		t.Fatalf("%d sessions after refused logins", len(list))
	}
	code, _, tok = page(c.PostForm(srv.URL+"/login", url.Values{"user": {"alice"}, "password": {"wrong"}, "csrf_token": {tok}}))
	if code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	code, body, tok = page(c.PostForm(srv.URL+"/login", url.Values{"user": {"alice"}, "password": {"correct horse"}, "csrf_token": {tok}}))
	if code != 200 || !strings.Contains(body, "Hello, alice") || tok == "" {
		t.Fatalf("login: %d %s", code, body)
	}
	if !strings.Contains(body, "this device") || !strings.Contains(body, `data-left="300"`) {
		t.Fatalf("account page lacks the session table or the countdown:\n%s", body)
	}
	code, body, _ = page(c.Get(srv.URL + "/session.json"))
	if code != 200 || !strings.Contains(body, `"idle_seconds_left":300`) {
		t.Fatalf("session.json: %d %s", code, body)
	}
	// A form post without the token is refused.
	code, _, _ = page(c.PostForm(srv.URL+"/logout", nil))
	if code != http.StatusForbidden {
		t.Fatalf("logout without CSRF token: %d", code)
	}
	code, body, tok = page(c.PostForm(srv.URL+"/sessions/revoke-others", url.Values{"csrf_token": {tok}}))
	if code != 200 || !strings.Contains(body, "no other sessions") {
		t.Fatalf("revoke others: %d %s", code, body)
	}
	code, body, _ = page(c.PostForm(srv.URL+"/logout", url.Values{"csrf_token": {tok}}))
	if code != 200 || !strings.Contains(body, "You are signed out") {
		t.Fatalf("logout: %d %s", code, body)
	}
	if code, _, _ = page(c.Get(srv.URL + "/account")); code != http.StatusUnauthorized {
		t.Fatalf("account after logout: %d", code)
	}
}
