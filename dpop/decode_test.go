package dpop

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
)

// Seeds for the decoder fuzzers: what clients send, and the forms only the
// strict decoder may judge.
var (
	edJWK = `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	ecJWK = `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`

	headerSeeds = []string{
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":` + edJWK + `}`,
		`{"typ":"dpop+jwt","alg":"Ed25519","jwk":` + edJWK + `}`,
		` { "alg" : "ES256" , "typ":"dpop+jwt","jwk":` + ecJWK + ` } `,
		`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","ext":true,"key_ops":["verify"]}}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":` + edJWK + `,"x-extra":{"a":[1,2.5e3,-0,true,false,null,"s"]}}`,
		`{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"EdDSA","jwk":` + edJWK + `}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":` + edJWK + `,"kid":"k"}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"AA"}}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"KTY":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","x":"AA"}}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":null,"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","pad":"` + strings.Repeat("a", 930) + `"}}`,
		`{"typ":"dpop\u002bjwt","alg":"EdDSA","jwk":` + edJWK + `}`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":` + edJWK + `} x`,
		`{"typ":"dpop+jwt","alg":"EdDSA","jwk":` + edJWK + `}}`,
		`{"typ":null,"alg":1,"jwk":"x"}`,
		`{}`, `[]`, `{"a":[[[[[[1]]]]]]}`,
	}
	claimSeeds = []string{
		`{"jti":"e1j3V_bKic8-LAEB","htm":"POST","htu":"https://latch.example/v1/refresh","iat":1800000000}`,
		`{"jti":"e1j3V_bKic8-LAEB","htm":"GET","htu":"https://api.example/orders","iat":1800000000,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo","nonce":"n-1"}`,
		`{"jti":"x","htm":"POST","htu":"https://h/","iat":1800000000.5}`,
		`{"jti":"x","htm":"POST","htu":"https://h/","iat":1.8e9}`,
		`{"jti":"x","htm":"POST","htu":"https://h/","iat":01800000000}`,
		`{"jti":"x","htm":"POST","htu":"https://h/","iat":-1}`,
		`{"jti":"x","htm":"POST","htu":"https://h/","iat":"1800000000"}`,
		`{"jti":"x","jti":"y","htm":"POST","htu":"https://h/","iat":1}`,
		`{"jti":"\u00e9","htm":"POST","htu":"https://h/","iat":1,"exp":2,"cnf":{"jkt":"a"}}`,
		`{"jti":"x","htm":"POST","htu":"https://h/","iat":1099511627777}`,
		`{"jti":"x","htm":null,"htu":"https://h/","iat":1}`,
	}
)

// FuzzDecodersAgree: whatever the fast decoder accepts, the strict
// (encoding/json) decoder decodes to the same header — and jwk key, or the
// same refusal of it — and the same claims. The fast decoder never
// refuses: it gives up and the strict one decides.
func FuzzDecodersAgree(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	for _, s := range claimSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fh header
		if fastHeader(raw, &fh) {
			sh, err := strictHeader(raw)
			if err != nil {
				t.Fatalf("fast decoded a header the strict decoder refuses (%v): %q", err, raw)
			}
			if fh.has != sh.has || !bytes.Equal(fh.typ, sh.typ) || !bytes.Equal(fh.alg, sh.alg) {
				t.Fatalf("header %q: fast %+v, strict %+v", raw, fh, sh)
			}
			if fh.has&hasJWK != 0 {
				if sh.jwkRaw[0] != '{' {
					t.Fatalf("fast decoded a jwk that is not an object: %q", raw)
				}
				fk, ferr := fh.key()
				sk, serr := sh.key()
				if (ferr == nil) != (serr == nil) || errors.Is(ferr, accesstoken.ErrPrivateJWK) != errors.Is(serr, accesstoken.ErrPrivateJWK) {
					t.Fatalf("jwk of %q: fast %v, strict %v", raw, ferr, serr)
				}
				if ferr == nil && (fk.ID() != sk.ID() || fk.Algorithm() != sk.Algorithm()) {
					t.Fatalf("jwk of %q: fast key %s, strict %s", raw, fk, sk)
				}
			}
		}
		var fc claims
		if fastClaims(raw, &fc) {
			sc, err := strictClaims(raw)
			if err != nil {
				t.Fatalf("fast decoded claims the strict decoder refuses (%v): %q", err, raw)
			}
			if fc.has != sc.has || fc.iatOK != sc.iatOK || fc.iatSec != sc.iatSec || fc.iatNsec != sc.iatNsec ||
				!bytes.Equal(fc.jti, sc.jti) || !bytes.Equal(fc.htm, sc.htm) || !bytes.Equal(fc.htu, sc.htu) ||
				!bytes.Equal(fc.ath, sc.ath) || !bytes.Equal(fc.nonce, sc.nonce) {
				t.Fatalf("claims %q: fast %+v, strict %+v", raw, fc, sc)
			}
		}
	})
}

