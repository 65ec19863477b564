package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// proofKey is a client's DPoP key, signing proofs with crypto/ed25519
// directly (independent of package dpop).
type proofKey struct {
	priv ed25519.PrivateKey
	jwk  string
	jkt  string
}

func newProofKey(t *testing.T) *proofKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x := base64.RawURLEncoding.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return &proofKey{priv, `{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}`, base64.RawURLEncoding.EncodeToString(sum[:])}
}

func (k *proofKey) proof(h *harness, htm, htu, accessToken string) string {
	c := map[string]any{"jti": rand.Text(), "htm": htm, "htu": htu, "iat": h.clock.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	cb, _ := json.Marshal(c)
	in := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":`+k.jwk+`}`)) + "." + base64.RawURLEncoding.EncodeToString(cb)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.priv, []byte(in)))
}

func relay(proof, htm, htu string) string {
	b, _ := json.Marshal(map[string]string{"proof": proof, "htm": htm, "htu": htu})
	return string(b)
}

func wantDPoPRefusal(t *testing.T, r *response, what string) {
	t.Helper()
	wantProblem(t, r, http.StatusUnauthorized, CodeInvalidDPoPProof)
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `DPoP algs="EdDSA Ed25519 ES256 RS256", error="invalid_dpop_proof", error_description="`) {
		t.Errorf("%s: WWW-Authenticate = %q, want the RFC 9449 §7.1 DPoP challenge", what, got)
	}
}

// TestDPoPBinding: a session bound at creation (relayed proof or dpop_jkt)
// says token_type DPoP, its access tokens carry cnf.jkt, its refresh needs
// a proof by that key (header or relayed; replayed, missing or foreign
// proofs refused without rotating), and verifying its access token needs a
// proof with ath.
func TestDPoPBinding(t *testing.T) {
	h := newHarness(t)
	key, other := newProofKey(t), newProofKey(t)
	const app = "https://app.example/login"
	c := h.create("alice", `,"dpop":`+relay(key.proof(h, "POST", app, ""), "POST", app))
	if c.body["token_type"] != "DPoP" {
		t.Fatalf("token_type = %v, want DPoP", c.body["token_type"])
	}
	if cnf, _ := tokenClaims(t, c.accessToken)["cnf"].(map[string]any); cnf["jkt"] != key.jkt {
		t.Fatalf("access token cnf = %v, want jkt %s", cnf, key.jkt)
	}
	plain := h.create("bob", "")
	if plain.body["token_type"] != "Bearer" || tokenClaims(t, plain.accessToken)["cnf"] != nil {
		t.Fatalf("an unbound session: token_type %v, cnf %v", plain.body["token_type"], tokenClaims(t, plain.accessToken)["cnf"])
	}

	// Creation refuses a bad proof and changes nothing.
	r := h.api("POST", "/v1/sessions", `{"subject":"carol","dpop":`+relay(key.proof(h, "GET", app, ""), "POST", app)+`}`)
	wantDPoPRefusal(t, r, "create with a proof for another method")

	refreshURL := h.ts.URL + "/v1/refresh"
	_ = refreshURL
	const self = "https://latch.test/v1/refresh" // the issuer is latch's public URL
	refresh := func(rt, body string, hdr map[string]string) *response {
		return h.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":"` + rt + `"` + body + `}`, header: hdr})
	}
	wantDPoPRefusal(t, refresh(c.refreshToken, "", nil), "refresh without a proof")
	wantDPoPRefusal(t, refresh(c.refreshToken, "", map[string]string{"DPoP": other.proof(h, "POST", self, "")}), "refresh with another key's proof")
	wantDPoPRefusal(t, refresh(c.refreshToken, "", map[string]string{"DPoP": key.proof(h, "POST", h.ts.URL+"/v1/sessions", "")}), "refresh with a proof for another URL")
	p := key.proof(h, "POST", self, "")
	r = refresh(c.refreshToken, "", map[string]string{"DPoP": p})
	wantStatus(t, r, http.StatusOK)
	rf := r.json(t)
	if rf["token_type"] != "DPoP" {
		t.Errorf("refresh token_type = %v, want DPoP", rf["token_type"])
	}
	next := rf["refresh_token"].(string)
	wantDPoPRefusal(t, refresh(next, "", map[string]string{"DPoP": p}), "refresh with a replayed proof")
	// Relayed by an app backend: the proof is for the app's own URL.
	const appRefresh = "https://app.example/refresh"
	r = refresh(next, `,"dpop":`+relay(key.proof(h, "POST", appRefresh, ""), "POST", appRefresh), nil)
	wantStatus(t, r, http.StatusOK)
	access := r.json(t)["access_token"].(string)

	// Verify: a bound access token needs its proof with ath.
	const api = "https://api.example/orders"
	verify := func(extra string) *response {
		return h.api("POST", "/v1/sessions/verify", `{"access_token":"`+access+`"`+extra+`}`)
	}
	wantDPoPRefusal(t, verify(""), "a bound access token without a proof")
	wantDPoPRefusal(t, verify(`,"dpop":`+relay(key.proof(h, "GET", api, ""), "GET", api)), "a proof without ath")
	wantDPoPRefusal(t, verify(`,"dpop":`+relay(key.proof(h, "GET", api, c.accessToken), "GET", api)), "a proof whose ath is another token's")
	wantDPoPRefusal(t, verify(`,"dpop":`+relay(other.proof(h, "GET", api, access), "GET", api)), "a proof by another key")
	wantStatus(t, verify(`,"dpop":`+relay(key.proof(h, "GET", api, access), "GET", api)), http.StatusOK)

	// dpop_jkt: the backend verified the proof itself.
	j := h.create("dave", `,"dpop_jkt":"`+other.jkt+`"`)
	if j.body["token_type"] != "DPoP" {
		t.Fatalf("dpop_jkt: token_type %v", j.body["token_type"])
	}
	wantDPoPRefusal(t, refresh(j.refreshToken, "", map[string]string{"DPoP": key.proof(h, "POST", self, "")}), "a dpop_jkt session refreshed with another key")
	wantStatus(t, refresh(j.refreshToken, "", map[string]string{"DPoP": other.proof(h, "POST", self, "")}), http.StatusOK)
	wantProblem(t, h.api("POST", "/v1/sessions", `{"subject":"erin","dpop_jkt":"not-a-thumbprint"}`), http.StatusBadRequest, CodeBadRequest)
}

