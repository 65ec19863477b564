package latchhttp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/dpoptest"
	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// TestDPoPAuthorization: "Authorization: DPoP" with a proof by the bound
// key for this request is accepted; the same token as Bearer, without a
// proof, with a proof for another URL or key, or with a replayed proof is
// refused with the RFC 9449 challenge.
func TestDPoPAuthorization(t *testing.T) {
	var clk *testutil.Clock
	e := newEnv(t, func(c *latchhttp.Config) {
		c.DPoP = &dpop.Verifier{Replay: memstore.New(), Now: func() time.Time { return clk.Now() }}
	})
	clk = e.clock
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	x := base64.RawURLEncoding.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	jkt := base64.RawURLEncoding.EncodeToString(sum[:])
	is, err := e.m.Create(t.Context(), latch.NewSession{Subject: "alice", Data: json.RawMessage(`{"user":"alice"}`), JKT: jkt})
	if err != nil {
		t.Fatal(err)
	}
	tok := is.AccessToken.Reveal()
	e.remember(tok)
	athSum := sha256.Sum256([]byte(tok))
	proof := func(k ed25519.PrivateKey, htu string) string {
		kx := base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
		c, _ := json.Marshal(map[string]any{"jti": rand.Text(), "htm": "GET", "htu": htu, "iat": e.clock.Now().Unix(),
			"ath": base64.RawURLEncoding.EncodeToString(athSum[:])})
		in := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"`+kx+`"}}`)) +
			"." + base64.RawURLEncoding.EncodeToString(c)
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k, []byte(in)))
	}
	c := e.newClient()
	send := func(scheme, p string) (*http.Response, string) {
		t.Helper()
		req := c.req("GET", "/me", nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		if p != "" {
			req.Header.Set("DPoP", p)
		}
		return c.do(req)
	}
	me := e.srv.URL + "/me"
	good := proof(priv, me)
	if res, body := send("DPoP", good); res.StatusCode != http.StatusOK {
		t.Fatalf("DPoP with a good proof: %d %q", res.StatusCode, body)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct{ name, scheme, proof, reason string }{
		{"bound token as Bearer", "Bearer", "", "DPoP-bound"},
		{"no proof", "DPoP", "", "proof is required"},
		{"replayed proof", "DPoP", good, "already used"},
		{"proof for another URL", "DPoP", proof(priv, e.srv.URL+"/public"), "htu"},
		{"proof by another key", "DPoP", proof(other, me), "not signed by the key"},
	} {
		res, _ := send(tc.scheme, tc.proof)
		ch := res.Header.Get("WWW-Authenticate")
		if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, `DPoP algs=`) || !strings.Contains(ch, `error="invalid_dpop_proof"`) || !strings.Contains(ch, tc.reason) {
			t.Errorf("%s: %d, WWW-Authenticate %q; want 401 with the DPoP challenge naming %q", tc.name, res.StatusCode, ch, tc.reason)
		}
	}
}

// TestDPoPNonce: with a nonce key, a proof without the nonce is refused
// with use_dpop_nonce and the nonce to use in DPoP-Nonce; the retry with
// it is accepted.
func TestDPoPNonce(t *testing.T) {
	var clk *testutil.Clock
	e := newEnv(t, func(c *latchhttp.Config) {
		c.DPoP = &dpop.Verifier{Replay: memstore.New(), Now: func() time.Time { return clk.Now() },
			NonceKey: []byte("latchhttp test nonce key 0123456")}
	})
	clk = e.clock
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	p, err := dpop.NewProver(priv)
	if err != nil {
		t.Fatal(err)
	}
	p.Now = e.clock.Now
	is, err := e.m.Create(t.Context(), latch.NewSession{Subject: "alice", Data: json.RawMessage(`{"user":"alice"}`), JKT: p.JKT()})
	if err != nil {
		t.Fatal(err)
	}
	tok := is.AccessToken.Reveal()
	e.remember(tok)
	c := e.newClient()
	send := func(nonce string) *http.Response {
		t.Helper()
		proof, err := p.Proof("GET", e.srv.URL+"/me", dpop.ProofOptions{AccessToken: tok, Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		req := c.req("GET", "/me", nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		res, _ := c.do(req)
		return res
	}
	res := send("")
	nonce := res.Header.Get("DPoP-Nonce")
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("no nonce: %d, WWW-Authenticate %q, DPoP-Nonce %q; want 401 use_dpop_nonce with a nonce", res.StatusCode, res.Header.Get("WWW-Authenticate"), nonce)
	}
	if res := send(nonce); res.StatusCode != http.StatusOK || res.Header.Get("DPoP-Nonce") != nonce {
		t.Fatalf("with the nonce: %d, DPoP-Nonce %q (want the current %q for the next proof)", res.StatusCode, res.Header.Get("DPoP-Nonce"), nonce)
	}
}

// TestDPoPAttackTable: every row of the attack table, plus a missing or
// foreign ath, a token bound to another key and a bound token as Bearer,
// is refused on "Authorization: DPoP" with the RFC 9449 challenge, and
// changes nothing: the session records no activity and no client (a
// copied token cannot keep it alive), and a good proof made afterwards is
// accepted.
func TestDPoPAttackTable(t *testing.T) {
	var clk *testutil.Clock
	e := newEnv(t, func(c *latchhttp.Config) {
		c.DPoP = &dpop.Verifier{Replay: memstore.New(), Now: func() time.Time { return clk.Now() }}
	})
	clk = e.clock
	good, other := dpoptest.NewKey(), dpoptest.NewKey()
	bind := func(k *dpoptest.Key) (*latch.Issued, string) {
		is, err := e.m.Create(t.Context(), latch.NewSession{Subject: "alice", Data: json.RawMessage(`{"user":"alice"}`), JKT: k.JKT})
		if err != nil {
			t.Fatal(err)
		}
		tok := is.AccessToken.Reveal()
		e.remember(tok)
		return is, tok
	}
	is, tok := bind(good)
	_, foreign := bind(other)
	c := e.newClient()
	me := e.srv.URL + "/me"
	send := func(scheme, tok, proof string) (*http.Response, string) {
		t.Helper()
		req := c.req("GET", "/me", nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		req.Header.Set("User-Agent", "thief")
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		return c.do(req)
	}
	refused := func(res *http.Response, body, what string) {
		t.Helper()
		ch := res.Header.Get("WWW-Authenticate")
		if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, `DPoP algs="`) || !strings.Contains(ch, `error="invalid_dpop_proof"`) {
			t.Errorf("%s: %d %q, WWW-Authenticate %q; want 401 with the DPoP challenge", what, res.StatusCode, body, ch)
		}
	}
	e.clock.Advance(5 * time.Minute) // past the touch interval: an accepted request would record activity
	r := dpoptest.Request{Method: "GET", URL: me, AccessToken: tok, Now: e.clock.Now()}
	for _, at := range dpoptest.Attacks() {
		res, body := send("DPoP", tok, at.Make(good, other, r))
		refused(res, body, at.Name)
	}
	res, body := send("DPoP", tok, good.Proof("GET", me, "", e.clock.Now()).String())
	refused(res, body, "missing ath")
	res, body = send("DPoP", tok, good.Proof("GET", me, foreign, e.clock.Now()).String())
	refused(res, body, "ath of another token")
	res, body = send("DPoP", foreign, good.Proof("GET", me, foreign, e.clock.Now()).String())
	refused(res, body, "a token bound to another key")
	res, body = send("Bearer", tok, good.Proof("GET", me, tok, e.clock.Now()).String())
	refused(res, body, "a bound token as Bearer, with a good proof")

	s, err := e.m.Peek(t.Context(), is.SessionToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastSeenAt().Equal(is.Session.LastSeenAt()) || s.Version() != is.Session.Version() || s.UserAgent() == "thief" {
		t.Fatalf("refused proofs changed the session: last seen %v (was %v), version %d (was %d), user agent %q",
			s.LastSeenAt(), is.Session.LastSeenAt(), s.Version(), is.Session.Version(), s.UserAgent())
	}
	if res, body := send("DPoP", tok, good.Proof("GET", me, tok, e.clock.Now()).String()); res.StatusCode != http.StatusOK {
		t.Fatalf("a good proof after the refusals: %d %q", res.StatusCode, body)
	}
	if s, _ := e.m.Peek(t.Context(), is.SessionToken.Reveal()); s.UserAgent() != "thief" {
		t.Errorf("the accepted request recorded no activity (user agent %q)", s.UserAgent())
	}
}
