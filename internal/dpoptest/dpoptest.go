// Package dpoptest makes DPoP proofs (RFC 9449) for tests, good ones and
// the bad ones of the attack table. Proofs are built by hand with the
// standard library, independent of package dpop, so that they can be
// broken in every way a verifier must refuse.
package dpoptest

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

var b64 = base64.RawURLEncoding

// Key is a client's Ed25519 DPoP key.
type Key struct {
	priv ed25519.PrivateKey
	jwk  map[string]any
	// JKT is the key's RFC 7638 thumbprint.
	JKT string
}

// NewKey returns a fresh key.
func NewKey() *Key {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand never fails (Go 1.24)
	}
	x := b64.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return &Key{priv: priv, jwk: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": x}, JKT: b64.EncodeToString(sum[:])}
}

// Proof is one proof's parts, changed freely before String renders it.
type Proof struct {
	Header map[string]any
	Claims map[string]any
	key    *Key
	// Sign, if set, replaces the key's EdDSA signature of the signing input.
	Sign func(in []byte) []byte
}

// Proof is a good proof by k for a request to htm and htu at iat, with
// ath for accessToken if it is not empty.
func (k *Key) Proof(htm, htu, accessToken string, iat time.Time) *Proof {
	c := map[string]any{"jti": rand.Text(), "htm": htm, "htu": htu, "iat": iat.Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c["ath"] = b64.EncodeToString(sum[:])
	}
	return &Proof{Header: map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": k.jwk}, Claims: c, key: k}
}

// String renders the proof as a compact JWS.
func (p *Proof) String() string {
	h, _ := json.Marshal(p.Header)
	c, _ := json.Marshal(p.Claims)
	in := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	var sig []byte
	if p.Sign != nil {
		sig = p.Sign([]byte(in))
	} else {
		sig = ed25519.Sign(p.key.priv, []byte(in))
	}
	return in + "." + b64.EncodeToString(sig)
}

// Request is what a proof is for.
type Request struct {
	Method, URL string
	AccessToken string    // "" for a refresh
	Now         time.Time // the verifier's clock
}

// Attack is one row of the attack table: a proof made bad one way.
type Attack struct {
	Name string
	// Reason is the dpop.Reason a verifier refuses the proof for.
	Reason string
	// Make returns the bad proof for r; good is the key the session is
	// bound to, other any other key. "" means no proof at all.
	Make func(good, other *Key, r Request) string
}

// Attacks is the attack table every DPoP verifier must refuse. Missing ath,
// a foreign ath, a token bound to another key and a bound token sent as
// Bearer depend on the call, so callers add those rows.
func Attacks() []Attack {
	mod := func(name, reason string, f func(p *Proof, r Request)) Attack {
		return Attack{name, reason, func(g, _ *Key, r Request) string {
			p := g.Proof(r.Method, r.URL, r.AccessToken, r.Now)
			f(p, r)
			return p.String()
		}}
	}
	return []Attack{
		{"no proof", "proof_missing", func(_, _ *Key, _ Request) string { return "" }},
		{"wrong key", "key_mismatch", func(_, o *Key, r Request) string { return o.Proof(r.Method, r.URL, r.AccessToken, r.Now).String() }},
		mod("wrong htm", "htm", func(p *Proof, _ Request) { p.Claims["htm"] = "PUT" }),
		mod("wrong htu", "htu", func(p *Proof, _ Request) { p.Claims["htu"] = "https://elsewhere.example/v1/refresh" }),
		mod("stale iat", "iat_stale", func(p *Proof, r Request) { p.Claims["iat"] = r.Now.Add(-10 * time.Minute).Unix() }),
		mod("iat in the future", "iat_future", func(p *Proof, r Request) { p.Claims["iat"] = r.Now.Add(10 * time.Minute).Unix() }),
		mod("no jti", "missing_claim", func(p *Proof, _ Request) { delete(p.Claims, "jti") }),
		// An unsigned JWS has an empty signature, which no proof may have:
		// refused as malformed before its alg is read.
		mod("alg none", "malformed", func(p *Proof, _ Request) {
			p.Header["alg"] = "none"
			p.Sign = func([]byte) []byte { return nil }
		}),
		mod("HMAC", "alg_symmetric", func(p *Proof, _ Request) {
			p.Header["alg"] = "HS256"
			// The secret an attacker would pick: the public key's bytes.
			p.Sign = func(in []byte) []byte {
				mac := hmac.New(sha256.New, []byte(p.key.jwk["x"].(string)))
				mac.Write(in)
				return mac.Sum(nil)
			}
		}),
		mod("private key in the header", "private_key", func(p *Proof, _ Request) {
			jwk := map[string]any{"d": b64.EncodeToString(p.key.priv.Seed())}
			for k, v := range p.key.jwk {
				jwk[k] = v
			}
			p.Header["jwk"] = jwk
		}),
		mod("ES256 header, EdDSA signature", "alg", func(p *Proof, _ Request) { p.Header["alg"] = "ES256" }),
		mod("typ jwt", "typ", func(p *Proof, _ Request) { p.Header["typ"] = "jwt" }),
		{"tampered claims", "signature", func(g, _ *Key, r Request) string {
			parts := strings.Split(g.Proof(r.Method, r.URL, r.AccessToken, r.Now).String(), ".")
			other := g.Proof(r.Method, r.URL, r.AccessToken, r.Now).String()
			return parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
		}},
	}
}
