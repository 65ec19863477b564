package server

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// unmaskCSRF returns the key k of a CSRF token base64url(m ‖ m⊕k), the way
// a client middleware does (docs/protocol.md, section 2).
func unmaskCSRF(t *testing.T, tok string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) != 64 {
		t.Fatalf("CSRF token %.8s… is not base64url of 64 bytes (%v)", tok, err)
	}
	k := make([]byte, 32)
	for i := range k {
		k[i] = b[i] ^ b[32+i]
	}
	return k
}

// The client helpers cache verify answers and check CSRF tokens locally
// (docs/protocol.md, sections 2 and 4): a session-token verify carries a
// masking of the session's CSRF key, and every 200 verify says how long it
// may be cached.
func TestVerifyAnswersCSRFAndCacheLifetime(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	verify := func(member, tok string) *response {
		t.Helper()
		r := h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{%q:%q}`, member, tok))
		wantStatus(t, r, http.StatusOK)
		return r
	}

	r1 := verify("session_token", c.sessionToken)
	if got := r1.header.Get("Cache-Control"); got != "private, max-age=60" {
		t.Errorf("session verify: Cache-Control = %q, want %q (the default touch interval)", got, "private, max-age=60")
	}
	tok1, _ := r1.json(t)["csrf_token"].(string)
	r2 := verify("session_token", c.sessionToken)
	tok2, _ := r2.json(t)["csrf_token"].(string)
	if tok1 == "" || tok2 == "" {
		t.Fatalf("session verify returned no csrf_token: %s", r1.body)
	}
	if tok1 == tok2 {
		t.Error("two verifies returned the same CSRF token: it is not masked per answer")
	}
	k := unmaskCSRF(t, tok1)
	if !bytes.Equal(k, unmaskCSRF(t, tok2)) {
		t.Error("two verifies' CSRF tokens unmask to different keys")
	}

	// It is the session's own key: whoami's token unmasks to it, and the
	// token from verify is accepted by cookie logout.
	cookie := map[string]string{"Cookie": "__Host-latch=" + c.sessionToken}
	w := h.do(req{method: "GET", path: "/v1/whoami", header: cookie})
	wantStatus(t, w, http.StatusOK)
	if !bytes.Equal(k, unmaskCSRF(t, w.json(t)["csrf_token"].(string))) {
		t.Error("verify's CSRF key differs from whoami's")
	}

	// An access-token verify carries no CSRF token, and is cacheable too.
	ra := verify("access_token", c.accessToken)
	if _, ok := ra.json(t)["csrf_token"]; ok {
		t.Errorf("access-token verify returned a csrf_token: %s", ra.body)
	}
	if got := ra.header.Get("Cache-Control"); got != "private, max-age=60" {
		t.Errorf("access verify: Cache-Control = %q", got)
	}

	// Failures are never cacheable.
	bad := h.api("POST", "/v1/sessions/verify", `{"session_token":"lts_nope"}`)
	wantProblem(t, bad, http.StatusUnauthorized, CodeInvalidToken)
	if got := bad.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("401 verify: Cache-Control = %q, want no-store", got)
	}

	// After renew the old key is gone with the old token.
	rn := h.api("POST", "/v1/sessions/"+c.id+"/renew", "")
	wantStatus(t, rn, http.StatusOK)
	nc := parseCreated(t, rn.body)
	if bytes.Equal(k, unmaskCSRF(t, verify("session_token", nc.sessionToken).json(t)["csrf_token"].(string))) {
		t.Error("renew kept the CSRF key")
	}

	logout := h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{
		"Cookie": "__Host-latch=" + nc.sessionToken, "X-CSRF-Token": verify("session_token", nc.sessionToken).json(t)["csrf_token"].(string),
	}})
	wantStatus(t, logout, http.StatusNoContent)
}

// max-age never outlives the session: it is capped by the time left before
// the absolute deadline (and the idle one), rounded down.
func TestVerifyCacheLifetimeCappedBySession(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.TouchInterval = time.Minute
		o.IdleTimeout = 2 * time.Minute
		o.AbsoluteTimeout = 3 * time.Minute
	})
	c := h.create("alice", "")
	body := fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)
	h.clock.Advance(90 * time.Second) // touched: idle deadline 3m30s, absolute 3m
	wantStatus(t, h.api("POST", "/v1/sessions/verify", body), http.StatusOK)
	h.clock.Advance(69*time.Second + 500*time.Millisecond) // 2m39.5s: 20.5 s left
	for member, tok := range map[string]string{"session_token": c.sessionToken, "access_token": c.accessToken} {
		r := h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{%q:%q}`, member, tok))
		wantStatus(t, r, http.StatusOK)
		if got := r.header.Get("Cache-Control"); got != "private, max-age=20" {
			t.Errorf("%s: Cache-Control = %q, want private, max-age=20 (20.5 s to the absolute deadline)", member, got)
		}
	}
}

