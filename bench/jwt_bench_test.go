package bench

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/latch-sessions/latch/accesstoken"
)

// BenchmarkJWTVerify verifies one latch access token (EdDSA, and the same
// claims under HS256) with latch and with the peers, each configured to
// check signature, algorithm, iss, aud and exp. latch runs with its
// verified-token cache off (Latch) and on (LatchCached, same token again).
//
//	go test -run '^$' -bench 'JWTVerify' -count=6 . | tee jwt.txt && benchstat jwt.txt

const cryptoSHA256 = crypto.SHA256

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

type benchSetup struct {
	tok    string
	pub    any // ed25519.PublicKey or []byte secret
	keys   *accesstoken.StaticKeys
	method gojwt.SigningMethod
	jwa    jwa.SignatureAlgorithm
	jose   jose.SignatureAlgorithm
}

func newBenchSetup(b *testing.B, alg accesstoken.Algorithm) *benchSetup {
	var k *accesstoken.Key
	var err error
	s := &benchSetup{}
	seed := make([]byte, 32)
	seed[0] = 1
	switch alg {
	case accesstoken.EdDSA:
		priv := ed25519.NewKeyFromSeed(seed)
		k, err = accesstoken.NewEd25519Key("", priv)
		s.pub, s.method, s.jwa, s.jose = priv.Public(), gojwt.SigningMethodEdDSA, jwa.EdDSA(), jose.EdDSA
	case accesstoken.HS256:
		k, err = accesstoken.NewHS256Key("", seed)
		s.pub, s.method, s.jwa, s.jose = seed, gojwt.SigningMethodHS256, jwa.HS256(), jose.HS256
	}
	if err != nil {
		b.Fatal(err)
	}
	s.keys, _ = accesstoken.NewStaticKeys(k)
	iss, _ := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: s.keys, Issuer: interopIss, Audience: interopAud})
	now := time.Now()
	s.tok, err = iss.Issue(context.Background(), accesstoken.Claims{Subject: "user-1234567890", IssuedAt: now,
		ExpiresAt: now.Add(time.Hour), ID: "4pTfZ0mBq3wz1xY0", SessionID: "ses_AAECAwQFBgcICQoLDA0ODw",
		Extra: []byte(`{"role":"admin"}`)})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkJWTVerify(b *testing.B) {
	for _, alg := range []accesstoken.Algorithm{accesstoken.EdDSA, accesstoken.HS256} {
		s := newBenchSetup(b, alg)
		ctx := context.Background()
		i := strings.LastIndexByte(s.tok, '.')
		msg := []byte(s.tok[:i])
		sig, _ := base64.RawURLEncoding.DecodeString(s.tok[i+1:])

		b.Run(string(alg)+"/Raw", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var ok bool
				if alg == accesstoken.EdDSA {
					ok = ed25519.Verify(s.pub.(ed25519.PublicKey), msg, sig)
				} else {
					m := hmac.New(sha256.New, s.pub.([]byte))
					m.Write(msg)
					ok = hmac.Equal(m.Sum(nil), sig)
				}
				if !ok {
					b.Fatal("bad signature")
				}
			}
		})
		b.Run(string(alg)+"/Latch", func(b *testing.B) {
			v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: s.keys, Issuer: interopIss, Audience: interopAud, CacheSize: -1})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, s.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(alg)+"/LatchCached", func(b *testing.B) {
			v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: s.keys, Issuer: interopIss, Audience: interopAud})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, s.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(alg)+"/GolangJWT", func(b *testing.B) {
			p := gojwt.NewParser(gojwt.WithValidMethods([]string{s.method.Alg()}), gojwt.WithIssuer(interopIss),
				gojwt.WithAudience(interopAud), gojwt.WithExpirationRequired())
			kf := func(*gojwt.Token) (any, error) { return s.pub, nil }
			b.ReportAllocs()
			for b.Loop() {
				var c gojwt.MapClaims
				if _, err := p.ParseWithClaims(s.tok, &c, kf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(alg)+"/GoJose", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				t, err := josejwt.ParseSigned(s.tok, []jose.SignatureAlgorithm{s.jose})
				if err != nil {
					b.Fatal(err)
				}
				var c josejwt.Claims
				extra := map[string]any{}
				if err := t.Claims(s.pub, &c, &extra); err != nil {
					b.Fatal(err)
				}
				if err := c.Validate(josejwt.Expected{Issuer: interopIss, AnyAudience: josejwt.Audience{interopAud}}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(alg)+"/JWX", func(b *testing.B) {
			var raw any = s.pub
			jk, err := jwk.Import(raw)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jwxjwt.ParseString(s.tok, jwxjwt.WithKey(s.jwa, jk), jwxjwt.WithIssuer(interopIss),
					jwxjwt.WithAudience(interopAud)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJWTRatio runs the raw signature check, latch (cache off),
// golang-jwt, go-jose and jwx on the same token in rotating, interleaved
// batches and reports each one's total time relative to the raw check.
// Interleaving keeps the ratios meaningful on a shared, busy machine.
//
//	go test -run '^$' -bench 'JWTRatio' -count=6 . | tee ratio.txt && benchstat ratio.txt
func BenchmarkJWTRatio(b *testing.B) {
	for _, alg := range []accesstoken.Algorithm{accesstoken.EdDSA, accesstoken.HS256} {
		b.Run(string(alg), func(b *testing.B) {
			s := newBenchSetup(b, alg)
			ctx := context.Background()
			i := strings.LastIndexByte(s.tok, '.')
			msg := []byte(s.tok[:i])
			sig, _ := base64.RawURLEncoding.DecodeString(s.tok[i+1:])
			v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: s.keys, Issuer: interopIss, Audience: interopAud, CacheSize: -1})
			gp := gojwt.NewParser(gojwt.WithValidMethods([]string{s.method.Alg()}), gojwt.WithIssuer(interopIss),
				gojwt.WithAudience(interopAud), gojwt.WithExpirationRequired())
			kf := func(*gojwt.Token) (any, error) { return s.pub, nil }
			jk, err := jwk.Import(s.pub)
			if err != nil {
				b.Fatal(err)
			}
			must := func(err error) {
				if err != nil {
					b.Fatal(err)
				}
			}
			fns := []struct {
				name string
				fn   func()
			}{
				{"raw", func() {
					if alg == accesstoken.EdDSA {
						ed25519.Verify(s.pub.(ed25519.PublicKey), msg, sig)
						return
					}
					m := hmac.New(sha256.New, s.pub.([]byte))
					m.Write(msg)
					hmac.Equal(m.Sum(nil), sig)
				}},
				{"latch", func() { _, err := v.Verify(ctx, s.tok); must(err) }},
				{"golangjwt", func() {
					var c gojwt.MapClaims
					_, err := gp.ParseWithClaims(s.tok, &c, kf)
					must(err)
				}},
				{"gojose", func() {
					t, err := josejwt.ParseSigned(s.tok, []jose.SignatureAlgorithm{s.jose})
					must(err)
					var c josejwt.Claims
					extra := map[string]any{}
					must(t.Claims(s.pub, &c, &extra))
					must(c.Validate(josejwt.Expected{Issuer: interopIss, AnyAudience: josejwt.Audience{interopAud}}))
				}},
				{"jwx", func() {
					_, err := jwxjwt.ParseString(s.tok, jwxjwt.WithKey(s.jwa, jk), jwxjwt.WithIssuer(interopIss),
						jwxjwt.WithAudience(interopAud))
					must(err)
				}},
			}
			const batch = 4
			total := make([]time.Duration, len(fns))
			round := 0
			for b.Loop() {
				for j := range fns {
					k := (j + round) % len(fns)
					start := time.Now()
					for range batch {
						fns[k].fn()
					}
					total[k] += time.Since(start)
				}
				round++
			}
			for k := 1; k < len(fns); k++ {
				b.ReportMetric(float64(total[k])/float64(total[0]), fns[k].name+"/raw")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
