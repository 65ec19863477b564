package server

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/latch-sessions/latch/accesstoken"
)

// --signing-alg RS256: access tokens carry alg RS256, the JWKS publishes
// the RSA key, and the server verifies its own tokens.
func TestSigningAlgorithmRS256(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SigningAlgorithm = accesstoken.RS256 })
	c := h.create("alice", "")
	hdr, _, _ := strings.Cut(c.accessToken, ".")
	b, _ := base64.RawURLEncoding.DecodeString(hdr)
	if !strings.Contains(string(b), `"alg":"RS256"`) {
		t.Fatalf("access token header %s, want alg RS256", b)
	}
	r := h.do(req{method: "GET", path: "/.well-known/jwks.json"})
	wantStatus(t, r, 200)
	keys, err := accesstoken.ParseJWKS(r.body)
	if err != nil || len(keys) != 1 || keys[0].Algorithm() != accesstoken.RS256 || !strings.Contains(string(r.body), `"kty":"RSA"`) {
		t.Fatalf("JWKS %s: %v %v", r.body, keys, err)
	}
	wantStatus(t, h.api("POST", "/v1/sessions/verify", `{"access_token":"`+c.accessToken+`"}`), 200)
	ks, _ := accesstoken.NewStaticKeys(keys...)
	v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: ks, Issuer: "https://latch.test", Audience: "latch", Now: h.clock.Now})
	if _, err := v.Verify(context.Background(), c.accessToken); err != nil {
		t.Errorf("offline verify with the published RSA key: %v", err)
	}
}
