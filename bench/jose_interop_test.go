package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
)

// Interoperability with Node's jose (panva/jose): latch's EdDSA and ES256
// tokens verify in node/verify-jose.mjs using only the JWKS document, with
// typ, algorithm, issuer and audience enforced on the Node side, and a
// tampered token or one for another audience is refused there.

// requireNodeModule returns the node binary, or skips (fails under
// LATCH_REQUIRE_INTEGRATION=1) when node or the npm package mod is missing
// from bench/node/node_modules.
func requireNodeModule(t *testing.T, mod string) string {
	t.Helper()
	missing := func(what string) {
		msg := what + "; run: cd bench/node && npm ci"
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat("node/node_modules/" + mod + "/package.json"); err != nil {
		missing(mod + " is not installed in bench/node/node_modules")
	}
	return node
}

// issueInterop issues interopClaims for sub and sid.
func issueInterop(t *testing.T, iss *accesstoken.Issuer, sub, sid string) string {
	t.Helper()
	c := interopClaims()
	c.Subject, c.SessionID = sub, sid
	tok, err := iss.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type joseResult struct {
	OK   bool   `json:"ok"`
	Sub  string `json:"sub"`
	Sid  string `json:"sid"`
	Code string `json:"code"`
}

// runVerifyJose feeds the JWKS and tokens to node/verify-jose.mjs. The
// script prints only results, never tokens, so its output is safe to log.
func runVerifyJose(t *testing.T, node string, jwks []byte, tokens []string) []joseResult {
	t.Helper()
	in, err := json.Marshal(map[string]any{
		"jwks": json.RawMessage(jwks), "tokens": tokens,
		"issuer": interopIss, "audience": interopAud,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "node/verify-jose.mjs")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("verify-jose.mjs: %v\nstderr: %s", err, stderr.Bytes())
	}
	var out struct {
		Results []joseResult `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("verify-jose.mjs output: %v\n%s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	if len(out.Results) != len(tokens) {
		t.Fatalf("verify-jose.mjs: %d results for %d tokens", len(out.Results), len(tokens))
	}
	return out.Results
}

// mergeJWKS concatenates the keys of JWK Set documents into one set.
func mergeJWKS(t *testing.T, docs ...[]byte) []byte {
	t.Helper()
	var all []json.RawMessage
	for _, d := range docs {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(d, &set); err != nil {
			t.Fatal(err)
		}
		all = append(all, set.Keys...)
	}
	b, err := json.Marshal(map[string]any{"keys": all})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tamperSubject rewrites the token's sub claim and keeps the signature.
func tamperSubject(t *testing.T, tok, from, to string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(payload, []byte(`"sub":"`+from+`"`), []byte(`"sub":"`+to+`"`), 1)
	if bytes.Equal(changed, payload) {
		t.Fatal("tamper: sub claim not found")
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(changed)
	return strings.Join(parts, ".")
}

func TestInteropNodeJose(t *testing.T) {
	node := requireNodeModule(t, "jose")

	ed := newInteropRing(t, accesstoken.EdDSA)
	es := newInteropRing(t, accesstoken.ES256)
	issue := func(iss *accesstoken.Issuer, sub, sid string) string { return issueInterop(t, iss, sub, sid) }
	edTok := issue(ed.iss, "alice", "ses_ed")
	esTok := issue(es.iss, "bob", "ses_es")

	// Same keys, audience "other": jose must refuse it for audience "api".
	otherAud, err := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: es.kr, Issuer: interopIss, Audience: "other"})
	if err != nil {
		t.Fatal(err)
	}
	wrongAud := issue(otherAud, "carol", "ses_aud")
	tampered := tamperSubject(t, edTok, "alice", "mallory")

	jwks := mergeJWKS(t, ed.kr.JWKS(), es.kr.JWKS())
	cases := []struct {
		name     string
		tok      string
		sub, sid string // want ok with these claims
		code     string // want refused with this jose error code
	}{
		{name: "EdDSA", tok: edTok, sub: "alice", sid: "ses_ed"},
		{name: "ES256", tok: esTok, sub: "bob", sid: "ses_es"},
		{name: "tampered EdDSA", tok: tampered, code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"},
		{name: "ES256 wrong audience", tok: wrongAud, code: "ERR_JWT_CLAIM_VALIDATION_FAILED"},
	}
	toks := make([]string, len(cases))
	for i, c := range cases {
		toks[i] = c.tok
	}
	res := runVerifyJose(t, node, jwks, toks)
	for i, c := range cases {
		got := res[i]
		switch {
		case c.code == "" && (!got.OK || got.Sub != c.sub || got.Sid != c.sid):
			t.Errorf("%s: jose gave %+v, want ok sub=%q sid=%q", c.name, got, c.sub, c.sid)
		case c.code != "" && (got.OK || got.Code != c.code):
			t.Errorf("%s: jose gave %+v, want refused with %s", c.name, got, c.code)
		}
	}
}
