package latchhttp_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/latchhttp"
)

func TestCSRF(t *testing.T) {
	e := newEnv(t, func(c *latchhttp.Config) { c.TrustedOrigins = []string{"https://admin.example.com"} })
	c := e.newClient()
	c.login("alice")
	info, _ := c.me()
	good := info.CSRFToken
	other := e.newClient()
	other.login("bob")
	otherInfo, _ := other.me()

	form := func(tok string) *http.Request {
		f := url.Values{"note": {"hi"}}
		if tok != "" {
			f.Set("csrf_token", tok)
		}
		req := c.req("POST", "/echo", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	header := func(tok string) *http.Request {
		req := c.req("POST", "/echo", strings.NewReader(`{"note":"hi"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", tok)
		return req
	}
	multi := func(tok string) *http.Request {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("note", "hi")
		if tok != "" {
			mw.WriteField("csrf_token", tok)
		}
		fw, _ := mw.CreateFormFile("file", "a.txt")
		fw.Write([]byte("contents"))
		mw.Close()
		req := c.req("POST", "/echo", &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return req
	}
	wrong := base64.RawURLEncoding.EncodeToString(make([]byte, 64))

	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		body   string
		reason string
	}{
		{"form token", func() *http.Request { return form(good) }, 200, "cookie hi", ""},
		{"header token", func() *http.Request { return header(good) }, 200, "cookie ", ""},
		{"multipart token", func() *http.Request { return multi(good) }, 200, "cookie hi", ""},
		{"same-origin fetch", func() *http.Request {
			r := header(good)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			return r
		}, 200, "", ""},
		{"trusted origin", func() *http.Request {
			r := header(good)
			r.Header.Set("Sec-Fetch-Site", "same-site")
			r.Header.Set("Origin", "https://admin.example.com")
			return r
		}, 200, "", ""},
		{"missing token", func() *http.Request { return form("") }, 403, "", "missing-token"},
		{"missing multipart token", func() *http.Request { return multi("") }, 403, "", "missing-token"},
		{"wrong token", func() *http.Request { return form(wrong) }, 403, "", "invalid-token"},
		{"garbage token", func() *http.Request { return header("not-a-token") }, 403, "", "invalid-token"},
		{"token of another session", func() *http.Request { return form(otherInfo.CSRFToken) }, 403, "", "invalid-token"},
		{"header of another session", func() *http.Request { return header(otherInfo.CSRFToken) }, 403, "", "invalid-token"},
		{"token in query string only", func() *http.Request {
			r := form("")
			r.URL.RawQuery = "csrf_token=" + url.QueryEscape(good)
			return r
		}, 403, "", "missing-token"},
		{"cross-site origin", func() *http.Request {
			r := form(good)
			r.Header.Set("Origin", "https://evil.example")
			return r
		}, 403, "", "cross-origin"},
		{"sec-fetch-site cross-site", func() *http.Request {
			r := header(good)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			return r
		}, 403, "", "cross-origin"},
		{"sec-fetch-site same-site", func() *http.Request {
			r := header(good)
			r.Header.Set("Sec-Fetch-Site", "same-site")
			return r
		}, 403, "", "cross-origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.ev.count(latch.EventCSRFRejected, tc.reason)
			res, body := c.do(tc.req())
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, tc.status, body)
			}
			if tc.body != "" && body != tc.body {
				t.Fatalf("body %q, want %q", body, tc.body)
			}
			if tc.status == 403 {
				if got := e.ev.count(latch.EventCSRFRejected, tc.reason) - before; got != 1 {
					t.Fatalf("%d csrf.rejected events with reason %q, want 1", got, tc.reason)
				}
				if len(res.Header.Values("Set-Cookie")) != 0 {
					t.Fatal("a CSRF rejection changed the cookie")
				}
			}
		})
	}

	t.Run("safe methods need no token", func(t *testing.T) {
		req := c.req("GET", "/me", nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if res, _ := c.do(req); res.StatusCode != 200 {
			t.Fatalf("cross-site GET: %d", res.StatusCode)
		}
	})
	t.Run("login CSRF", func(t *testing.T) {
		anon := e.newClient()
		req := anon.req("POST", "/login", strings.NewReader("user=mallory"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if res, _ := anon.do(req); res.StatusCode != 403 || anon.sessionCookie() != "" {
			t.Fatalf("cross-site login: %d", res.StatusCode)
		}
	})
	t.Run("cross-origin bypass", func(t *testing.T) {
		e2 := newEnv(t, func(c *latchhttp.Config) { c.CrossOriginBypass = []string{"POST /login"} })
		anon := e2.newClient()
		req := anon.req("POST", "/login", strings.NewReader("user=alice"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if res, _ := anon.do(req); res.StatusCode != 200 {
			t.Fatalf("cross-site post to a bypassed endpoint: %d", res.StatusCode)
		}
		// Other endpoints stay protected, and a session still needs its token.
		anon.me()
		req = anon.req("POST", "/echo", nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("X-CSRF-Token", anon.csrf)
		if res, _ := anon.do(req); res.StatusCode != 403 {
			t.Fatalf("cross-site post elsewhere: %d", res.StatusCode)
		}
		req = anon.req("POST", "/login", strings.NewReader("user=alice"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if res, _ := anon.do(req); res.StatusCode != 403 {
			t.Fatalf("bypassed endpoint with a session but no token: %d", res.StatusCode)
		}
	})
	t.Run("bearer exempt", func(t *testing.T) {
		lr := e.newClient().login("carol")
		req := c.req("DELETE", "/echo", nil)
		req.Method = "POST"
		req.Header.Set("Authorization", "Bearer "+lr.Access)
		req.Header.Set("Origin", "https://evil.example")
		if res, body := e.newClient().do(req); res.StatusCode != 200 || body != "bearer " {
			t.Fatalf("bearer POST without CSRF token: %d %q", res.StatusCode, body)
		}
	})
	t.Run("masked per call", func(t *testing.T) {
		a, _ := c.me()
		b, _ := c.me()
		if a.CSRFToken == b.CSRFToken || a.CSRFToken == "" {
			t.Fatal("CSRF tokens are not masked per response")
		}
		for _, tok := range []string{a.CSRFToken, b.CSRFToken} {
			if res, _ := c.do(header(tok)); res.StatusCode != 200 {
				t.Fatal("a masked token was refused")
			}
		}
	})
	t.Run("csrf token in response means no-store", func(t *testing.T) {
		res, _ := c.get("/me")
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control = %q", res.Header.Get("Cache-Control"))
		}
		res, _ = c.get("/public")
		if res.Header.Get("Cache-Control") != "" {
			t.Fatalf("page without a token: Cache-Control = %q", res.Header.Get("Cache-Control"))
		}
	})
	t.Run("oversized form", func(t *testing.T) {
		e2 := newEnv(t, func(c *latchhttp.Config) { c.MaxFormSize = 1 << 10 })
		c2 := e2.newClient()
		c2.login("alice")
		c2.me()
		res, _ := c2.post("/echo", url.Values{"note": {strings.Repeat("x", 2<<10)}})
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("oversized form: %d", res.StatusCode)
		}
		res, body := c2.post("/echo", url.Values{"note": {strings.Repeat("x", 100)}})
		if res.StatusCode != 200 || body != "cookie "+strings.Repeat("x", 100) {
			t.Fatalf("small form: %d", res.StatusCode)
		}
	})
}

// TestNoTokenInLogs runs logins, failures and rejections, then checks that
// no token or CSRF token appears in the events' slog output, the server's
// error log, or any error the layer produced.
func TestNoTokenInLogs(t *testing.T) {
	var errLog testutil.Buffer
	e := newEnv(t, func(c *latchhttp.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			fmt.Fprintf(&errLog, "%v | %+v | %#v\n", err, err, err)
			latchhttp.DefaultErrorHandler(w, r, err)
		}
	})
	c := e.newClient()
	lr := c.login("alice")
	info, _ := c.me()
	cookie := c.sessionCookie()
	e.remember(cookie, info.CSRFToken)

	// Rejections and failures with real tokens in play.
	c.csrf = ""
	c.post("/echo", url.Values{"csrf_token": {info.CSRFToken + "x"}})
	r := c.req("POST", "/echo", nil)
	r.Header.Set("Origin", "https://evil.example")
	r.Header.Set("X-CSRF-Token", info.CSRFToken)
	c.do(r)
	c.bearer("/me", lr.Access+"x")
	c.bearer("/me", lr.Refresh)
	c.bearer("/me", cookie)
	tampered := e.newClient()
	tampered.setSessionCookie(cookie[:len(cookie)-2] + "AA")
	tampered.me()
	c.me()
	c.post("/renew", nil)
	e.store.setDown(true)
	c.get("/me")
	e.store.setDown(false)
	c.me()
	c.post("/logout", nil)
	replay := e.newClient()
	replay.setSessionCookie(cookie)
	replay.me()
	replay.bearer("/me", lr.Access)

	logs := e.logs.String() + errLog.String()
	if !strings.Contains(logs, "csrf.rejected") || !strings.Contains(logs, "validation.failed") || !strings.Contains(errLog.String(), "latchhttp:") {
		t.Fatalf("the flow did not log what it should have:\n%s", logs)
	}
	e.smu.Lock()
	defer e.smu.Unlock()
	if len(e.secrets) < 6 {
		t.Fatalf("only %d secrets collected", len(e.secrets))
	}
	for _, s := range e.secrets {
		for _, part := range secretParts(s) {
			if strings.Contains(logs, part) {
				t.Errorf("a token (%.6s…) appears in the logs", s)
			}
		}
	}
}

// secretParts returns the token and its secret-bearing segments, so a log
// line holding only part of a token (a JWT signature) is caught too.
func secretParts(tok string) []string {
	parts := []string{tok}
	if i := strings.IndexByte(tok, '_'); i > 0 && i < 4 {
		parts = append(parts, tok[i+1:])
	}
	for _, seg := range strings.Split(tok, ".") {
		if len(seg) >= 16 && seg != tok {
			parts = append(parts, seg)
		}
	}
	return parts
}
