package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

// proofNonce is proof with a nonce claim ("" for none).
func (k *proofKey) proofNonce(h *harness, htm, htu, accessToken, nonce string) string {
	c := map[string]any{"jti": rand.Text(), "htm": htm, "htu": htu, "iat": h.clock.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	cb, _ := json.Marshal(c)
	in := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":`+k.jwk+`}`)) + "." + base64.RawURLEncoding.EncodeToString(cb)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.priv, []byte(in)))
}

// nonceShape is the documented form of a nonce (docs/protocol.md, section 5).
var nonceShape = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func wantNonceRefusal(t *testing.T, r *response, what string) string {
	t.Helper()
	wantProblem(t, r, http.StatusUnauthorized, CodeUseDPoPNonce)
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `DPoP algs="EdDSA Ed25519 ES256 RS256", error="use_dpop_nonce", error_description="`) {
		t.Errorf("%s: WWW-Authenticate = %q, want the RFC 9449 use_dpop_nonce challenge", what, got)
	}
	n := r.header.Get("DPoP-Nonce")
	if !nonceShape.MatchString(n) {
		t.Fatalf("%s: DPoP-Nonce = %q, want a fresh nonce", what, n)
	}
	return n
}

func withNonces(o *Options) { o.DPoPNonce = true }

