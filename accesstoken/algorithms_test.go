package accesstoken

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test keys, generated once per test binary (RSA generation is slow).
var (
	testRSAKey = sync.OnceValue(func() *rsa.PrivateKey { return genRSA(2048) })
	testRSA1k  = sync.OnceValue(func() *rsa.PrivateKey { return genRSA(1024) })
)

func genRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func rsSigner(k *rsa.PrivateKey) func([]byte) []byte {
	return func(m []byte) []byte {
		d := sha256.Sum256(m)
		sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func esSigner(k *ecdsa.PrivateKey, size int) func([]byte) []byte {
	return func(m []byte) []byte {
		d := sha256.Sum256(m)
		r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			panic(err)
		}
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig
	}
}

func rsaJWK(pub *rsa.PublicKey, extra string) string {
	return fmt.Sprintf(`{"kty":"RSA","n":%q,"e":%q%s}`, base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()), extra)
}

func TestRS256Keys(t *testing.T) {
	ctx := context.Background()
	priv := mustKey(NewRS256Key("", testRSAKey()))
	if priv.Algorithm() != RS256 || !priv.CanSign() || priv.Public().CanSign() {
		t.Fatalf("key %v", priv)
	}
	// The JWKS form round-trips to the same thumbprint (RFC 7638 over e, kty, n).
	keys, err := ParseJWKS(JWKS(priv))
	if err != nil || len(keys) != 1 || keys[0].ID() != priv.ID() || keys[0].Algorithm() != RS256 {
		t.Fatalf("ParseJWKS(JWKS(RS256 key)) = %v, %v", keys, err)
	}
	if bytes.Contains(JWKS(priv), []byte(`"d"`)) || bytes.Contains(JWKS(priv), []byte(`"p"`)) {
		t.Error("private RSA member in JWKS")
	}
	ks, _ := NewStaticKeys(priv)
	iss, _ := NewIssuer(IssuerConfig{Keys: ks, Issuer: testIss, Audience: testAud})
	c := Claims{Subject: "rsa", IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute), SessionID: "ses_r"}
	tok, err := iss.Issue(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := iss.Issue(ctx, c); again != tok {
		t.Error("RS256 issuance is not deterministic")
	}
	pub, _ := NewStaticKeys(keys...)
	v, _ := NewVerifier(VerifierConfig{Keys: pub, Issuer: testIss, Audience: testAud})
	if got, err := v.Verify(ctx, tok); err != nil || got.Subject != "rsa" {
		t.Fatalf("verify with the JWKS key: %+v, %v", got, err)
	}

	// Short keys are refused, as signing keys, verification keys and in a JWKS.
	short := testRSA1k()
	for _, k := range []any{short, &short.PublicKey} {
		if _, err := NewRS256Key("", k); err == nil || !strings.Contains(err.Error(), "2048") {
			t.Errorf("NewRS256Key(%T of 1024 bits) = %v, want refused", k, err)
		}
	}
	skipped, err := ParseJWKS([]byte(`{"keys":[` + rsaJWK(&short.PublicKey, `,"kid":"short","alg":"RS256"`) + `]}`))
	if err != nil || len(skipped) != 0 {
		t.Errorf("a 1024-bit RSA key in a JWKS: %v, %v; want skipped", skipped, err)
	}
	even := &rsa.PublicKey{N: testRSAKey().N, E: 65536}
	if _, err := NewRS256Key("", even); err == nil {
		t.Error("an even RSA exponent was accepted")
	}
	for _, bad := range []string{
		`{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}`,       // not base64url
		`{"keys":[{"kty":"RSA","n":"AAEC","e":"AQAB"}]}`,    // leading zero
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQABAQA"}]}`, // e longer than 4 bytes
	} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS accepted %s", bad)
		}
	}
}

