package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fromAddr is an HTTP client whose connections come from the loopback
// address ip (Linux routes all of 127/8 to lo), a client of its own.
func fromAddr(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// A flood of bad tokens from one address is cut off with 429 and
// Retry-After, counted in metrics; it never locks out another address, nor
// a backend on the flooding address that sends the API key; back-channel
// calls are not limited at all; and the address recovers with time.
func TestRateLimitFloodIsolated(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.RateLimit, o.RateBurst = 1, 5
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	flood := map[string]string{"X-Forwarded-For": "198.51.100.66"}
	other := map[string]string{"X-Forwarded-For": "203.0.113.5"}
	limited := 0
	for i := range 40 {
		r := h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":"ltr_bad%d"}`, i), header: flood})
		if r.status == http.StatusTooManyRequests {
			limited++
			wantProblem(t, r, http.StatusTooManyRequests, CodeRateLimited)
			if ra := r.header.Get("Retry-After"); ra != "1" {
				t.Errorf("Retry-After = %q, want 1 (1 request/s)", ra)
			}
			continue
		}
		if i >= 5 {
			t.Fatalf("request %d past the burst of 5 answered %d", i+1, r.status)
		}
		wantProblem(t, r, http.StatusUnauthorized, CodeInvalidToken)
	}
	if limited != 35 {
		t.Fatalf("%d of 40 requests limited, want 35 (burst 5)", limited)
	}
	// The limit is per client, across the public endpoints.
	wantProblem(t, h.do(req{method: "GET", path: "/v1/whoami", header: flood}), http.StatusTooManyRequests, CodeRateLimited)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/logout", header: flood}), http.StatusTooManyRequests, CodeRateLimited)

	// Another address is served.
	c := h.create("alice", "")
	r := h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken), header: other})
	wantStatus(t, r, http.StatusOK)
	next := r.json(t)["refresh_token"].(string)
	wantStatus(t, h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{
		"X-Forwarded-For": "203.0.113.5", "Authorization": "Bearer " + c.accessToken}}), http.StatusOK)

	// A backend on the flooding address relaying a refresh with the API key
	// is not limited; neither is any back-channel call.
	r = h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, next), apiKey: true, header: flood})
	wantStatus(t, r, http.StatusOK)
	for range 20 {
		wantStatus(t, h.do(req{method: "POST", path: "/v1/sessions/verify", apiKey: true, header: flood,
			body: fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)}), http.StatusOK)
	}
	// A wrong API key is just another limited caller.
	wantProblem(t, h.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":"ltr_x"}`, header: map[string]string{
		"X-Forwarded-For": "198.51.100.66", "Authorization": "Bearer " + strings.Repeat("k", 40)}}), http.StatusTooManyRequests, CodeRateLimited)

	// Refused requests cost nothing: a second later one more is allowed.
	h.clock.Advance(time.Second)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":"ltr_bad"}`, header: flood}), http.StatusUnauthorized, CodeInvalidToken)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":"ltr_bad"}`, header: flood}), http.StatusTooManyRequests, CodeRateLimited)

	m := h.do(req{method: "GET", path: "/metrics"})
	if !strings.Contains(string(m.body), `latch_rate_limited_total{route="POST /v1/refresh"} 37`) {
		t.Errorf("metrics do not count the 37 refused refreshes:\n%s", grepLines(string(m.body), "latch_rate_limited"))
	}
	// The request log names the client the trusted proxy reported.
	if !strings.Contains(h.logs.String(), `"remote":"198.51.100.66"`) {
		t.Error("the request log does not name the forwarded client address")
	}
}

// Without --trusted-proxies, X-Forwarded-For is the client's own claim and
// is ignored: rotating it does not escape the limit. Clients are told
// apart by their connection's address.
func TestRateLimitByConnectionAddress(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.RateLimit, o.RateBurst = 1, 3 })
	for i := range 10 {
		r := h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"X-Forwarded-For": fmt.Sprintf("192.0.2.%d", i)}})
		if i < 3 {
			wantProblem(t, r, http.StatusUnauthorized, CodeUnauthorized)
		} else {
			wantProblem(t, r, http.StatusTooManyRequests, CodeRateLimited)
		}
	}
	// A connection from another address is another client.
	c := h.create("bob", "")
	another := fromAddr(t, "127.0.0.2")
	r := h.do(req{method: "GET", path: "/v1/whoami", via: another, header: map[string]string{"Authorization": "Bearer " + c.accessToken}})
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(h.logs.String(), `"remote":"127.0.0.2"`) {
		t.Error("the request log does not show the second connection's address")
	}
}

// Limits can be turned off.
func TestRateLimitOff(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.RateLimit, o.RateBurst = -1, 1 })
	for range 50 {
		wantProblem(t, h.do(req{method: "GET", path: "/v1/whoami"}), http.StatusUnauthorized, CodeUnauthorized)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
