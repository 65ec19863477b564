package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/latch-sessions/latch/accesstoken"
)

// Interoperability of latch's access tokens with independent JOSE
// libraries: latch's tokens verify with golang-jwt/jwt/v5 and jwx/v3 using
// only the JWKS document, and tokens those libraries sign with the same key
// verify in latch's verifier.

const (
	interopIss = "https://latch.example"
	interopAud = "api"
)

type interopRing struct {
	kr  *accesstoken.Keyring
	iss *accesstoken.Issuer
	v   *accesstoken.Verifier
}

func newInteropRing(t testing.TB, alg accesstoken.Algorithm) *interopRing {
	t.Helper()
	ctx := context.Background()
	kr, err := accesstoken.OpenKeyring(ctx, accesstoken.KeyringConfig{Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: kr, Issuer: interopIss, Audience: interopAud})
	v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: kr, Issuer: interopIss, Audience: interopAud, CacheSize: -1})
	return &interopRing{kr, iss, v}
}

func interopClaims() accesstoken.Claims {
	now := time.Now()
	return accesstoken.Claims{Subject: "alice", IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute),
		ID: "jti-1", SessionID: "ses_1", Extra: []byte(`{"role":"admin"}`)}
}

// goJWTKeyfunc resolves kid through the JWKS document with jwx's parser,
// so golang-jwt never sees a key latch handed it directly.
func goJWTKeyfunc(t testing.TB, jwksDoc []byte) gojwt.Keyfunc {
	set, err := jwk.Parse(jwksDoc)
	if err != nil {
		t.Fatal(err)
	}
	return func(tok *gojwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k, ok := set.LookupKeyID(kid)
		if !ok {
			return nil, errors.New("unknown kid")
		}
		var raw any
		if err := jwk.Export(k, &raw); err != nil {
			return nil, err
		}
		switch raw := raw.(type) {
		case ed25519.PublicKey:
			return raw, nil
		case *ecdsa.PublicKey:
			return raw, nil
		case ecdsa.PublicKey:
			return &raw, nil
		case *rsa.PublicKey:
			return raw, nil
		case rsa.PublicKey:
			return &raw, nil
		}
		return nil, errors.New("unexpected key type")
	}
}

func TestInteropLatchToPeers(t *testing.T) {
	ctx := context.Background()
	for _, alg := range []accesstoken.Algorithm{accesstoken.EdDSA, accesstoken.ES256, accesstoken.RS256} {
		t.Run(string(alg), func(t *testing.T) {
			r := newInteropRing(t, alg)
			tok, err := r.iss.Issue(ctx, interopClaims())
			if err != nil {
				t.Fatal(err)
			}
			doc := r.kr.JWKS()

			// golang-jwt/jwt/v5.
			var mc gojwt.MapClaims
			parsed, err := gojwt.ParseWithClaims(tok, &mc, goJWTKeyfunc(t, doc),
				gojwt.WithValidMethods([]string{string(alg)}), gojwt.WithIssuer(interopIss),
				gojwt.WithAudience(interopAud), gojwt.WithExpirationRequired(), gojwt.WithIssuedAt())
			if err != nil || !parsed.Valid {
				t.Fatalf("golang-jwt: %v", err)
			}
			if mc["sub"] != "alice" || mc["sid"] != "ses_1" || mc["role"] != "admin" || parsed.Header["typ"] != "at+jwt" {
				t.Errorf("golang-jwt claims: %v header %v", mc, parsed.Header)
			}

			// lestrrat-go/jwx/v3.
			set, err := jwk.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			jt, err := jwxjwt.ParseString(tok, jwxjwt.WithKeySet(set), jwxjwt.WithIssuer(interopIss),
				jwxjwt.WithAudience(interopAud), jwxjwt.WithValidate(true))
			if err != nil {
				t.Fatalf("jwx: %v", err)
			}
			if sub, _ := jt.Subject(); sub != "alice" {
				t.Errorf("jwx subject %q", sub)
			}
			var role string
			if err := jt.Get("role", &role); err != nil || role != "admin" {
				t.Errorf("jwx role %q %v", role, err)
			}

			// Tampered: both refuse.
			bad := tamperSubject(t, tok, "alice", "mallory")
			if _, err := gojwt.Parse(bad, goJWTKeyfunc(t, doc), gojwt.WithValidMethods([]string{string(alg)})); !errors.Is(err, gojwt.ErrTokenSignatureInvalid) {
				t.Errorf("golang-jwt on a tampered token: %v", err)
			}
			if _, err := jwxjwt.ParseString(bad, jwxjwt.WithKeySet(set)); err == nil {
				t.Error("jwx accepted a tampered token")
			}
		})
	}
}