// The fast decoder takes what clients send: the seeds that are plain
// forms are decoded without the strict decoder.
func TestFastDecoderTakesTheCommonForm(t *testing.T) {
	for _, s := range headerSeeds[:5] {
		var h header
		if !fastHeader([]byte(s), &h) || h.has != hasTyp|hasAlg|hasJWK {
			t.Errorf("fast decoder gave up on %s", s)
		}
	}
	for _, s := range claimSeeds[:2] {
		var c claims
		if !fastClaims([]byte(s), &c) || !c.iatOK {
			t.Errorf("fast decoder gave up on %s", s)
		}
	}
}

// FuzzNormal: a URL normal calls normal is its own NormalizeURL.
func FuzzNormal(f *testing.F) {
	for _, s := range []string{"https://latch.example/v1/refresh", "http://h:8080/a/", "https://h/", "https://h:443/x",
		"https://h//x", "https://h/a/./b", "https://h/%41", "https://H/x", "https://h/x?q", "https://h:0443/x", "https://-h./x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		if !normal(u) || !normal([]byte(u)) {
			return
		}
		if got, err := normalizeSlowly(u); err != nil || got != u {
			t.Fatalf("normal(%q), but NormalizeURL = %q, %v", u, got, err)
		}
	})
}

// keys signs proofs with crypto/... directly, for the tests of this file.
type testKey struct {
	alg  string
	jwk  string
	sign func([]byte) []byte
}

func testKeys(t testing.TB) []testKey {
	enc := b64
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecb, _ := ec.PublicKey.Bytes()
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	return []testKey{
		{"EdDSA", `{"kty":"OKP","crv":"Ed25519","x":"` + enc.EncodeToString(edPriv.Public().(ed25519.PublicKey)) + `"}`,
			func(m []byte) []byte { return ed25519.Sign(edPriv, m) }},
		{"ES256", `{"kty":"EC","crv":"P-256","x":"` + enc.EncodeToString(ecb[1:33]) + `","y":"` + enc.EncodeToString(ecb[33:]) + `"}`,
			func(m []byte) []byte {
				d := sha256sum(m)
				r, s, err := ecdsa.Sign(rand.Reader, ec, d[:])
				if err != nil {
					t.Fatal(err)
				}
				return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
			}},
		{"RS256", `{"kty":"RSA","n":"` + enc.EncodeToString(rk.N.Bytes()) + `","e":"` + enc.EncodeToString(big.NewInt(int64(rk.E)).Bytes()) + `"}`,
			func(m []byte) []byte {
				d := sha256sum(m)
				sig, _ := rsa.SignPKCS1v15(rand.Reader, rk, cryptoSHA256, d[:])
				return sig
			}},
	}
}

func (k testKey) proof(hdr, claims string) string {
	in := b64.EncodeToString([]byte(hdr)) + "." + b64.EncodeToString([]byte(claims))
	return in + "." + b64.EncodeToString(k.sign([]byte(in)))
}

// FuzzParseAgrees: a whole proof parses to the same result, or the same
// refusal, with and without the fast decoder (seeded with signed proofs
// whose header and claims take each decoder).
func FuzzParseAgrees(f *testing.F) {
	for _, k := range testKeys(f) {
		h := `{"typ":"dpop+jwt","alg":"` + k.alg + `","jwk":` + k.jwk + `}`
		for _, c := range claimSeeds {
			f.Add(k.proof(h, c))
		}
		f.Add(k.proof(`{"typ":"dpop+jwt","alg":"`+k.alg+`","jwk":`+k.jwk+`,"jwk":`+k.jwk+`}`, claimSeeds[0]))
		f.Add(k.proof(`{"alg":"`+k.alg+`","typ":"dpop+jwt","jwk":`+strings.Replace(k.jwk, `"kty"`, `"Kty"`, 1)+`}`, claimSeeds[0]))
	}
	f.Fuzz(func(t *testing.T, proof string) {
		fp, fc, ferr := parse(proof, true)
		sp, sc, serr := parse(proof, false)
		if ferr != serr { // refusals are preallocated: the same reason is the same pointer
			t.Fatalf("parse(%q): fast %v, strict %v", proof, ferr, serr)
		}
		if ferr != nil {
			return
		}
		if fp.JKT != sp.JKT || !fp.IssuedAt.Equal(sp.IssuedAt) || fc.has != sc.has || !bytes.Equal(fc.jti, sc.jti) ||
			!bytes.Equal(fc.htm, sc.htm) || !bytes.Equal(fc.htu, sc.htu) || !bytes.Equal(fc.ath, sc.ath) || !bytes.Equal(fc.nonce, sc.nonce) {
			t.Fatalf("parse(%q): fast %+v %+v, strict %+v %+v", proof, fp, fc, sp, sc)
		}
	})
}

