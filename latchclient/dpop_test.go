package latchclient_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/server"
	"github.com/latch-sessions/latch/latchclient"
	"github.com/latch-sessions/latch/store/memstore"
)

func withNonces(o *server.Options) { o.DPoPNonce = true }

// counting counts the requests a client sends.
type counting struct{ n atomic.Int64 }

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestDPoPProver: a Go program holding its key binds a session to it
// (dpop_jkt) and refreshes with proofs it signs; with server nonces on,
// the first refresh is retried once with latch's nonce and later ones use
// the nonce latch sent last. Without a proof, or with a proof for another
// URL, the refresh is refused and the refresh token still works.
func TestDPoPProver(t *testing.T) {
	url := serve(t, memstore.New(), withNonces)
	rt := &counting{}
	c, err := latchclient.New(latchclient.Config{BaseURL: url, APIKey: apiKey, PublicURL: "https://latch.test",
		HTTPClient: &http.Client{Transport: rt, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p, err := dpop.NewProver(key)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := c.Create(ctx, latchclient.NewSession{Subject: "alice", DPoPJKT: p.JKT()})
	if err != nil {
		t.Fatal(err)
	}
	if cr.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", cr.TokenType)
	}
	if _, err := c.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: cr.RefreshToken}); !errors.Is(err, latchclient.ErrInvalidDPoPProof) {
		t.Fatalf("refresh without a proof: %v, want ErrInvalidDPoPProof", err)
	}
	wrongURL := newClient(t, url, false) // htu would be the BaseURL, not latch's public URL
	if _, err := wrongURL.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: cr.RefreshToken, Prover: p}); !errors.Is(err, latchclient.ErrInvalidDPoPProof) {
		t.Fatalf("refresh with a proof for another htu: %v, want ErrInvalidDPoPProof", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	op, _ := dpop.NewProver(other)
	if _, err := c.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: cr.RefreshToken, Prover: op}); !errors.Is(err, latchclient.ErrInvalidDPoPProof) || errors.Is(err, latchclient.ErrUseDPoPNonce) {
		t.Fatalf("refresh with another key's proof: %v, want ErrInvalidDPoPProof", err)
	}

	before := rt.n.Load()
	c2, _ := latchclient.New(latchclient.Config{BaseURL: url, APIKey: apiKey, PublicURL: "https://latch.test/",
		HTTPClient: &http.Client{Transport: rt, Timeout: 10 * time.Second}})
	rf, err := c2.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: cr.RefreshToken, Prover: p})
	if err != nil {
		t.Fatalf("refresh with the prover: %v", err)
	}
	if n := rt.n.Load() - before; n != 2 {
		t.Errorf("the first refresh took %d requests, want 2 (one use_dpop_nonce, one retry)", n)
	}
	if rf.TokenType != "DPoP" || rf.DPoPNonce == "" || rf.AccessToken == "" {
		t.Errorf("refreshed: token_type %q, nonce %q", rf.TokenType, rf.DPoPNonce)
	}
	before = rt.n.Load()
	rf2, err := c2.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: rf.RefreshToken, Prover: p})
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("the second refresh took %d requests, want 1 (latch's last nonce)", n)
	}
	if _, err := c2.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: rf2.RefreshToken, Prover: p,
		DPoP: &latchclient.DPoPProof{Proof: "x", Method: "POST", URL: "https://app.example/"}}); err == nil {
		t.Error("a refresh with both a prover and a relayed proof was sent")
	}
}

// TestDPoPRelayed: an app backend relays its client's proofs (made by a
// Prover standing in for the browser) at sign-in, refresh and access-token
// verification; with nonces on, each refusal carries latch's nonce and
// challenge for the backend to pass on, and each answer the current nonce.
func TestDPoPRelayed(t *testing.T) {
	url := serve(t, memstore.New(), withNonces)
	backend := newClient(t, url, false)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	browser, _ := dpop.NewProver(ec)
	relay := func(method, u, tok, nonce string) *latchclient.DPoPProof {
		proof, err := browser.Proof(method, u, dpop.ProofOptions{AccessToken: tok, Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		return &latchclient.DPoPProof{Proof: proof, Method: method, URL: u}
	}
	const login = "https://app.example/login"
	_, err := backend.Create(ctx, latchclient.NewSession{Subject: "bob", DPoP: relay("POST", login, "", "")})
	var e *latchclient.Error
	if !errors.Is(err, latchclient.ErrUseDPoPNonce) || !errors.As(err, &e) || e.DPoPNonce == "" ||
		!strings.Contains(e.Challenge, `error="use_dpop_nonce"`) || !strings.Contains(e.Challenge, "Ed25519") {
		t.Fatalf("create without a nonce: %v (%+v), want use_dpop_nonce with a nonce and the challenge", err, e)
	}
	cr, err := backend.Create(ctx, latchclient.NewSession{Subject: "bob", DPoP: relay("POST", login, "", e.DPoPNonce)})
	if err != nil {
		t.Fatalf("create with the nonce: %v", err)
	}
	if cr.TokenType != "DPoP" || cr.DPoPNonce == "" {
		t.Fatalf("created: token_type %q, nonce %q", cr.TokenType, cr.DPoPNonce)
	}
	const refreshURL = "https://app.example/refresh"
	rf, err := backend.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: cr.RefreshToken, DPoP: relay("POST", refreshURL, "", cr.DPoPNonce)})
	if err != nil || rf.DPoPNonce == "" {
		t.Fatalf("relayed refresh: %v (nonce %q)", err, rf.DPoPNonce)
	}

	const api = "https://app.example/api/orders"
	if _, err := backend.VerifyAccessToken(ctx, rf.AccessToken, latchclient.AccessCheck{}); !errors.Is(err, latchclient.ErrInvalidDPoPProof) {
		t.Fatalf("a bound access token without its proof: %v, want ErrInvalidDPoPProof", err)
	}
	if _, err := backend.VerifyAccessToken(ctx, rf.AccessToken, latchclient.AccessCheck{DPoP: relay("GET", api, cr.AccessToken, rf.DPoPNonce)}); !errors.Is(err, latchclient.ErrInvalidDPoPProof) {
		t.Fatalf("a proof whose ath is another token's: %v, want ErrInvalidDPoPProof", err)
	}
	v, err := backend.VerifyAccessToken(ctx, rf.AccessToken, latchclient.AccessCheck{DPoP: relay("GET", api, rf.AccessToken, rf.DPoPNonce)})
	if err != nil {
		t.Fatalf("verify with the proof: %v", err)
	}
	if v.Session.Subject != "bob" || v.DPoPNonce == "" {
		t.Errorf("verified %+v, nonce %q", v.Session, v.DPoPNonce)
	}
}

