package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

var enc = base64.RawURLEncoding

// signer is a client key that makes proofs, independently of the package's
// own code (its JWK and signatures come straight from crypto/...).
type signer struct {
	alg  string
	jwk  map[string]any
	sign func(msg []byte) []byte
}

func newSigner(t testing.TB, alg string) *signer {
	t.Helper()
	switch alg {
	case "EdDSA":
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		return &signer{alg, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": enc.EncodeToString(pub)},
			func(m []byte) []byte { return ed25519.Sign(priv, m) }}
	case "ES256":
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		b, _ := k.PublicKey.Bytes()
		return &signer{alg, map[string]any{"kty": "EC", "crv": "P-256", "x": enc.EncodeToString(b[1:33]), "y": enc.EncodeToString(b[33:])},
			func(m []byte) []byte {
				d := sha256.Sum256(m)
				r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
				if err != nil {
					t.Fatal(err)
				}
				return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
			}}
	case "RS256":
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		return &signer{alg, map[string]any{"kty": "RSA", "n": enc.EncodeToString(k.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(k.E)).Bytes())},
			func(m []byte) []byte {
				d := sha256.Sum256(m)
				sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
				return sig
			}}
	}
	t.Fatalf("no signer for %s", alg)
	return nil
}

// jkt is the RFC 7638 thumbprint, computed here from the JWK members.
func (s *signer) jkt() string {
	var canon string
	switch s.jwk["kty"] {
	case "OKP":
		canon = `{"crv":"Ed25519","kty":"OKP","x":"` + s.jwk["x"].(string) + `"}`
	case "EC":
		canon = `{"crv":"P-256","kty":"EC","x":"` + s.jwk["x"].(string) + `","y":"` + s.jwk["y"].(string) + `"}`
	case "RSA":
		canon = `{"e":"` + s.jwk["e"].(string) + `","kty":"RSA","n":"` + s.jwk["n"].(string) + `"}`
	}
	sum := sha256.Sum256([]byte(canon))
	return enc.EncodeToString(sum[:])
}

// proof returns a proof with the given header and claim changes (a nil
// value deletes the member).
func (s *signer) proof(hdr, cl map[string]any) string {
	h := map[string]any{"typ": "dpop+jwt", "alg": s.alg, "jwk": s.jwk}
	c := map[string]any{"jti": rand.Text(), "htm": "POST", "htu": "https://latch.example/v1/refresh", "iat": now.Unix()}
	for k, v := range hdr {
		h[k] = v
		if v == nil {
			delete(h, k)
		}
	}
	for k, v := range cl {
		c[k] = v
		if v == nil {
			delete(c, k)
		}
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	in := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	return in + "." + enc.EncodeToString(s.sign([]byte(in)))
}

var now = time.Unix(1_800_000_000, 0)

func verifier(rc store.ReplayCache) *dpop.Verifier {
	return &dpop.Verifier{Replay: rc, Now: func() time.Time { return now }}
}

func ath(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return enc.EncodeToString(sum[:])
}

func TestAccepts(t *testing.T) {
	v := verifier(memstore.New())
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg)
			p, err := v.Verify(t.Context(), s.proof(nil, nil), dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh", JKT: s.jkt()})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.JKT != s.jkt() || !p.IssuedAt.Equal(now) {
				t.Errorf("Proof = %q at %v, want the signer's thumbprint %q at %v", p.JKT, p.IssuedAt, s.jkt(), now)
			}
			tok := "eyJhbGciOi.access.token"
			if _, err := v.Verify(t.Context(), s.proof(nil, map[string]any{"ath": ath(tok), "htm": "GET", "htu": "https://API.example:443/a/./b/../c?q=1#f"}),
				dpop.Use{Method: "GET", URL: "https://api.example/a/c", AccessToken: tok, JKT: s.jkt()}); err != nil {
				t.Errorf("a proof with ath and an htu equal after normalisation: %v", err)
			}
		})
	}
}