// TestDPoPNonces: with nonces on, a proof without the server's current
// nonce — missing, forged, stale, or another deployment's — is refused
// with use_dpop_nonce, the challenge and a fresh DPoP-Nonce, and changes
// nothing; with it, it is accepted; every answer to a request with a
// proof carries the current nonce.
func TestDPoPNonces(t *testing.T) {
	h := newHarness(t, withNonces)
	key := newProofKey(t)
	const app = "https://app.example/login"
	const self = "https://latch.test/v1/refresh"

	// Create: the first proof has no nonce; the refusal creates nothing.
	r := h.api("POST", "/v1/sessions", `{"subject":"alice","dpop":`+relay(key.proof(h, "POST", app, ""), "POST", app)+`}`)
	nonce := wantNonceRefusal(t, r, "create, a proof without a nonce")
	if got := h.api("GET", "/v1/subjects/alice/sessions", "").json(t)["sessions"].([]any); len(got) != 0 {
		t.Fatalf("a refused create left sessions: %v", got)
	}
	r = h.api("POST", "/v1/sessions", `{"subject":"alice","dpop":`+relay(key.proofNonce(h, "POST", app, "", nonce), "POST", app)+`}`)
	wantStatus(t, r, http.StatusCreated)
	if r.header.Get("DPoP-Nonce") != nonce {
		t.Errorf("create with a proof: DPoP-Nonce = %q, want the current %q", r.header.Get("DPoP-Nonce"), nonce)
	}
	c := parseCreated(t, r.body)

	refresh := func(rt, body string, hdr map[string]string) *response {
		return h.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":"` + rt + `"` + body + `}`, header: hdr})
	}
	// Attacks on the nonce, each refused without rotating the refresh token.
	var forged [24]byte
	binary.BigEndian.PutUint64(forged[:8], uint64(h.clock.Now().Unix()/60))
	other := newHarness(t, withNonces, func(o *Options) { o.KEK = bytes.Repeat([]byte{8}, 32) })
	otherIssuer := newHarness(t, withNonces, func(o *Options) { o.Issuer = "https://other.test" })
	other.create("x", "") // their log checks need some output
	otherIssuer.create("x", "")
	for _, a := range []struct{ what, nonce string }{
		{"missing", ""},
		{"made up", "bm9uY2U"},
		{"forged (right epoch, wrong MAC)", base64.RawURLEncoding.EncodeToString(forged[:])},
		{"from a deployment with another KEK", other.srv.dpop.Nonce()},
		{"from a deployment with another issuer", otherIssuer.srv.dpop.Nonce()},
		{"the current one with its last character changed", flipLast(nonce)},
	} {
		r := refresh(c.refreshToken, "", map[string]string{"DPoP": key.proofNonce(h, "POST", self, "", a.nonce)})
		if n := wantNonceRefusal(t, r, "refresh, nonce "+a.what); n != nonce {
			t.Errorf("refresh, nonce %s: DPoP-Nonce %q, want the current %q", a.what, n, nonce)
		}
	}
	if other.srv.dpop.Nonce() == nonce || otherIssuer.srv.dpop.Nonce() == nonce {
		t.Fatal("another deployment issues the same nonces")
	}

	// A nonce stays good through the next window, not beyond.
	h.clock.Advance(60 * time.Second)
	r = refresh(c.refreshToken, "", map[string]string{"DPoP": key.proofNonce(h, "POST", self, "", nonce)})
	wantStatus(t, r, http.StatusOK) // the same refresh token: no refusal above rotated it
	next := r.json(t)["refresh_token"].(string)
	fresh := r.header.Get("DPoP-Nonce")
	if !nonceShape.MatchString(fresh) || fresh == nonce {
		t.Fatalf("a refresh a window later: DPoP-Nonce %q, want a new nonce (old %q)", fresh, nonce)
	}
	h.clock.Advance(2 * 60 * time.Second)
	r = refresh(next, "", map[string]string{"DPoP": key.proofNonce(h, "POST", self, "", nonce)})
	current := wantNonceRefusal(t, r, "refresh, a nonce three windows old")
	r = refresh(next, `,"dpop":`+relay(key.proofNonce(h, "POST", "https://app.example/refresh", "", current), "POST", "https://app.example/refresh"), nil)
	wantStatus(t, r, http.StatusOK)
	if r.header.Get("DPoP-Nonce") != current {
		t.Errorf("a relayed refresh: DPoP-Nonce %q, want %q", r.header.Get("DPoP-Nonce"), current)
	}
	access := r.json(t)["access_token"].(string)

	// Verify with a bound access token: the relayed proof needs the nonce too.
	const api = "https://api.example/orders"
	r = h.api("POST", "/v1/sessions/verify", `{"access_token":"`+access+`","dpop":`+relay(key.proof(h, "GET", api, access), "GET", api)+`}`)
	wantNonceRefusal(t, r, "verify, a proof without a nonce")
	r = h.api("POST", "/v1/sessions/verify", `{"access_token":"`+access+`","dpop":`+relay(key.proofNonce(h, "GET", api, access, current), "GET", api)+`}`)
	wantStatus(t, r, http.StatusOK)
	if r.header.Get("DPoP-Nonce") != current {
		t.Errorf("verify with a proof: DPoP-Nonce %q, want %q", r.header.Get("DPoP-Nonce"), current)
	}

	// whoami, the client calling latch with its bound token, likewise.
	whoami := func(nonce string) *response {
		return h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "DPoP " + access,
			"DPoP": key.proofNonce(h, "GET", "https://latch.test/v1/whoami", access, nonce)}})
	}
	wantNonceRefusal(t, whoami(""), "whoami, a proof without a nonce")
	r = whoami(current)
	wantStatus(t, r, http.StatusOK)
	if r.header.Get("DPoP-Nonce") != current {
		t.Errorf("whoami with a proof: DPoP-Nonce %q, want %q", r.header.Get("DPoP-Nonce"), current)
	}

	// Every answer to a request with a proof has the nonce, errors too;
	// answers to requests without one do not.
	r = refresh(next, `,"dpop":{"proof":"x"}`, map[string]string{"DPoP": "x"})
	wantProblem(t, r, http.StatusBadRequest, CodeBadRequest)
	if r.header.Get("DPoP-Nonce") != current {
		t.Errorf("a 400 to a request with a proof: DPoP-Nonce %q, want %q", r.header.Get("DPoP-Nonce"), current)
	}
	plain := h.create("bob", "")
	for what, r := range map[string]*response{
		"create without a proof":  h.api("POST", "/v1/sessions", `{"subject":"bob"}`),
		"verify without a proof":  h.api("POST", "/v1/sessions/verify", `{"access_token":"`+plain.accessToken+`"}`),
		"refresh without a proof": refresh(plain.refreshToken, "", nil),
	} {
		if n := r.header.Get("DPoP-Nonce"); n != "" {
			t.Errorf("%s: DPoP-Nonce %q, want none", what, n)
		}
	}
}

