package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/store/memstore"
)

// TestProver: proofs made by a Prover are accepted by the verifier for
// their request only, carry ath and the nonce when asked, a fresh jti each
// time, and the thumbprint the verifier computes from their jwk.
func TestProver(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, key := range []crypto.Signer{ed, ec, rk} {
		p, err := dpop.NewProver(key)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(p.Algorithm(), func(t *testing.T) {
			p.Now = func() time.Time { return now }
			v := verifier(memstore.New())
			v.NonceKey = []byte("0123456789abcdef0123456789abcdef")
			const tok = "the.access.token"
			use := dpop.Use{Method: "GET", URL: "https://api.example/orders", AccessToken: tok, JKT: p.JKT()}
			proof, err := p.Proof("GET", "https://api.example/orders?page=2#top", dpop.ProofOptions{AccessToken: tok, Nonce: v.Nonce()})
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(t.Context(), proof, use)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.JKT != p.JKT() {
				t.Errorf("JKT %s, the proof's key %s", p.JKT(), got.JKT)
			}
			if _, err := v.Verify(t.Context(), proof, use); !errors.Is(err, dpop.ErrInvalidProof) {
				t.Errorf("the same proof twice: %v", err)
			}
			other, _ := p.Proof("GET", "https://api.example/orders", dpop.ProofOptions{AccessToken: tok})
			if _, err := v.Verify(t.Context(), other, use); !errors.Is(err, dpop.ErrUseNonce) {
				t.Errorf("a proof without the nonce: %v, want use_dpop_nonce", err)
			}
			post, _ := p.Proof("POST", "https://api.example/orders", dpop.ProofOptions{AccessToken: tok, Nonce: v.Nonce()})
			if _, err := v.Verify(t.Context(), post, use); !errors.Is(err, dpop.ErrInvalidProof) {
				t.Errorf("a proof for POST used for GET: %v", err)
			}
			a, _ := p.Proof("GET", "https://api.example/orders", dpop.ProofOptions{})
			b, _ := p.Proof("GET", "https://api.example/orders", dpop.ProofOptions{})
			if claim(t, a, "jti") == claim(t, b, "jti") || claim(t, a, "ath") != nil || claim(t, a, "nonce") != nil {
				t.Errorf("two proofs: jti %v and %v, ath %v, nonce %v", claim(t, a, "jti"), claim(t, b, "jti"), claim(t, a, "ath"), claim(t, a, "nonce"))
			}
		})
	}
	if _, err := dpop.NewProver(mustRSA(t, 1024)); err == nil {
		t.Error("NewProver accepted a 1024-bit RSA key")
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := dpop.NewProver(p256); err == nil {
		t.Error("NewProver accepted a P-384 key")
	}
	p, _ := dpop.NewProver(ed)
	if _, err := p.Proof("GET", "/relative", dpop.ProofOptions{}); err == nil {
		t.Error("Proof accepted a relative URL")
	}
}

func mustRSA(t *testing.T, bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// claim reads a claim of a proof without verifying it.
func claim(t *testing.T, proof, name string) any {
	t.Helper()
	parts := strings.Split(proof, ".")
	b, err := enc.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m[name]
}
