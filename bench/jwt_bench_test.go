package bench

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
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"runtime"
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
// claims under ES256, RS256 and HS256) with latch and with the peers, each
// configured to check signature, algorithm, iss, aud and exp. latch runs with its
// verified-token cache off (Latch) and on (LatchCached, same token again).
//
//	go test -run '^$' -bench 'JWTVerify' -count=6 . | tee jwt.txt && benchstat jwt.txt

const cryptoSHA256 = crypto.SHA256

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// benchAlgs are the algorithms the JWT benchmarks measure.
var benchAlgs = []accesstoken.Algorithm{accesstoken.EdDSA, accesstoken.ES256, accesstoken.RS256, accesstoken.HS256}

type benchSetup struct {
	tok    string
	pub    any         // ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey or []byte secret
	raw    func() bool // the bare signature check of tok, hashing included
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
	case accesstoken.ES256:
		priv, perr := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed)
		if perr != nil {
			b.Fatal(perr)
		}
		k, err = accesstoken.NewES256Key("", priv)
		s.pub, s.method, s.jwa, s.jose = &priv.PublicKey, gojwt.SigningMethodES256, jwa.ES256(), jose.ES256
	case accesstoken.RS256:
		priv, gerr := rsa.GenerateKey(rand.Reader, accesstoken.RSAKeyBits)
		if gerr != nil {
			b.Fatal(gerr)
		}
		k, err = accesstoken.NewRS256Key("", priv)
		s.pub, s.method, s.jwa, s.jose = &priv.PublicKey, gojwt.SigningMethodRS256, jwa.RS256(), jose.RS256
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
	s.raw = rawCheck(alg, s.pub, s.tok)
	if !s.raw() {
		b.Fatal("raw check refused latch's token")
	}
	return s
}

// rawCheck returns the standard library's signature check of tok alone:
// ed25519.Verify, SHA-256 + ecdsa.VerifyASN1 (the r‖s to DER conversion
// done once, outside), SHA-256 + rsa.VerifyPKCS1v15, or HMAC-SHA256.
func rawCheck(alg accesstoken.Algorithm, pub any, tok string) func() bool {
	i := strings.LastIndexByte(tok, '.')
	msg := []byte(tok[:i])
	sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
	switch alg {
	case accesstoken.EdDSA:
		return func() bool { return ed25519.Verify(pub.(ed25519.PublicKey), msg, sig) }
	case accesstoken.ES256:
		var rs struct{ R, S *big.Int }
		rs.R, rs.S = new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		der, _ := asn1.Marshal(rs)
		return func() bool {
			d := sha256.Sum256(msg)
			return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], der)
		}
	case accesstoken.RS256:
		return func() bool {
			d := sha256.Sum256(msg)
			return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, d[:], sig) == nil
		}
	}
	return func() bool {
		m := hmac.New(sha256.New, pub.([]byte))
		m.Write(msg)
		return hmac.Equal(m.Sum(nil), sig)
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	for _, alg := range benchAlgs {
		s := newBenchSetup(b, alg)
		ctx := context.Background()

		b.Run(string(alg)+"/Raw", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !s.raw() {
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
// batches on one locked OS thread, measures each batch in that thread's
// CPU time, and reports each one's total relative to the raw check, and
// each one's CPU time per verification (µs-cpu/op). Interleaving and CPU
// time keep the figures meaningful on a shared, busy machine, where wall
// time includes the time other processes hold the core.
//
//	go test -run '^$' -bench 'JWTRatio' -count=6 . | tee ratio.txt && benchstat ratio.txt
func BenchmarkJWTRatio(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(string(alg), func(b *testing.B) {
			s := newBenchSetup(b, alg)
			ctx := context.Background()
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
				{"raw", func() { s.raw() }},
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
			// Batches of at least tens of µs, so the clock reads are noise.
			batch := map[accesstoken.Algorithm]int{accesstoken.HS256: 64, accesstoken.RS256: 4}[alg]
			if batch == 0 {
				batch = 8
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			total := make([]time.Duration, len(fns))
			round, n := 0, 0
			for b.Loop() {
				for j := range fns {
					k := (j + round) % len(fns)
					start := threadCPU()
					for range batch {
						fns[k].fn()
					}
					total[k] += threadCPU() - start
				}
				round++
				n += batch
			}
			for k := 1; k < len(fns); k++ {
				b.ReportMetric(float64(total[k])/float64(total[0]), fns[k].name+"/raw")
			}
			for k := range fns {
				b.ReportMetric(float64(total[k].Microseconds())/float64(n), fns[k].name+"-µs-cpu/op")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