// TestAlgorithmAttacks: the algorithm is always the key's. Every row is a
// token that must be refused, with the error it must match.
func TestAlgorithmAttacks(t *testing.T) {
	ctx := context.Background()
	rsk := testRSAKey()
	rs := mustKey(NewRS256Key("rs", rsk))
	ecp, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es := mustKey(NewES256Key("es", ecp))
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	secret := bytes.Repeat([]byte{5}, 32)
	hs := mustKey(NewHS256Key("hs", secret))
	ks, _ := NewStaticKeys(rs.Public(), es.Public(), hs)
	v, _ := NewVerifier(VerifierConfig{Keys: ks, Issuer: testIss, Audience: testAud, Now: newClock(t0).Now, CacheSize: -1})
	now := t0.Unix()
	claims := `{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`
	hdr := func(alg, kid string) string { return `{"alg":"` + alg + `","kid":"` + kid + `","typ":"at+jwt"}` }
	der := x509.MarshalPKCS1PublicKey(&rsk.PublicKey)
	pkix, _ := x509.MarshalPKIXPublicKey(&rsk.PublicKey)
	jwk := JWKS(rs)
	good := forge(hdr("RS256", "rs"), claims, rsSigner(rsk))
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatalf("control: %v", err)
	}
	if _, err := v.Verify(ctx, forge(hdr("ES256", "es"), claims, esSigner(ecp, 32))); err != nil {
		t.Fatalf("control ES256: %v", err)
	}
	parts := strings.Split(good, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	for _, c := range []struct {
		name string
		tok  string
		want error
	}{
		// RS256 -> HS256: the RSA public key (in every encoding an attacker
		// could guess) used as an HMAC secret.
		{"HS256 with the RSA key's PKCS#1 DER as secret", forge(hdr("HS256", "rs"), claims, hmacSigner(der)), ErrAlgorithm},
		{"HS256 with the RSA key's PKIX DER as secret", forge(hdr("HS256", "rs"), claims, hmacSigner(pkix)), ErrAlgorithm},
		{"HS256 with the RSA JWK as secret", forge(hdr("HS256", "rs"), claims, hmacSigner(jwk)), ErrAlgorithm},
		{"hs256 lower case", forge(hdr("hs256", "rs"), claims, hmacSigner(der)), ErrAlgorithm},
		// HS256 -> RS256: an RSA signature against the HMAC key.
		{"RS256 against the HS256 key", forge(hdr("RS256", "hs"), claims, rsSigner(rsk)), ErrAlgorithm},
		// Other RSA algorithms, and alg spelled differently.
		{"PS256 against the RS256 key", forge(hdr("PS256", "rs"), claims, rsSigner(rsk)), ErrAlgorithm},
		{"RS512 against the RS256 key", forge(hdr("RS512", "rs"), claims, rsSigner(rsk)), ErrAlgorithm},
		{"rs256 lower case", forge(hdr("rs256", "rs"), claims, rsSigner(rsk)), ErrAlgorithm},
		{"none against the RS256 key", enc(hdr("none", "rs")) + "." + enc(claims) + ".", ErrMalformed},
		{"ES256 header on the RSA key", forge(hdr("ES256", "rs"), claims, esSigner(ecp, 32)), ErrAlgorithm},
		{"RS256 header on the ES256 key", forge(hdr("RS256", "es"), claims, rsSigner(rsk)), ErrAlgorithm},
		// Signature shapes.
		{"RS256 signature truncated", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig[:255]), ErrSignature},
		{"RS256 signature with a leading zero byte", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(append([]byte{0}, sig...)), ErrSignature},
		{"RS256 signature of another key", forge(hdr("RS256", "rs"), claims, rsSigner(genRSA(2048))), ErrSignature},
		{"RS256 claims altered", parts[0] + "." + enc(strings.Replace(claims, `"u"`, `"v"`, 1)) + "." + parts[2], ErrSignature},
		// ES256 with the wrong curve: a P-384 signature (96 bytes) and a
		// P-384 key's signature cut to 64 bytes.
		{"ES256 signed on P-384", forge(hdr("ES256", "es"), claims, esSigner(p384, 48)), ErrSignature},
		{"ES256 P-384 signature cut to P-256 size", forge(hdr("ES256", "es"), claims, func(m []byte) []byte { return esSigner(p384, 48)(m)[:64] }), ErrSignature},
		// A key the token names but the key set does not hold.
		{"RS256 with an unknown kid", forge(hdr("RS256", "other"), claims, rsSigner(rsk)), ErrUnknownKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(ctx, c.tok)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if _, err := VerifySignature(c.tok, rs); err == nil {
				t.Fatal("VerifySignature accepted it with the RSA key")
			}
		})
	}

	// ES256 keys on another curve are refused, and skipped in a JWKS.
	if _, err := NewES256Key("", p384); err == nil {
		t.Error("NewES256Key accepted a P-384 key")
	}
	if _, err := NewES256Key("", &p384.PublicKey); err == nil {
		t.Error("NewES256Key accepted a P-384 public key")
	}
	x, y := p384.X.FillBytes(make([]byte, 48)), p384.Y.FillBytes(make([]byte, 48))
	doc := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-384","alg":"ES256","x":%q,"y":%q},{"kty":"EC","crv":"P-256","alg":"ES256","x":%q,"y":%q}]}`,
		b64.EncodeToString(x), b64.EncodeToString(y), b64.EncodeToString(x[:32]), b64.EncodeToString(y[:32]))
	if keys, err := ParseJWKS([]byte(doc)); err == nil && len(keys) > 0 {
		t.Errorf("a P-384 key (or its coordinates cut to P-256 size) was accepted as ES256: %v", keys)
	}
}

