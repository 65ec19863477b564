package server

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// With SeparateMetrics, /metrics is only on the metrics listener: the API
// (and a handler mounted on it) answers 404 for it.
func TestSeparateMetricsListener(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SeparateMetrics = true })
	h.srv.Mount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("demo")) }))
	h.create("alice", "")
	wantProblem(t, h.do(req{method: "GET", path: "/metrics"}), http.StatusNotFound, CodeNotFound)
	for _, rt := range h.srv.Routes() {
		if rt == "GET /metrics" {
			t.Error("GET /metrics is still an API route")
		}
	}

	ms := httptest.NewServer(h.srv.MetricsHTTPServer().Handler)
	defer ms.Close()
	resp, err := http.Get(ms.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b := new(strings.Builder)
	bufio.NewReader(resp.Body).WriteTo(b)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(b.String(), "latch_sessions_created_total 1") {
		t.Errorf("metrics listener: %d, missing latch_sessions_created_total 1", resp.StatusCode)
	}
	// Nothing else is on the metrics listener.
	for _, p := range []string{"/v1/whoami", "/healthz", "/", "/.well-known/jwks.json"} {
		resp, err := http.Get(ms.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("metrics listener serves %s: %d", p, resp.StatusCode)
		}
	}
}

// Health and readiness probes are logged at debug level, everything else
// as before (info; errors for 5xx).
func TestProbesLoggedAtDebug(t *testing.T) {
	h := newHarness(t)
	wantStatus(t, h.do(req{method: "GET", path: "/healthz"}), 200)
	wantStatus(t, h.do(req{method: "GET", path: "/readyz"}), 200)
	h.store.down.Store(true)
	wantStatus(t, h.do(req{method: "GET", path: "/readyz"}), 503)
	wantStatus(t, h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Cookie": "__Host-latch=lts_x"}}), 401)
	h.store.down.Store(false)
	wantStatus(t, h.do(req{method: "GET", path: "/metrics"}), 200)

	levels := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var e struct{ Level, Msg, Route string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "request" {
			levels[e.Route] = append(levels[e.Route], e.Level)
		}
	}
	if got := strings.Join(levels["GET /healthz"], ","); got != "DEBUG" {
		t.Errorf("healthz logged at %s, want DEBUG", got)
	}
	if got := strings.Join(levels["GET /readyz"], ","); got != "DEBUG,DEBUG" {
		t.Errorf("readyz (200, 503) logged at %s, want DEBUG,DEBUG", got)
	}
	if got := strings.Join(levels["GET /v1/whoami"], ","); got != "INFO" {
		t.Errorf("whoami logged at %s, want INFO", got)
	}
	if got := strings.Join(levels["GET /metrics"], ","); got != "INFO" {
		t.Errorf("metrics logged at %s, want INFO", got)
	}
	// The failing readiness check still says why, once, as a warning.
	if !strings.Contains(h.logs.String(), `"level":"WARN","msg":"store unavailable","route":"GET /readyz"`) {
		t.Error("a failing readyz logged no warning")
	}
}

// The metadata document is served as documented (the contract check of
// the harness validates it against api/openapi.json).
func TestMetadataAsDocumented(t *testing.T) {
	h := newHarness(t)
	h.create("alice", "") // the log check needs some output
	r := h.do(req{method: "GET", path: "/.well-known/oauth-authorization-server"})
	wantStatus(t, r, http.StatusOK)
	if m := r.json(t); m["issuer"] != "https://latch.test" {
		t.Errorf("issuer = %v", m["issuer"])
	}
}