// TestDPoPPublicCalls: whoami and logout, which a client calls with its own
// access token, refuse a DPoP-bound token sent as Bearer, without a proof,
// or with a proof by another key or for another URL, and then neither
// read nor end the session; with "Authorization: DPoP" and a proof by the
// bound key for the call's method and latch's public URL they work, and an
// unbound token as Bearer works as before.
func TestDPoPPublicCalls(t *testing.T) {
	h := newHarness(t)
	key, other := newProofKey(t), newProofKey(t)
	c := h.create("alice", `,"dpop_jkt":"`+key.jkt+`"`)
	const whoamiURL, logoutURL = "https://latch.test/v1/whoami", "https://latch.test/v1/logout"
	call := func(method, path, auth, proof string) *response {
		hdr := map[string]string{"Authorization": auth}
		if proof != "" {
			hdr["DPoP"] = proof
		}
		body := ""
		if method == "POST" {
			body = "{}"
		}
		return h.do(req{method: method, path: path, body: body, header: hdr})
	}
	tok := c.accessToken
	paths := map[string]string{"GET": "/v1/whoami", "POST": "/v1/logout"}
	urls := map[string]string{"GET": whoamiURL, "POST": logoutURL}
	for _, tc := range []struct {
		what, scheme string
		proof        func(method string) string // "" for none
	}{
		{"as Bearer", "Bearer ", func(string) string { return "" }},
		{"as Bearer with a valid proof", "Bearer ", func(m string) string { return key.proof(h, m, urls[m], tok) }},
		{"as DPoP without a proof", "DPoP ", func(string) string { return "" }},
		{"with another key's proof", "DPoP ", func(m string) string { return other.proof(h, m, urls[m], tok) }},
		{"with a proof for the other call's URL", "DPoP ", func(m string) string {
			return key.proof(h, m, urls[map[string]string{"GET": "POST", "POST": "GET"}[m]], tok)
		}},
		{"with a proof without ath", "DPoP ", func(m string) string { return key.proof(h, m, urls[m], "") }},
	} {
		for _, m := range []string{"GET", "POST"} {
			wantDPoPRefusal(t, call(m, paths[m], tc.scheme+tok, tc.proof(m)), paths[m]+" "+tc.what)
		}
	}
	r := call("GET", "/v1/whoami", "DPoP "+tok, key.proof(h, "GET", whoamiURL, tok))
	wantStatus(t, r, http.StatusOK)
	if s, _ := r.json(t)["session"].(map[string]any); s["id"] != c.id {
		t.Fatalf("whoami with a proof: session %v, want %s", s["id"], c.id)
	}
	// An unbound token: Bearer as before, and not as DPoP.
	plain := h.create("bob", "")
	wantStatus(t, call("GET", "/v1/whoami", "Bearer "+plain.accessToken, ""), http.StatusOK)
	wantDPoPRefusal(t, call("GET", "/v1/whoami", "DPoP "+plain.accessToken, key.proof(h, "GET", whoamiURL, plain.accessToken)), "an unbound token as DPoP")

	wantStatus(t, call("POST", "/v1/logout", "DPoP "+tok, key.proof(h, "POST", logoutURL, tok)), http.StatusNoContent)
	wantProblem(t, call("GET", "/v1/whoami", "DPoP "+tok, key.proof(h, "GET", whoamiURL, tok)), http.StatusUnauthorized, CodeRevoked)
}