// TestEd25519Alias: RFC 9864's fully-specified name Ed25519 is accepted
// for an Ed25519 key, in the header and in the jwk, and only for one.
func TestEd25519Alias(t *testing.T) {
	ed, ec := newSigner(t, "EdDSA"), newSigner(t, "ES256")
	use := dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh"}
	v := verifier(memstore.New())
	if _, err := v.Verify(t.Context(), ed.proof(map[string]any{"alg": "Ed25519"}, nil), use); err != nil {
		t.Errorf("alg Ed25519: %v", err)
	}
	jwk := map[string]any{"alg": "Ed25519"}
	for k, val := range ed.jwk {
		jwk[k] = val
	}
	if _, err := v.Verify(t.Context(), ed.proof(map[string]any{"alg": "Ed25519", "jwk": jwk}, nil), use); err != nil {
		t.Errorf("alg Ed25519 with a jwk whose alg is Ed25519: %v", err)
	}
	_, err := v.Verify(t.Context(), ec.proof(map[string]any{"alg": "Ed25519"}, nil), use)
	if e, ok := errors.AsType[*dpop.Error](err); !ok || e.Reason != dpop.ReasonAlg {
		t.Errorf("alg Ed25519 with a P-256 key: %v, want refused (alg)", err)
	}
}

