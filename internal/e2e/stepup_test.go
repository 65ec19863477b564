package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStepUpEndToEnd (RFC 9470) on two latch serve replicas: auth_time,
// acr and amr set at create are in the session view and the access token
// (RFC 9068 §2.2.1); a future auth_time is refused; a verify whose max_age
// or acr_values the session does not meet is 401
// insufficient_user_authentication with the RFC 9470 challenge and
// changes nothing; a renew with the new authentication meets them, on the
// other replica too.
func TestStepUpEndToEnd(t *testing.T) {
	d := deploy(t)
	signedIn := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	if a := call(t, "POST", d.a.URL+"/v1/sessions", d.apiKey, jsonOf(map[string]any{"subject": "alice",
		"auth_time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}), nil); a.status != http.StatusBadRequest || a.body["code"] != "bad_request" {
		t.Fatalf("create with a future auth_time: %d %s, want 400 bad_request", a.status, a.raw)
	}
	c := call(t, "POST", d.a.URL+"/v1/sessions", d.apiKey, jsonOf(map[string]any{"subject": "alice",
		"auth_time": signedIn.Format(time.RFC3339), "acr": "urn:example:pwd", "amr": []string{"pwd"}}), nil)
	if c.status != http.StatusCreated {
		t.Fatalf("create: %d %s", c.status, c.raw)
	}
	sess := c.body["session"].(map[string]any)
	id, access := sess["id"].(string), c.body["access_token"].(string)
	if sess["acr"] != "urn:example:pwd" || jsonOf(sess["amr"]) != `["pwd"]` || sess["auth_time"] != signedIn.Format(time.RFC3339) {
		t.Fatalf("session view: %v", sess)
	}
	parts := strings.Split(access, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(raw, &claims)
	if claims["auth_time"] != float64(signedIn.Unix()) || claims["acr"] != "urn:example:pwd" || jsonOf(claims["amr"]) != `["pwd"]` {
		t.Fatalf("access token claims: %v", claims)
	}

	before := d.session(t, id)
	time.Sleep(1100 * time.Millisecond) // past the touch interval
	verify := func(url string, body map[string]any) *answer {
		return call(t, "POST", url+"/v1/sessions/verify", d.apiKey, jsonOf(body), nil)
	}
	for _, tc := range []struct {
		body      map[string]any
		challenge string
	}{
		{map[string]any{"session_token": c.body["session_token"], "max_age": 300, "ip": "203.0.113.7"},
			`Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age="300"`},
		{map[string]any{"access_token": access, "acr_values": []string{"urn:example:mfa"}, "ip": "203.0.113.7"},
			`Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:example:mfa"`},
	} {
		a := verify(d.b.URL, tc.body)
		if a.status != http.StatusUnauthorized || a.body["code"] != "insufficient_user_authentication" || a.header.Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("verify %v: %d %s, WWW-Authenticate %q\nwant 401 insufficient_user_authentication, %q", tc.body, a.status, a.raw, a.header.Get("WWW-Authenticate"), tc.challenge)
		}
	}
	after := d.session(t, id)
	for _, k := range []string{"last_seen_at", "ip", "version"} {
		if jsonOf(after[k]) != jsonOf(before[k]) {
			t.Errorf("refused step-ups changed %s: %v, was %v", k, after[k], before[k])
		}
	}
	if a := verify(d.a.URL, map[string]any{"session_token": c.body["session_token"], "max_age": 900}); a.status != http.StatusOK {
		t.Fatalf("verify with a max_age the session meets: %d %s", a.status, a.raw)
	}

	// Re-authentication, then the demanding verify passes on the other replica.
	now := time.Now().UTC().Truncate(time.Second)
	r := call(t, "POST", d.a.URL+"/v1/sessions/"+id+"/renew", d.apiKey, jsonOf(map[string]any{
		"auth_time": now.Format(time.RFC3339), "acr": "urn:example:mfa", "amr": []string{"pwd", "otp"}}), nil)
	if r.status != http.StatusOK {
		t.Fatalf("renew: %d %s", r.status, r.raw)
	}
	if a := verify(d.b.URL, map[string]any{"access_token": r.body["access_token"], "max_age": 300, "acr_values": []string{"urn:example:mfa"}}); a.status != http.StatusOK {
		t.Fatalf("verify after the renew: %d %s", a.status, a.raw)
	}
	if a := verify(d.b.URL, map[string]any{"access_token": access}); a.status == http.StatusOK {
		t.Fatal("the access token from before the renew still verifies")
	}
}