// alwaysFresh is a replay cache that allocates nothing, so the budgets
// below count the verifier's own allocations.
type alwaysFresh struct{}

func (alwaysFresh) Seen(context.Context, string, time.Time) (bool, error) { return true, nil }

// TestAllocs enforces the cost of a proof: the allocations of Verify for
// each algorithm, with the fast decoder (and, for comparison, a ceiling
// the strict decoder alone is far above).
func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -cover and -race")
	}
	// EdDSA: the proof buffer, the key (struct, bytes, x, its thumbprint)
	// and the replay key. ES256 and RS256 add what crypto/ecdsa and
	// crypto/rsa allocate to parse a public key and verify with it.
	budget := map[string]float64{"EdDSA": 8, "ES256": 34, "RS256": 25}
	now := time.Unix(1_800_000_000, 0)
	v := &Verifier{Replay: alwaysFresh{}, Now: func() time.Time { return now }}
	const tok = "eyJhbGciOiJFZERTQSJ9.access.token"
	use := Use{Method: "GET", URL: "https://api.example/orders", AccessToken: tok}
	for _, k := range testKeys(t) {
		h := `{"typ":"dpop+jwt","alg":"` + k.alg + `","jwk":` + k.jwk + `}`
		c, _ := json.Marshal(map[string]any{"jti": "j", "htm": "GET", "htu": use.URL, "iat": now.Unix(), "ath": athOf(tok)})
		p := k.proof(h, string(c))
		if _, err := v.Verify(t.Context(), p, use); err != nil {
			t.Fatalf("%s: %v", k.alg, err)
		}
		got := testing.AllocsPerRun(50, func() { v.Verify(context.Background(), p, use) })
		strict := testing.AllocsPerRun(10, func() { v.verify(context.Background(), p, use, false) })
		t.Logf("%s: %.0f allocations per proof (strict decoder: %.0f)", k.alg, got, strict)
		if got > budget[k.alg] {
			t.Errorf("%s: %.0f allocations per proof, budget %.0f", k.alg, got, budget[k.alg])
		}
	}
	// Server nonces add none: the window's nonces are computed once.
	nv := &Verifier{Replay: alwaysFresh{}, Now: v.Now, NonceKey: []byte("0123456789abcdef0123456789abcdef")}
	k := testKeys(t)[0]
	c, _ := json.Marshal(map[string]any{"jti": "j", "htm": "GET", "htu": use.URL, "iat": now.Unix(), "ath": athOf(tok), "nonce": nv.Nonce()})
	p := k.proof(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":`+k.jwk+`}`, string(c))
	if _, err := nv.Verify(t.Context(), p, use); err != nil {
		t.Fatal(err)
	}
	if got := testing.AllocsPerRun(50, func() { nv.Verify(context.Background(), p, use); nv.Nonce() }); got > budget["EdDSA"] {
		t.Errorf("EdDSA with a nonce: %.0f allocations per proof and nonce, budget %.0f", got, budget["EdDSA"])
	}
}

func sha256sum(m []byte) [32]byte { return sha256.Sum256(m) }

const cryptoSHA256 = crypto.SHA256

func athOf(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// The fast decoder applies ParseJWK's size limit to the jwk's own JSON,
// as the strict decoder's RawMessage measures it (whitespace around the
// value excluded), at the exact boundary.
func TestJWKSizeBoundary(t *testing.T) {
	base := `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","pad":""}`
	for _, size := range []int{maxJWKSize - 1, maxJWKSize, maxJWKSize + 1} {
		jwk := strings.Replace(base, `"pad":""`, `"pad":"`+strings.Repeat("a", size-len(base))+`"`, 1)
		raw := []byte(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":  ` + jwk + `  }`)
		var fh header
		fast := fastHeader(raw, &fh)
		sh, err := strictHeader(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, serr := sh.key()
		if fast != (size <= maxJWKSize) || (serr == nil) != (size <= maxJWKSize) {
			t.Errorf("jwk of %d bytes: fast decoder took it: %v; strict key error: %v", size, fast, serr)
		}
	}
}