// TestAttacks is the attack table: every proof is refused with its own
// reason, and a refused proof changes nothing (its jti is not recorded,
// so the honest proof with the same jti is accepted afterwards).
func TestAttacks(t *testing.T) {
	s, other := newSigner(t, "ES256"), newSigner(t, "EdDSA")
	const tok = "the.access.token"
	refresh := dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh", JKT: s.jkt()}
	access := dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh", JKT: s.jkt(), AccessToken: tok}
	priv := map[string]any{}
	for k, v := range s.jwk {
		priv[k] = v
	}
	priv["d"] = enc.EncodeToString(make([]byte, 32))
	hsIn := enc.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}`)) + "." + enc.EncodeToString([]byte(`{"jti":"x","htm":"POST","htu":"https://latch.example/v1/refresh","iat":1800000000}`))
	m := hmac.New(sha256.New, []byte("secret"))
	m.Write([]byte(hsIn))
	hs256 := hsIn + "." + enc.EncodeToString(m.Sum(nil))
	noneIn := enc.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":`+mustJSON(s.jwk)+`}`)) + "." + enc.EncodeToString([]byte(`{"jti":"y","htm":"POST","htu":"https://latch.example/v1/refresh","iat":1800000000}`))
	good := s.proof(nil, nil)
	swapped := strings.Split(good, ".")
	forged := strings.Split(other.proof(nil, nil), ".")

	for _, tc := range []struct {
		name  string
		proof string
		use   dpop.Use
		want  dpop.Reason
	}{
		{"wrong key (signed by another key than jwk)", swapped[0] + "." + swapped[1] + "." + forged[2], refresh, dpop.ReasonSignature},
		{"wrong htu", s.proof(nil, map[string]any{"htu": "https://evil.example/v1/refresh"}), refresh, dpop.ReasonURL},
		{"wrong htu path", s.proof(nil, map[string]any{"htu": "https://latch.example/v1/sessions"}), refresh, dpop.ReasonURL},
		{"wrong htm", s.proof(nil, map[string]any{"htm": "GET"}), refresh, dpop.ReasonMethod},
		{"stale iat", s.proof(nil, map[string]any{"iat": now.Add(-61 * time.Second).Unix()}), refresh, dpop.ReasonStale},
		{"future iat", s.proof(nil, map[string]any{"iat": now.Add(6 * time.Second).Unix()}), refresh, dpop.ReasonFuture},
		{"alg none", noneIn + ".", refresh, dpop.ReasonMalformed},
		{"alg none with a signature", noneIn + ".c2ln", refresh, dpop.ReasonAlgNone},
		{"HS256", hs256, refresh, dpop.ReasonAlgSymmetric},
		{"alg of another key type", s.proof(map[string]any{"alg": "EdDSA"}, nil), refresh, dpop.ReasonAlg},
		{"private key in header", s.proof(map[string]any{"jwk": priv}, nil), refresh, dpop.ReasonPrivateKey},
		{"no jwk", s.proof(map[string]any{"jwk": nil}, nil), refresh, dpop.ReasonJWK},
		{"kid instead of jwk", s.proof(map[string]any{"kid": "k1"}, nil), refresh, dpop.ReasonHeader},
		{"crit", s.proof(map[string]any{"crit": []string{"exp"}}, nil), refresh, dpop.ReasonHeader},
		{"typ JWT", s.proof(map[string]any{"typ": "JWT"}, nil), refresh, dpop.ReasonType},
		{"typ at+jwt", s.proof(map[string]any{"typ": "at+jwt"}, nil), refresh, dpop.ReasonType},
		{"missing jti", s.proof(nil, map[string]any{"jti": nil}), refresh, dpop.ReasonMissingClaim},
		{"iat as string", s.proof(nil, map[string]any{"iat": "1800000000"}), refresh, dpop.ReasonMalformed},
		{"missing ath", s.proof(nil, nil), access, dpop.ReasonMissingATH},
		{"wrong ath", s.proof(nil, map[string]any{"ath": ath("another.access.token")}), access, dpop.ReasonATH},
		{"ath without a token", s.proof(nil, map[string]any{"ath": ath(tok)}), refresh, dpop.ReasonUnexpectedATH},
		{"token bound to another key", other.proof(nil, nil), refresh, dpop.ReasonKey},
		{"two dots only", "a.b", refresh, dpop.ReasonMalformed},
		{"too large", strings.Repeat("a", dpop.MaxProofSize+1), refresh, dpop.ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(memstore.New())
			_, err := v.Verify(t.Context(), tc.proof, tc.use)
			var e *dpop.Error
			if !errors.As(err, &e) || e.Reason != tc.want || !errors.Is(err, dpop.ErrInvalidProof) || e.Code() != dpop.CodeInvalidProof {
				t.Fatalf("Verify = %v, want a refusal for %s", err, tc.want)
			}
			if strings.Contains(err.Error(), s.jwk["x"].(string)) || strings.Contains(dpop.Challenge(err), "latch.example") {
				t.Errorf("the refusal %q repeats proof material", err)
			}
		})
	}

	t.Run("duplicate header member", func(t *testing.T) {
		in := enc.EncodeToString([]byte(`{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256","jwk":`+mustJSON(s.jwk)+`}`)) + "." + enc.EncodeToString([]byte(`{}`))
		_, err := verifier(memstore.New()).Verify(t.Context(), in+"."+enc.EncodeToString(s.sign([]byte(in))), refresh)
		if e, ok := errors.AsType[*dpop.Error](err); !ok || e.Reason != dpop.ReasonMalformed {
			t.Errorf("Verify = %v, want malformed", err)
		}
	})

	t.Run("replayed jti", func(t *testing.T) {
		v := verifier(memstore.New())
		p := s.proof(nil, nil)
		if _, err := v.Verify(t.Context(), p, refresh); err != nil {
			t.Fatalf("first use: %v", err)
		}
		_, err := v.Verify(t.Context(), p, refresh)
		if e, ok := errors.AsType[*dpop.Error](err); !ok || e.Reason != dpop.ReasonReplay {
			t.Errorf("second use = %v, want jti_replayed", err)
		}
		// A replica on the same store refuses it too.
		if _, err := verifier(v.Replay).Verify(t.Context(), p, refresh); !errors.Is(err, dpop.ErrInvalidProof) {
			t.Errorf("replay at another verifier on the same store = %v, want refused", err)
		}
	})

	t.Run("refusals record nothing", func(t *testing.T) {
		v := verifier(memstore.New())
		jti := map[string]any{"jti": "one-jti"}
		for _, bad := range []dpop.Use{{Method: "GET", URL: refresh.URL, JKT: s.jkt()}, {Method: "POST", URL: refresh.URL, JKT: other.jkt()}, access} {
			if _, err := v.Verify(t.Context(), s.proof(nil, jti), bad); !errors.Is(err, dpop.ErrInvalidProof) {
				t.Fatalf("Verify for %+v = %v, want refused", bad, err)
			}
		}
		if _, err := v.Verify(t.Context(), s.proof(nil, jti), refresh); err != nil {
			t.Errorf("the honest proof with the jti of refused ones: %v", err)
		}
	})

	t.Run("bound token sent as plain Bearer", func(t *testing.T) {
		err := dpop.CheckScheme("Bearer", s.jkt())
		if e, ok := errors.AsType[*dpop.Error](err); !ok || e.Reason != dpop.ReasonBearer {
			t.Errorf("CheckScheme(Bearer, bound) = %v, want bound_as_bearer", err)
		}
		if err := dpop.CheckScheme("DPoP", s.jkt()); err != nil {
			t.Errorf("CheckScheme(DPoP, bound) = %v", err)
		}
		if err := dpop.CheckScheme("Bearer", ""); err != nil {
			t.Errorf("CheckScheme(Bearer, unbound) = %v", err)
		}
	})

	t.Run("store down fails closed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := verifier(memstore.New()).Verify(ctx, s.proof(nil, nil), refresh)
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
			t.Errorf("Verify with the replay cache unavailable = %v, want ErrUnavailable (not a proof refusal)", err)
		}
	})
}

