package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStepUpVerify: POST /v1/sessions/verify with max_age and acr_values
// (RFC 9470). A session that meets them verifies; one that does not gets
// 401 insufficient_user_authentication with the exact challenge and is not
// touched; re-authenticating through renew meets them again.
func TestStepUpVerify(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", `,"acr":"urn:latch:pwd","amr":["pwd"]`)
	sess := c.body["session"].(map[string]any)
	if sess["acr"] != "urn:latch:pwd" || !sameJSON(sess["amr"], []any{"pwd"}) {
		t.Fatalf("created session view: %v", sess)
	}
	// The access token carries auth_time, acr and amr (RFC 9068 §2.2.1).
	claims := tokenClaims(t, c.accessToken)
	authTime, _ := time.Parse(time.RFC3339, sess["auth_time"].(string))
	if claims["auth_time"] != float64(authTime.Unix()) || claims["acr"] != "urn:latch:pwd" || !sameJSON(claims["amr"], []any{"pwd"}) {
		t.Fatalf("access token claims: %v", claims)
	}

	verify := func(cred, extra string) *response {
		t.Helper()
		return h.api("POST", "/v1/sessions/verify", `{`+cred+extra+`}`)
	}
	byToken := `"session_token":"` + c.sessionToken + `"`
	byAccess := `"access_token":"` + c.accessToken + `"`
	for _, cred := range []string{byToken, byAccess} {
		wantStatus(t, verify(cred, `,"max_age":300`), 200)
		wantStatus(t, verify(cred, `,"acr_values":["urn:latch:mfa","urn:latch:pwd"]`), 200)
		wantStatus(t, verify(cred, `,"max_age":300,"acr_values":["urn:latch:pwd"]`), 200)
	}

	h.clock.Advance(6 * time.Minute) // past max_age and the touch interval, not the access token's exp
	before := h.api("GET", "/v1/sessions/"+c.id, "").json(t)["session"].(map[string]any)
	for _, tc := range []struct {
		cred, extra, challenge string
	}{
		{byToken, `,"max_age":300`, `Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age="300"`},
		{byAccess, `,"max_age":300`, `Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age="300"`},
		{byToken, `,"acr_values":["urn:latch:mfa"],"max_age":3600`, `Bearer error="insufficient_user_authentication", error_description="A more recent authentication of another level is required", max_age="3600", acr_values="urn:latch:mfa"`},
		{byToken, `,"acr_values":["urn:latch:mfa","urn:latch:hwk"]`, `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:latch:mfa urn:latch:hwk"`},
	} {
		r := verify(tc.cred, tc.extra)
		wantProblem(t, r, http.StatusUnauthorized, CodeInsufficientUserAuthentication)
		if got := r.header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != tc.challenge {
			t.Errorf("%s: WWW-Authenticate = %q\nwant %q", tc.extra, got, tc.challenge)
		}
	}
	after := h.api("GET", "/v1/sessions/"+c.id, "").json(t)["session"].(map[string]any)
	if after["version"] != before["version"] || after["last_seen_at"] != before["last_seen_at"] {
		t.Fatalf("refused step-ups touched the session: version %v -> %v", before["version"], after["version"])
	}
	// A plain verify still works (and touches).
	wantStatus(t, verify(byToken, ``), 200)

	// Bad requirements are the caller's error.
	for _, extra := range []string{`,"max_age":0`, `,"max_age":-5`, `,"max_age":1.5`, `,"max_age":"300"`,
		`,"acr_values":[]`, `,"acr_values":["a b"]`, `,"acr_values":[""]`, `,"acr_values":["x\""]`, `,"acr_values":"urn:x"`} {
		wantProblem(t, verify(byToken, extra), http.StatusBadRequest, CodeBadRequest)
	}

	// Re-authentication: renew with a new auth_time, acr and amr.
	r := h.api("POST", "/v1/sessions/"+c.id+"/renew", `{"auth_time":"`+h.clock.Now().Format(time.RFC3339Nano)+`","acr":"urn:latch:mfa","amr":["pwd","otp"]}`)
	wantStatus(t, r, 200)
	rn := parseCreated(t, r.body)
	s := rn.body["session"].(map[string]any)
	if s["acr"] != "urn:latch:mfa" || !sameJSON(s["amr"], []any{"pwd", "otp"}) || s["auth_time"] != h.clock.Now().Format(time.RFC3339Nano) {
		t.Fatalf("renewed session view: %v", s)
	}
	wantStatus(t, h.api("POST", "/v1/sessions/verify", `{"session_token":"`+rn.sessionToken+`","max_age":300,"acr_values":["urn:latch:mfa"]}`), 200)
	wantStatus(t, h.api("POST", "/v1/sessions/verify", `{"access_token":"`+rn.accessToken+`","max_age":300,"acr_values":["urn:latch:mfa"]}`), 200)
	if cl := tokenClaims(t, rn.accessToken); cl["acr"] != "urn:latch:mfa" || !sameJSON(cl["amr"], []any{"pwd", "otp"}) {
		t.Fatalf("renewed access token claims: %v", cl)
	}
}

func TestStepUpCreateRenewRefuseBadAuthContext(t *testing.T) {
	h := newHarness(t)
	future := h.clock.Now().Add(time.Hour).Format(time.RFC3339)
	for _, body := range []string{
		`{"subject":"a","acr":"urn:a b"}`,
		`{"subject":"a","amr":["pwd",""]}`,
		`{"subject":"a","amr":"pwd"}`,
		`{"subject":"a","amr":["` + strings.Repeat("m", 33) + `"]}`,
		`{"subject":"a","auth_time":"` + future + `"}`,
	} {
		wantProblem(t, h.api("POST", "/v1/sessions", body), http.StatusBadRequest, CodeBadRequest)
	}
	c := h.create("a", "")
	if _, ok := c.body["session"].(map[string]any)["acr"]; ok {
		t.Fatal("a session without acr shows one")
	}
	// Empty and null members count as absent.
	e := h.create("a", `,"acr":"","amr":null,"auth_time":null`)
	if _, ok := e.body["session"].(map[string]any)["amr"]; ok {
		t.Fatal("a session created with amr null shows one")
	}
	wantStatus(t, h.api("POST", "/v1/sessions/"+e.id+"/renew", `{"acr":"","amr":[],"auth_time":null}`), 200)
	for _, body := range []string{`{"amr":["p w"]}`, `{"acr":"ü"}`, `{"auth_time":"` + future + `"}`} {
		wantProblem(t, h.api("POST", "/v1/sessions/"+c.id+"/renew", body), http.StatusBadRequest, CodeBadRequest)
	}
}

// tokenClaims decodes an access token's payload (its signature is the
// verifier's business; the tests above verify it through the API).
func tokenClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