// TestDPoPNonceReplicas: two replicas on one store with the same KEK and
// issuer accept each other's nonces (nothing is written to issue one).
func TestDPoPNonceReplicas(t *testing.T) {
	a := newHarness(t, withNonces)
	b := newHarness(t, withNonces, func(o *Options) { o.Store = a.store; o.Now = a.clock.Now })
	key := newProofKey(t)
	const app = "https://app.example/login"
	r := a.api("POST", "/v1/sessions", `{"subject":"alice","dpop":`+relay(key.proof(a, "POST", app, ""), "POST", app)+`}`)
	nonce := wantNonceRefusal(t, r, "create on replica A without a nonce")
	r = b.api("POST", "/v1/sessions", `{"subject":"alice","dpop":`+relay(key.proofNonce(a, "POST", app, "", nonce), "POST", app)+`}`)
	wantStatus(t, r, http.StatusCreated)
	c := parseCreated(t, r.body)
	r = a.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":"` + c.refreshToken + `"}`,
		header: map[string]string{"DPoP": key.proofNonce(a, "POST", "https://latch.test/v1/refresh", "", r.header.Get("DPoP-Nonce"))}})
	wantStatus(t, r, http.StatusOK)
}

// TestDPoPNoncesOff: by default no nonce is sent or demanded, and a proof's
// nonce claim is ignored.
func TestDPoPNoncesOff(t *testing.T) {
	h := newHarness(t)
	key := newProofKey(t)
	const app = "https://app.example/login"
	r := h.api("POST", "/v1/sessions", `{"subject":"alice","dpop":`+relay(key.proofNonce(h, "POST", app, "", "anything"), "POST", app)+`}`)
	wantStatus(t, r, http.StatusCreated)
	if n := r.header.Get("DPoP-Nonce"); n != "" {
		t.Errorf("nonces off: DPoP-Nonce %q, want none", n)
	}
	r = h.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":"` + parseCreated(t, r.body).refreshToken + `"}`,
		header: map[string]string{"DPoP": key.proof(h, "POST", "https://latch.test/v1/refresh", "")}})
	wantStatus(t, r, http.StatusOK)
	if n := r.header.Get("DPoP-Nonce"); n != "" {
		t.Errorf("nonces off: refresh DPoP-Nonce %q, want none", n)
	}
}

// TestMetadataDPoPAlgs: the metadata lists the proof algorithms, both
// names of Ed25519 among them (RFC 9449 §5.1, RFC 9864).
func TestMetadataDPoPAlgs(t *testing.T) {
	h := newHarness(t)
	h.create("alice", "")
	r := h.do(req{method: "GET", path: "/.well-known/oauth-authorization-server"})
	wantStatus(t, r, http.StatusOK)
	got, _ := json.Marshal(r.json(t)["dpop_signing_alg_values_supported"])
	if string(got) != `["EdDSA","Ed25519","ES256","RS256"]` {
		t.Errorf("dpop_signing_alg_values_supported = %s", got)
	}
}

// A server started with nonces on but no replay cache says why.
func TestDPoPNonceNeedsReplayCache(t *testing.T) {
	_, err := New(context.Background(), Options{Store: noReplayStore{memstore.New()}, APIKey: testAPIKey, DPoPNonce: true, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "replay cache") {
		t.Fatalf("New = %v, want an error naming the replay cache", err)
	}
}

// noReplayStore hides the memory store's replay cache.
type noReplayStore struct{ store.Store }

func flipLast(s string) string {
	if s[len(s)-1] == 'A' {
		return s[:len(s)-1] + "B"
	}
	return s[:len(s)-1] + "A"
}