// An access-token verify is not cacheable past the token's own exp.
func TestVerifyCacheLifetimeCappedByAccessToken(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.AccessTokenTTL = 45 * time.Second })
	c := h.create("alice", "")
	h.clock.Advance(10 * time.Second)
	r := h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.accessToken))
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("Cache-Control"); got != "private, max-age=35" {
		t.Errorf("Cache-Control = %q, want private, max-age=35 (the token expires in 35 s)", got)
	}
}

// Answers carry a Content-Length (not chunked), whether net/http computes
// it (small answers) or writeBody sets it (past autoContentLength).
func TestAnswersHaveContentLength(t *testing.T) {
	h := newHarness(t)
	small := h.create("alice", "")
	large := h.create("bob", fmt.Sprintf(`,"data":{"x":%q}`, strings.Repeat("x", 3*autoContentLength)))
	for name, tok := range map[string]string{"small": small.sessionToken, "large": large.sessionToken} {
		t.Run(name, func(t *testing.T) {
			r, _ := http.NewRequest("POST", h.ts.URL+"/v1/sessions/verify", strings.NewReader(fmt.Sprintf(`{"session_token":%q}`, tok)))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+testAPIKey)
			resp, err := h.ts.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 0 || resp.ContentLength != int64(len(b)) {
				t.Fatalf("status %d, Transfer-Encoding %q, Content-Length %d for a %d-byte body", resp.StatusCode, resp.TransferEncoding, resp.ContentLength, len(b))
			}
			if name == "large" && len(b) <= autoContentLength {
				t.Fatalf("the large answer has %d bytes only", len(b))
			}
		})
	}
}

// verifyFirst only takes requests ServeMux would route to the verify
// endpoint as well; every other request, however close, goes to the mux.
func TestVerifyFirstAgreesWithMux(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ method, target string }{
		{"POST", "/v1/sessions/verify"},
		{"POST", "/v1/sessions/verify?x=1"},
		{"POST", "http://other.test/v1/sessions/verify"},
		{"GET", "/v1/sessions/verify"},
		{"HEAD", "/v1/sessions/verify"},
		{"PUT", "/v1/sessions/verify"},
		{"POST", "/v1/sessions/verify/"},
		{"POST", "/v1/sessions/Verify"},
		{"POST", "/v1//sessions/verify"},
		{"POST", "/v1/sessions/./verify"},
		{"POST", "/v1/sessions/x/../verify"},
		{"POST", "/v1/sessions/%76erify"},
		{"POST", "/v1/sessions/verify%2F"},
		{"POST", "/v1/sessions"},
		{"POST", "/v1/sessions/ses_AAECAwQFBgcICQoLDA0ODxAR/renew"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		_, pattern := h.srv.mux.Handler(r)
		if isVerify(r) && pattern != verifyPattern {
			t.Errorf("%s %s: verifyFirst takes it, the mux routes it to %q", c.method, c.target, pattern)
		}
		if !isVerify(r) && c.method == "POST" && c.target == "/v1/sessions/verify" {
			t.Errorf("%s %s: not taken by verifyFirst", c.method, c.target)
		}
	}
	// Through the whole handler: the fast path sets the route the request
	// log and metrics use.
	c := h.create("alice", "")
	wantStatus(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)), http.StatusOK)
	wantStatus(t, h.api("GET", "/v1/sessions/verify", ""), http.StatusMethodNotAllowed)
	m := h.do(req{method: "GET", path: "/metrics"})
	if !strings.Contains(string(m.body), `latch_http_request_duration_seconds_count{code="200",route="POST /v1/sessions/verify"} 1`) {
		t.Error("the fast path's request was not counted under its route")
	}
}