func TestNonce(t *testing.T) {
	s := newSigner(t, "EdDSA")
	v := verifier(memstore.New())
	v.NonceKey = []byte("0123456789abcdef0123456789abcdef")
	use := dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh"}
	_, err := v.Verify(t.Context(), s.proof(nil, nil), use)
	e, ok := errors.AsType[*dpop.Error](err)
	if !ok || !errors.Is(err, dpop.ErrUseNonce) || e.Code() != dpop.CodeUseNonce || e.Nonce == "" || e.Nonce != v.Nonce() {
		t.Fatalf("a proof without nonce = %v, want use_dpop_nonce with the current nonce", err)
	}
	if !strings.Contains(dpop.Challenge(err), `error="use_dpop_nonce"`) {
		t.Errorf("Challenge = %s", dpop.Challenge(err))
	}
	if _, err := v.Verify(t.Context(), s.proof(nil, map[string]any{"nonce": "bm9uY2U"}), use); !errors.Is(err, dpop.ErrUseNonce) {
		t.Errorf("a made-up nonce = %v, want use_dpop_nonce", err)
	}
	other := verifier(v.Replay)
	other.NonceKey = []byte("another key, another replica set")
	if _, err := v.Verify(t.Context(), s.proof(nil, map[string]any{"nonce": other.Nonce()}), use); !errors.Is(err, dpop.ErrUseNonce) {
		t.Errorf("a nonce under another key = %v, want use_dpop_nonce", err)
	}
	if _, err := v.Verify(t.Context(), s.proof(nil, map[string]any{"nonce": e.Nonce}), use); err != nil {
		t.Errorf("a proof with the nonce: %v", err)
	}
	old := e.Nonce
	now2 := now.Add(3 * dpop.DefaultWindow)
	v.Now = func() time.Time { return now2 }
	if _, err := v.Verify(t.Context(), s.proof(nil, map[string]any{"nonce": old, "iat": now2.Unix()}), use); !errors.Is(err, dpop.ErrUseNonce) {
		t.Errorf("a nonce three windows old = %v, want use_dpop_nonce", err)
	}
}

func TestChallenge(t *testing.T) {
	got := dpop.Challenge(dpop.CheckScheme("Bearer", "x"))
	want := `DPoP algs="EdDSA Ed25519 ES256 RS256", error="invalid_dpop_proof", error_description="the token is DPoP-bound and must be sent with the DPoP scheme and a proof"`
	if got != want {
		t.Errorf("Challenge = %s\nwant %s", got, want)
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://Latch.Example:443/v1/refresh?x#y": "https://latch.example/v1/refresh",
		"HTTP://h:80":                "http://h/",
		"http://h:8080/a/%7e/b/../c": "http://h:8080/a/~/c",
		"https://[::1]:8443/x":       "https://[::1]:8443/x",
	} {
		if got, err := dpop.NormalizeURL(in); err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/v1/refresh", "ftp://h/x", "https://user:pw@h/x", "mailto:a@b", "https://"} {
		if got, err := dpop.NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// FuzzVerify: no input panics, and whatever is accepted was signed by its
// own jwk (the seed corpus holds valid proofs to mutate).
func FuzzVerify(f *testing.F) {
	for _, alg := range []string{"EdDSA", "ES256"} {
		s := newSigner(f, alg)
		f.Add(s.proof(nil, nil))
		f.Add(s.proof(nil, map[string]any{"ath": ath("t")}))
	}
	f.Add("e30.e30.e30")
	f.Fuzz(func(t *testing.T, proof string) {
		v := verifier(memstore.New())
		p, err := v.Verify(t.Context(), proof, dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh"})
		if err == nil && (p.Key == nil || p.JKT == "") {
			t.Fatalf("accepted a proof without a key")
		}
		if err != nil && !errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("a refusal that is not ErrInvalidProof: %v", err)
		}
	})
}