// Changing the keyring's algorithm rotates through pre-publication: the
// old key signs until the new one has been published for PrePublication,
// and both verify meanwhile.
func TestKeyringAlgorithmChange(t *testing.T) {
	ctx := context.Background()
	st := &fakeKeyStore{}
	clk := newClock(t0)
	ed := openRing(t, st, clk, EdDSA)
	if k, _ := ed.SigningKey(ctx); k.Algorithm() != EdDSA {
		t.Fatal(k)
	}
	for _, to := range []Algorithm{RS256, ES256} {
		kr := openRing(t, st, clk, to)
		cur, _ := kr.SigningKey(ctx)
		if cur.Algorithm() == to {
			t.Fatalf("switching to %s signed with the new key at once", to)
		}
		infos := kr.Keys()
		last := infos[len(infos)-1]
		if last.Algorithm != to || last.State != KeyPending || !last.Activates.Equal(clk.Now().Add(DefaultPrePublication)) {
			t.Fatalf("switching to %s: newest key %+v, want pending for PrePublication", to, last)
		}
		if again := openRing(t, st, clk, to); len(again.Keys()) != len(infos) {
			t.Fatalf("reopening with %s added another key", to)
		}
		iss, _ := NewIssuer(IssuerConfig{Keys: kr, Issuer: testIss, Audience: testAud, Now: clk.Now})
		v, _ := NewVerifier(VerifierConfig{Keys: kr, Issuer: testIss, Audience: testAud, Now: clk.Now})
		clk.Add(DefaultPrePublication - time.Minute)
		before, _ := iss.Issue(ctx, Claims{Subject: "a"})
		clk.Add(time.Minute)
		if k, _ := kr.SigningKey(ctx); k.Algorithm() != to || k.ID() != last.ID {
			t.Fatalf("after PrePublication the signing key is %v, want the %s key", k, to)
		}
		after, _ := iss.Issue(ctx, Claims{Subject: "a"})
		for _, tok := range []string{before, after} {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Errorf("%s: a token of the old and the new key: %v", to, err)
			}
		}
		if !strings.Contains(string(kr.JWKS()), `"alg":"`+string(to)+`"`) {
			t.Errorf("JWKS lacks the %s key", to)
		}
	}
}
