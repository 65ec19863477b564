package bench

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/latch-sessions/latch/accesstoken"
)

// Interoperability with Node's jsonwebtoken + jwks-rsa, which cannot
// verify EdDSA (the reason latch offers RS256 and ES256): latch's RS256
// and ES256 tokens verify in node/verify-jsonwebtoken.mjs with keys
// fetched by kid from a JWKS URI, with issuer, audience and the algorithm
// list enforced on the Node side; tampered tokens, another audience, an
// EdDSA token and the RS256->HS256 confusion are refused there.

type jsonwebtokenResult struct {
	OK    bool   `json:"ok"`
	Sub   string `json:"sub"`
	Sid   string `json:"sid"`
	Alg   string `json:"alg"`
	Error string `json:"error"`
}

func TestInteropNodeJsonwebtoken(t *testing.T) {
	node := requireNodeModule(t, "jsonwebtoken")
	requireNodeModule(t, "jwks-rsa")
	ctx := context.Background()

	rs := newInteropRing(t, accesstoken.RS256)
	es := newInteropRing(t, accesstoken.ES256)
	ed := newInteropRing(t, accesstoken.EdDSA)
	jwks := mergeJWKS(t, rs.kr.JWKS(), es.kr.JWKS(), ed.kr.JWKS())
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(jwks)
	}))
	defer srv.Close()

	issue := func(iss *accesstoken.Issuer, sub, sid string) string { return issueInterop(t, iss, sub, sid) }
	rsTok := issue(rs.iss, "alice", "ses_rs")
	esTok := issue(es.iss, "bob", "ses_es")
	edTok := issue(ed.iss, "carol", "ses_ed")
	otherAud, _ := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: rs.kr, Issuer: interopIss, Audience: "other"})

	// RS256 -> HS256: an HMAC under the RSA key's PEM, the secret a
	// careless verifier would use.
	kid, pub := rsaPEM(t, rs.kr.JWKS())
	ht := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"iss": interopIss, "sub": "mallory", "aud": interopAud,
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(), "sid": "ses_x"})
	ht.Header["kid"], ht.Header["typ"] = kid, "at+jwt"
	confused, _ := ht.SignedString(pub)

	cases := []struct {
		name     string
		tok      string
		sub, sid string // want ok with these claims
		refused  string // want refused with an error containing this
	}{
		{name: "RS256", tok: rsTok, sub: "alice", sid: "ses_rs"},
		{name: "ES256", tok: esTok, sub: "bob", sid: "ses_es"},
		{name: "tampered RS256", tok: tamperSubject(t, rsTok, "alice", "mallory"), refused: "invalid signature"},
		{name: "tampered ES256", tok: tamperSubject(t, esTok, "bob", "mallory"), refused: "invalid signature"},
		{name: "RS256 wrong audience", tok: issue(otherAud, "dave", "ses_aud"), refused: "jwt audience invalid"},
		{name: "EdDSA (not supported by jsonwebtoken)", tok: edTok, refused: "invalid algorithm"},
		{name: "HS256 with the RSA public key as secret", tok: confused, refused: "invalid algorithm"},
	}
	toks := make([]string, len(cases))
	for i, c := range cases {
		toks[i] = c.tok
	}
	in, _ := json.Marshal(map[string]any{"jwksUri": srv.URL + "/.well-known/jwks.json", "tokens": toks,
		"issuer": interopIss, "audience": interopAud})
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, node, "node/verify-jsonwebtoken.mjs")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("verify-jsonwebtoken.mjs: %v\nstderr: %s", err, stderr.Bytes())
	}
	var out struct {
		Results []jsonwebtokenResult `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Results) != len(cases) {
		t.Fatalf("verify-jsonwebtoken.mjs output: %v\n%s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	for i, c := range cases {
		got := out.Results[i]
		switch {
		case c.refused == "" && (!got.OK || got.Sub != c.sub || got.Sid != c.sid):
			t.Errorf("%s: jsonwebtoken gave %+v, want ok sub=%q sid=%q", c.name, got, c.sub, c.sid)
		case c.refused != "" && (got.OK || !strings.Contains(got.Error, c.refused)):
			t.Errorf("%s: jsonwebtoken gave %+v, want refused with %q", c.name, got, c.refused)
		}
	}
	if fetches.Load() == 0 {
		t.Error("jwks-rsa never fetched the JWKS; the keys did not come from it")
	}
}

// rsaPEM returns the kid and PEM (PKIX) form of the RSA key in a JWKS,
// read with jwx.
func rsaPEM(t *testing.T, doc []byte) (string, []byte) {
	t.Helper()
	set, err := jwk.Parse(doc)
	if err != nil || set.Len() != 1 {
		t.Fatalf("jwx: %v", err)
	}
	k, _ := set.Key(0)
	kid, _ := k.KeyID()
	var pub rsa.PublicKey
	if err := jwk.Export(k, &pub); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&pub)
	if err != nil {
		t.Fatal(err)
	}
	return kid, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
