package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNoSecretsInLogs runs every flow, successes and failures, collecting
// each token and key that crossed the wire (issued by the server or sent by
// a client, right or wrong), and checks that none of them reached the log.
// (Every other test in this package makes the same check on its own run
// when it ends; see harness.checkLogs.)
func TestNoSecretsInLogs(t *testing.T) {
	h := newHarness(t)
	wrongKey := "wrong-api-key-" + strings.Repeat("z", 32)
	bogus := []string{"lts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ltr_bogusbogusbogusbogusbogusbogusbogus", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", wrongKey}
	for _, b := range bogus {
		h.secrets[b] = true
	}

	// Every event type, on a stream the log check scans as well.
	all := "?types=session.revoked,session.renewed,session.refresh_reuse,subject.revoked,keys.changed,session.created,session.refreshed,session.expired,csrf.rejected,validation.failed"
	stream := h.stream(all, "")

	c := h.create("alice", `,"data":{"k":"v"},"claims":{"role":"user"}`)
	h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken))
	h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.accessToken))
	for _, b := range bogus {
		h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, b))
		h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, b))
		h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, b)})
		h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "Bearer " + b}})
		h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Cookie": DefaultCookieName + "=" + b}})
		h.do(req{method: "GET", path: "/v1/keys", header: map[string]string{"Authorization": "Bearer " + b}})
		// Secrets where they must never be: in the URL.
		h.api("GET", "/v1/sessions/"+b, "")
		h.api("GET", "/v1/subjects/alice/sessions?token="+b, "")
	}
	r := h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Cookie": DefaultCookieName + "=" + c.sessionToken}})
	csrf, _ := r.json(t)["csrf_token"].(string)
	h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{"Cookie": DefaultCookieName + "=" + c.sessionToken, "X-CSRF-Token": "x" + csrf}})

	rf := h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken)})
	_ = rf
	h.clock.Advance(time.Minute)
	h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken)}) // reuse

	d := h.create("bob", "")
	h.api("POST", "/v1/sessions/"+d.id+"/renew", "")
	h.api("PATCH", "/v1/sessions/"+d.id, `{"data":{"x":1}}`)
	h.create("bob", fmt.Sprintf(`,"replace_session_token":%q`, d.sessionToken))
	h.api("DELETE", "/v1/subjects/bob/sessions", "")
	h.api("POST", "/v1/keys/rotate", "")
	h.store.down.Store(true)
	h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, d.sessionToken))
	h.store.down.Store(false)

	seen := map[string]bool{}
	for !seen["keys.changed"] {
		e, _ := stream.next()
		seen[e.event] = true
	}
	for _, want := range []string{"session.created", "session.revoked", "session.renewed", "session.refresh_reuse", "subject.revoked", "session.refreshed", "csrf.rejected", "validation.failed"} {
		if !seen[want] {
			t.Errorf("the stream lacked %s before keys.changed; is it scanned?", want)
		}
	}
	logs := h.logs.String()
	for _, want := range []string{`"msg":"session.created"`, `"msg":"session.refresh_reuse_detected"`, `"msg":"csrf.rejected"`, `"msg":"request"`, `"msg":"store unavailable"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s; is it captured?", want)
		}
	}
	if len(h.secrets) < 12 {
		t.Fatalf("only %d secrets collected", len(h.secrets))
	}
	// harness.checkLogs runs at cleanup; run it now too so a failure is
	// reported by this test's name.
	h.checkLogs()
}