// peerSigningKey exports the keyring's active private key for the peers
// to sign with, by the same route an operator would: the test takes the
// key from a StaticKeys built on a key it generated itself.
func TestInteropPeersToLatch(t *testing.T) {
	ctx := context.Background()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	key, err := accesstoken.NewEd25519Key("", priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := accesstoken.NewStaticKeys(key)
	v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: keys, Issuer: interopIss, Audience: interopAud})
	now := time.Now()

	// golang-jwt signs.
	gt := gojwt.NewWithClaims(gojwt.SigningMethodEdDSA, gojwt.MapClaims{
		"iss": interopIss, "sub": "bob", "aud": []string{"other", interopAud},
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "sid": "ses_2", "scope": "read",
	})
	gt.Header["kid"] = key.ID()
	gt.Header["typ"] = "at+jwt"
	gs, err := gt.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, gs)
	if err != nil {
		t.Fatalf("golang-jwt token refused: %v", err)
	}
	if c.Subject != "bob" || c.SessionID != "ses_2" || string(c.Extra) != `{"scope":"read"}` {
		t.Errorf("claims %+v extra %s", c, c.Extra)
	}
	// Without typ at+jwt (golang-jwt's default "JWT") it is refused.
	gt.Header["typ"] = "JWT"
	gs2, _ := gt.SignedString(priv)
	if _, err := v.Verify(ctx, gs2); !errors.Is(err, accesstoken.ErrType) {
		t.Errorf("typ JWT: %v", err)
	}

	// jwx signs.
	jk, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	jt, _ := jwxjwt.NewBuilder().Issuer(interopIss).Subject("carol").Audience([]string{interopAud}).
		IssuedAt(now).Expiration(now.Add(5*time.Minute)).Claim("sid", "ses_3").Build()
	hdrs := jws.NewHeaders()
	hdrs.Set(jws.KeyIDKey, key.ID())
	hdrs.Set(jws.TypeKey, "at+jwt")
	js, err := jwxjwt.Sign(jt, jwxjwt.WithKey(jwa.EdDSA(), jk, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatal(err)
	}
	c, err = v.Verify(ctx, string(js))
	if err != nil {
		t.Fatalf("jwx token refused: %v\n%s", err, js)
	}
	if c.Subject != "carol" || c.SessionID != "ses_3" {
		t.Errorf("claims %+v", c)
	}

	// An HS256 token made by golang-jwt with the public key as secret
	// (algorithm confusion) is refused.
	ht := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"iss": interopIss, "sub": "x",
		"aud": interopAud, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix()})
	ht.Header["kid"] = key.ID()
	ht.Header["typ"] = "at+jwt"
	hs, _ := ht.SignedString([]byte(priv.Public().(ed25519.PublicKey)))
	if _, err := v.Verify(ctx, hs); !errors.Is(err, accesstoken.ErrAlgorithm) {
		t.Errorf("alg confusion: %v", err)
	}
}

// golang-jwt signs RS256 with the header latch expects; latch verifies it
// with the public key, and refuses the RS256->HS256 confusion.
func TestInteropPeersToLatchRS256(t *testing.T) {
	ctx := context.Background()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key, err := accesstoken.NewRS256Key("", &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := accesstoken.NewStaticKeys(key)
	v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: keys, Issuer: interopIss, Audience: interopAud})
	now := time.Now()
	claims := gojwt.MapClaims{"iss": interopIss, "sub": "dave", "aud": interopAud,
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "sid": "ses_4"}
	gt := gojwt.NewWithClaims(gojwt.SigningMethodRS256, claims)
	gt.Header["kid"], gt.Header["typ"] = key.ID(), "at+jwt"
	gs, err := gt.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(ctx, gs); err != nil || c.Subject != "dave" {
		t.Fatalf("golang-jwt RS256 token: %+v, %v", c, err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	ht := gojwt.NewWithClaims(gojwt.SigningMethodHS256, claims)
	ht.Header["kid"], ht.Header["typ"] = key.ID(), "at+jwt"
	for _, secret := range [][]byte{pemKey, der} {
		hs, _ := ht.SignedString(secret)
		if _, err := v.Verify(ctx, hs); !errors.Is(err, accesstoken.ErrAlgorithm) {
			t.Errorf("HS256 with the RSA public key as secret: %v", err)
		}
	}
	// PS256 under the same key is another algorithm: refused.
	pt := gojwt.NewWithClaims(gojwt.SigningMethodPS256, claims)
	pt.Header["kid"], pt.Header["typ"] = key.ID(), "at+jwt"
	ps, _ := pt.SignedString(priv)
	if _, err := v.Verify(ctx, ps); !errors.Is(err, accesstoken.ErrAlgorithm) {
		t.Errorf("PS256: %v", err)
	}
}

// TestInteropJWKSShape checks the published JWK members with a plain JSON
// decode, as a non-Go client would read them.
func TestInteropJWKSShape(t *testing.T) {
	r := newInteropRing(t, accesstoken.EdDSA)
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(r.kr.JWKS(), &doc); err != nil || len(doc.Keys) != 1 {
		t.Fatalf("%v %s", err, r.kr.JWKS())
	}
	k := doc.Keys[0]
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] == "" || k["d"] != "" {
		t.Errorf("JWK %v", k)
	}
	jk, _ := jwk.ParseKey([]byte(mustJSON(k)))
	tp, err := jk.Thumbprint(cryptoSHA256)
	if err != nil || b64url(tp) != k["kid"] {
		t.Errorf("kid is not the RFC 7638 thumbprint per jwx: %v", err)
	}

	rs := newInteropRing(t, accesstoken.RS256)
	if err := json.Unmarshal(rs.kr.JWKS(), &doc); err != nil || len(doc.Keys) != 1 {
		t.Fatalf("%v %s", err, rs.kr.JWKS())
	}
	k = doc.Keys[0]
	if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["e"] != "AQAB" || len(k["n"]) != 342 || k["d"] != "" || k["p"] != "" {
		t.Errorf("RSA JWK %v", k)
	}
	jk, _ = jwk.ParseKey([]byte(mustJSON(k)))
	if tp, err := jk.Thumbprint(cryptoSHA256); err != nil || b64url(tp) != k["kid"] {
		t.Errorf("RSA kid is not the RFC 7638 thumbprint per jwx: %v", err)
	}
}