// TestStepUpErrors: step-up refusals say what the action demands, online
// (read from latch's challenge) and from the cache.
func TestStepUpErrors(t *testing.T) {
	url := serve(t, memstore.New())
	signedIn := time.Now().Add(-10 * time.Minute)
	for _, cached := range []bool{false, true} {
		c := newClient(t, url, cached)
		cr, err := c.Create(ctx, latchclient.NewSession{Subject: "carol", AuthTime: &signedIn, ACR: "urn:latch:pwd"})
		if err != nil {
			t.Fatal(err)
		}
		if cached {
			waitCached(t, c, cr.SessionToken)
		}
		_, err = c.VerifyFor(ctx, cr.SessionToken, 5*time.Minute, "urn:latch:mfa", "urn:latch:hwk")
		var ie *latchclient.InsufficientAuthError
		if !errors.As(err, &ie) || !errors.Is(err, latchclient.ErrInsufficientAuth) {
			t.Fatalf("cached=%v: %v, want an *InsufficientAuthError", cached, err)
		}
		if ie.MaxAge != 5*time.Minute || !slices.Equal(ie.ACRValues, []string{"urn:latch:mfa", "urn:latch:hwk"}) {
			t.Errorf("cached=%v: demanded max_age %v, acr_values %q", cached, ie.MaxAge, ie.ACRValues)
		}
	}
	c := newClient(t, url, false)
	cr, _ := c.Create(ctx, latchclient.NewSession{Subject: "dave", AuthTime: &signedIn})
	_, err := c.VerifyAccessToken(ctx, cr.AccessToken, latchclient.AccessCheck{MaxAge: 90 * time.Second})
	var ie *latchclient.InsufficientAuthError
	var e *latchclient.Error
	if !errors.As(err, &ie) || ie.MaxAge != 90*time.Second || ie.ACRValues != nil || !errors.As(err, &e) || !strings.Contains(e.Challenge, `max_age="90"`) {
		t.Fatalf("access token, max_age 90 s: %v (%+v)", err, ie)
	}
	if v, err := c.VerifyAccessToken(ctx, cr.AccessToken, latchclient.AccessCheck{MaxAge: time.Hour}); err != nil || v.Session.Subject != "dave" {
		t.Fatalf("access token, max_age 1 h: %v", err)
	}
}

// TestNonceRetriedOnce: a server that keeps asking for a new nonce gets
// one retry, not a loop.
func TestNonceRetriedOnce(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("DPoP-Nonce", "nonce-"+string(rune('a'+n.Load())))
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"status":401,"code":"use_dpop_nonce","detail":"the DPoP proof must carry the server's current nonce"}`))
	}))
	defer ts.Close()
	c := newClient(t, ts.URL, false)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p, _ := dpop.NewProver(key)
	_, err := c.Refresh(ctx, latchclient.RefreshRequest{RefreshToken: "ltr_x", Prover: p})
	if !errors.Is(err, latchclient.ErrUseDPoPNonce) || n.Load() != 2 {
		t.Fatalf("Refresh = %v after %d requests, want use_dpop_nonce after 2", err, n.Load())
	}
}

// TestRelayHelpers: a backend takes its client's proof from the request and
// passes latch's nonce and challenge back, end to end through latch serve
// with nonces on.
func TestRelayHelpers(t *testing.T) {
	url := serve(t, memstore.New(), withNonces)
	latch := newClient(t, url, false)
	// The backend's sign-in handler: relay the proof, pass back what latch says.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := latchclient.RelayedProof(r, "https://app.example/login")
		if err != nil || p == nil {
			http.Error(w, "one DPoP proof please", http.StatusBadRequest)
			return
		}
		cr, err := latch.Create(r.Context(), latchclient.NewSession{Subject: "erin", DPoP: p})
		var nonce string
		if cr != nil {
			nonce = cr.DPoPNonce
		}
		latchclient.PassDPoP(w, nonce, err)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(cr.TokenType))
	}))
	defer backend.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	client, _ := dpop.NewProver(key)
	signIn := func(nonce string, proofs int) *http.Response {
		req, _ := http.NewRequest("POST", backend.URL, nil)
		for range proofs {
			p, _ := client.Proof("POST", "https://app.example/login", dpop.ProofOptions{Nonce: nonce})
			req.Header.Add("DPoP", p)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := signIn("", 1)
	nonce := res.Header.Get("DPoP-Nonce")
	if res.StatusCode != http.StatusUnauthorized || nonce == "" || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("first sign-in: %d, DPoP-Nonce %q, WWW-Authenticate %q", res.StatusCode, nonce, res.Header.Get("WWW-Authenticate"))
	}
	if res := signIn(nonce, 1); res.StatusCode != http.StatusOK || res.Header.Get("DPoP-Nonce") == "" || res.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("sign-in with the nonce: %d, DPoP-Nonce %q, WWW-Authenticate %q", res.StatusCode, res.Header.Get("DPoP-Nonce"), res.Header.Get("WWW-Authenticate"))
	}
	if res := signIn(nonce, 2); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("two proofs: %d, want the backend's 400", res.StatusCode)
	}
	r := httptest.NewRequest("GET", "http://api.example/orders?x=1", nil)
	r.Header.Set("DPoP", "p")
	if p, err := latchclient.RelayedProof(r, ""); err != nil || p.URL != "http://api.example/orders" || p.Method != "GET" {
		t.Errorf("RelayedProof from the request: %+v, %v", p, err)
	}
}

// TestAccessTokenScheme: a backend reading its requests with AccessToken
// and verifying with VerifyAccessToken refuses a DPoP-bound token sent as
// Bearer (even with a good proof by its key in a DPoP header) and an
// unbound token sent as DPoP, each with the RFC 9449 challenge and without
// calling latch; a bound token as DPoP with its proof and an unbound one
// as Bearer verify.
func TestAccessTokenScheme(t *testing.T) {
	url := serve(t, memstore.New())
	c := newClient(t, url, false)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	client, _ := dpop.NewProver(key)
	bound, err := c.Create(ctx, latchclient.NewSession{Subject: "ann", DPoPJKT: client.JKT()})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.Create(ctx, latchclient.NewSession{Subject: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	const api = "https://app.example/orders"
	check := func(auth, tok string, proof bool) (*latchclient.DPoPProof, error) {
		t.Helper()
		r := httptest.NewRequest("GET", api, nil)
		r.Header.Set("Authorization", auth+" "+tok)
		if proof {
			p, _ := client.Proof("GET", api, dpop.ProofOptions{AccessToken: tok})
			r.Header.Set("DPoP", p)
		}
		got, p, err := latchclient.AccessToken(r, api)
		if err == nil {
			if got != tok {
				t.Fatalf("AccessToken = %q, want the header's token", got)
			}
			_, err = c.VerifyAccessToken(ctx, got, latchclient.AccessCheck{DPoP: p})
		}
		return p, err
	}
	for _, tc := range []struct {
		name, scheme, tok string
		proof             bool
		reason            string
	}{
		{"a bound token as Bearer", "Bearer", bound.AccessToken, false, "must be sent with the DPoP scheme"},
		{"a bound token as Bearer with a good proof", "Bearer", bound.AccessToken, true, "must be sent with the DPoP scheme"},
		{"a bound token as DPoP without a proof", "DPoP", bound.AccessToken, false, "proof is required"},
		{"an unbound token as DPoP", "DPoP", plain.AccessToken, true, "proof is required"},
	} {
		_, err := check(tc.scheme, tc.tok, tc.proof)
		var e *latchclient.Error
		if !errors.Is(err, latchclient.ErrInvalidDPoPProof) || !errors.As(err, &e) || e.Status != http.StatusUnauthorized ||
			!strings.HasPrefix(e.Challenge, `DPoP algs="`) || !strings.Contains(e.Challenge, tc.reason) {
			t.Errorf("%s: %v (%+v), want ErrInvalidDPoPProof with the challenge naming %q", tc.name, err, e, tc.reason)
		}
	}
	if p, err := check("DPoP", bound.AccessToken, true); err != nil || p == nil {
		t.Errorf("a bound token as DPoP with its proof: %v (proof %v)", err, p)
	}
	if p, err := check("Bearer", plain.AccessToken, true); err != nil || p != nil {
		t.Errorf("an unbound token as Bearer: %v (proof relayed: %v)", err, p)
	}
	if _, err := check("DPoP", "not-a-jwt", true); !errors.Is(err, latchclient.ErrInvalidToken) {
		t.Errorf("garbage as DPoP: %v, want latch's invalid_token", err)
	}
}
