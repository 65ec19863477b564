package accesstoken

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testIss = "https://issuer.test"
	testAud = "api"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is a fake clock tests advance by hand.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *clock) Now() time.Time         { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration)    { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)        { c.ns.Store(t.UnixNano()) }
func seedKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

func mustKey(k *Key, err error) *Key {
	if err != nil {
		panic(err)
	}
	return k
}

type fixture struct {
	key   *Key // Ed25519 signing key
	clk   *clock
	v     *Verifier
	iss   *Issuer
	keys  *StaticKeys
	claim Claims
}

func newFixture(t testing.TB, cacheSize int) *fixture {
	t.Helper()
	f := &fixture{clk: newClock(t0)}
	f.key = mustKey(NewEd25519Key("", seedKey(1)))
	var err error
	if f.keys, err = NewStaticKeys(f.key); err != nil {
		t.Fatal(err)
	}
	if f.v, err = NewVerifier(VerifierConfig{Keys: f.keys, Issuer: testIss, Audience: testAud, Now: f.clk.Now, CacheSize: cacheSize}); err != nil {
		t.Fatal(err)
	}
	if f.iss, err = NewIssuer(IssuerConfig{Keys: f.keys, Issuer: testIss, Audience: testAud, Now: f.clk.Now}); err != nil {
		t.Fatal(err)
	}
	f.claim = Claims{Subject: "user-1", ExpiresAt: t0.Add(10 * time.Minute), IssuedAt: t0,
		ID: "jti-1", SessionID: "ses_abc", Extra: []byte(`{"role":"admin","n":[1,2]}`)}
	return f
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// forge builds a compact JWS from raw header and payload JSON, signed by
// sign (which gets the signing input).
func forge(header, payload string, sign func([]byte) []byte) string {
	in := enc(header) + "." + enc(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
}

func edSigner(k ed25519.PrivateKey) func([]byte) []byte {
	return func(m []byte) []byte { return ed25519.Sign(k, m) }
}

func hmacSigner(secret []byte) func([]byte) []byte {
	return func(m []byte) []byte {
		h := hmac.New(sha256.New, secret)
		h.Write(m)
		return h.Sum(nil)
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, -1)
	ctx := context.Background()
	tok, err := f.iss.Issue(ctx, f.claim)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if want := `{"alg":"EdDSA","kid":"` + f.key.ID() + `","typ":"at+jwt"}`; string(hdr) != want {
		t.Errorf("header = %s, want %s", hdr, want)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	wantPayload := `{"iss":"https://issuer.test","sub":"user-1","aud":"api","exp":1893456600,"iat":1893456000,"jti":"jti-1","sid":"ses_abc","role":"admin","n":[1,2]}`
	if string(payload) != wantPayload {
		t.Errorf("payload = %s\nwant      %s", payload, wantPayload)
	}
	got, err := f.v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	want := f.claim
	want.Issuer, want.Audience = testIss, testAud
	if !claimsEqual(got, want) {
		t.Errorf("claims = %+v\nwant %+v", got, want)
	}
	tok2, _ := f.iss.Issue(ctx, f.claim)
	if tok2 != tok {
		t.Error("Issue is not deterministic")
	}
}

func claimsEqual(a, b Claims) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && a.Audience == b.Audience &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.IssuedAt.Equal(b.IssuedAt) && a.NotBefore.Equal(b.NotBefore) &&
		a.ID == b.ID && a.SessionID == b.SessionID && bytes.Equal(a.Extra, b.Extra)
}

func TestRoundTripAlgorithms(t *testing.T) {
	ctx := context.Background()
	ecPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Key{
		mustKey(NewEd25519Key("ed", seedKey(2))),
		mustKey(NewES256Key("", ecPriv)),
		mustKey(NewRS256Key("", testRSAKey())),
		mustKey(NewHS256Key("", bytes.Repeat([]byte{9}, 32))),
	} {
		t.Run(string(k.Algorithm()), func(t *testing.T) {
			keys, _ := NewStaticKeys(k)
			iss, _ := NewIssuer(IssuerConfig{Keys: keys, Issuer: testIss, Audience: testAud})
			c := Claims{Subject: "s\"ü\n", IssuedAt: time.Now(), NotBefore: time.Now()}
			c.ExpiresAt = c.IssuedAt.Add(time.Minute)
			a, err := iss.Issue(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := iss.Issue(ctx, c)
			if a != b {
				t.Error("not deterministic")
			}
			v, _ := NewVerifier(VerifierConfig{Keys: keys, Issuer: testIss, Audience: testAud})
			got, err := v.Verify(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != c.Subject || got.NotBefore.Unix() != c.NotBefore.Unix() {
				t.Errorf("got %+v", got)
			}
			// Public verification key only.
			pkeys, _ := NewStaticKeys(k.Public())
			pv, _ := NewVerifier(VerifierConfig{Keys: pkeys, Issuer: testIss, Audience: testAud})
			if _, err := pv.Verify(ctx, a); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestHS256WeakSecret(t *testing.T) {
	_, err := NewHS256Key("", make([]byte, 31))
	if !errors.Is(err, ErrWeakSecret) || !strings.Contains(err.Error(), "openssl rand") {
		t.Fatalf("err = %v", err)
	}
	k := mustKey(NewHS256Key("", make([]byte, 32)))
	if got := string(JWKS(k)); got != `{"keys":[]}` {
		t.Errorf("HS256 key in JWKS: %s", got)
	}
}

// TestAttacks is the attack table: one row per attack, each a token that
// must be refused with a specific error.
func TestAttacks(t *testing.T) {
	f := newFixture(t, -1)
	priv := seedKey(1)
	kid := f.key.ID()
	sign := edSigner(priv)
	now := t0.Unix()
	hdr := `{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt"}`
	claims := func(extra string) string {
		return `{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + extra + `}`
	}
	good := forge(hdr, claims(""), sign)
	withHdr := func(h string) string { return forge(h, claims(""), sign) }
	withClaims := func(c string) string { return forge(hdr, c, sign) }
	fakeSig := strings.Repeat("A", 86)
	other := seedKey(99)
	pubAsSecret := []byte(priv.Public().(ed25519.PublicKey))
	big := withClaims(claims(`,"pad":"` + strings.Repeat("x", 7000) + `"`))
	sigStart := strings.LastIndexByte(good, '.') + 1
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	rows := []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"valid", good, nil},
		{"alg none, empty signature", enc(`{"alg":"none","kid":"`+kid+`","typ":"at+jwt"}`) + "." + enc(claims("")) + ".", ErrMalformed},
		{"alg none", enc(`{"alg":"none","kid":"`+kid+`","typ":"at+jwt"}`) + "." + enc(claims("")) + "." + fakeSig, ErrAlgorithm},
		{"alg None", enc(`{"alg":"None","kid":"`+kid+`","typ":"at+jwt"}`) + "." + enc(claims("")) + "." + fakeSig, ErrAlgorithm},
		{"alg NONE", enc(`{"alg":"NONE","kid":"`+kid+`","typ":"at+jwt"}`) + "." + enc(claims("")) + "." + fakeSig, ErrAlgorithm},
		{"alg nOnE escaped", enc(`{"alg":"n\u004fnE","kid":"`+kid+`","typ":"at+jwt"}`) + "." + enc(claims("")) + "." + fakeSig, ErrAlgorithm},
		{"alg missing", withHdr(`{"kid":"` + kid + `","typ":"at+jwt"}`), ErrAlgorithm},
		{"alg null", withHdr(`{"alg":null,"kid":"` + kid + `","typ":"at+jwt"}`), ErrMalformed},
		{"HS256 with Ed25519 public key as secret", forge(`{"alg":"HS256","kid":"`+kid+`","typ":"at+jwt"}`, claims(""), hmacSigner(pubAsSecret)), ErrAlgorithm},
		{"ES256 header on Ed25519 key", withHdr(`{"alg":"ES256","kid":"` + kid + `","typ":"at+jwt"}`), ErrAlgorithm},
		{"alg eddsa lower case", withHdr(`{"alg":"eddsa","kid":"` + kid + `","typ":"at+jwt"}`), ErrAlgorithm},
		{"unknown kid", forge(`{"alg":"EdDSA","kid":"nope","typ":"at+jwt"}`, claims(""), edSigner(other)), ErrUnknownKey},
		{"kid missing", withHdr(`{"alg":"EdDSA","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid ../", withHdr(`{"alg":"EdDSA","kid":"../../etc/passwd","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid ..", withHdr(`{"alg":"EdDSA","kid":"a..b","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid backslash", withHdr(`{"alg":"EdDSA","kid":"a\\b","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid query", withHdr(`{"alg":"EdDSA","kid":"` + kid + `?x=1","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid fragment", withHdr(`{"alg":"EdDSA","kid":"` + kid + `#x","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid percent", withHdr(`{"alg":"EdDSA","kid":"%2e%2e","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid control char", withHdr(`{"alg":"EdDSA","kid":"a\u0001b","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid space", withHdr(`{"alg":"EdDSA","kid":"a b","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid empty", withHdr(`{"alg":"EdDSA","kid":"","typ":"at+jwt"}`), ErrUnknownKey},
		{"kid number", withHdr(`{"alg":"EdDSA","kid":1,"typ":"at+jwt"}`), ErrMalformed},
		{"embedded jwk", forge(`{"alg":"EdDSA","kid":"`+kid+`","typ":"at+jwt","jwk":{"kty":"OKP","crv":"Ed25519","x":"`+enc(string(other.Public().(ed25519.PublicKey)))+`"}}`, claims(""), edSigner(other)), ErrHeader},
		{"jku", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","jku":"https://evil.test/jwks"}`), ErrHeader},
		{"x5u", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","x5u":"https://evil.test/c"}`), ErrHeader},
		{"x5c", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","x5c":["MIIB"]}`), ErrHeader},
		{"jwk escaped name", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","\u006awk":{}}`), ErrHeader},
		{"crit", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","crit":["exp"],"exp":1}`), ErrHeader},
		{"crit empty", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","crit":[]}`), ErrHeader},
		{"b64 false", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","b64":false}`), ErrHeader},
		{"typ JWT", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"JWT"}`), ErrType},
		{"typ missing", withHdr(`{"alg":"EdDSA","kid":"` + kid + `"}`), ErrType},
		{"typ empty", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":""}`), ErrType},
		{"typ at+jwt; suffix", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwtx"}`), ErrType},
		{"typ application/at+jwt", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"application/at+jwt"}`), nil},
		{"typ AT+JWT", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"AT+JWT"}`), nil},
		{"unknown header member ignored", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","cty":"x","y":[1,{"a":null}]}`), nil},
		{"exp missing", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","iat":` + itoa(now) + `}`), ErrMissingClaim},
		{"exp past", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now-1) + `,"iat":` + itoa(now-600) + `}`), ErrExpired},
		{"exp now", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now) + `,"iat":` + itoa(now-600) + `}`), ErrExpired},
		{"exp string", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":"` + itoa(now+60) + `","iat":` + itoa(now) + `}`), ErrMalformed},
		{"exp negative", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":-5,"iat":` + itoa(now) + `}`), ErrMalformed},
		{"exp huge", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":1e300,"iat":` + itoa(now) + `}`), ErrMalformed},
		{"exp fractional ok", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now+60) + `.5,"iat":` + itoa(now) + `}`), nil},
		{"nbf beyond leeway", withClaims(claims(`,"nbf":` + itoa(now+31))), ErrNotYetValid},
		{"nbf within leeway", withClaims(claims(`,"nbf":` + itoa(now+29))), nil},
		{"iat beyond leeway", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now+31) + `}`), ErrNotYetValid},
		{"iat within leeway", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now+29) + `}`), nil},
		{"iat missing", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now+600) + `}`), ErrMissingClaim},
		{"wrong iss", withClaims(`{"iss":"https://evil.test","sub":"u","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrIssuer},
		{"iss missing", withClaims(`{"sub":"u","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrMissingClaim},
		{"wrong aud", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":"other","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrAudience},
		{"aud array with ours", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":["x","api"],"exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), nil},
		{"aud array without ours", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":["x","y"],"exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrAudience},
		{"aud empty array", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":[],"exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrAudience},
		{"aud array with number", withClaims(`{"iss":"` + testIss + `","sub":"u","aud":["api",1],"exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrMalformed},
		{"sub missing", withClaims(`{"iss":"` + testIss + `","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrMissingClaim},
		{"sub number", withClaims(`{"iss":"` + testIss + `","sub":1,"aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `}`), ErrMalformed},
		{"too large", big, ErrTooLarge},
		{"two segments", enc(hdr) + "." + enc(claims("")), ErrMalformed},
		{"four segments", good + ".AAAA", ErrMalformed},
		{"empty header", "." + enc(claims("")) + "." + fakeSig, ErrMalformed},
		{"empty payload", enc(hdr) + ".." + fakeSig, ErrMalformed},
		{"empty", "", ErrMalformed},
		{"padding", enc(hdr) + "=." + enc(claims("")) + "." + fakeSig, ErrMalformed},
		{"std alphabet", good[:sigStart] + "+" + good[sigStart+1:], ErrMalformed},
		{"newline", good[:10] + "\n" + good[10:], ErrMalformed},
		{"non-canonical trailing bits", nonCanonical(good), ErrMalformed},
		{"header not JSON", withHdr(`alg=EdDSA`), ErrMalformed},
		{"header array", withHdr(`["alg","EdDSA"]`), ErrMalformed},
		{"header trailing garbage", withHdr(hdr + `x`), ErrMalformed},
		{"header duplicate alg", withHdr(`{"alg":"EdDSA","kid":"` + kid + `","typ":"at+jwt","alg":"none"}`), ErrMalformed},
		{"header invalid UTF-8", withHdr("{\"alg\":\"EdDSA\",\"kid\":\"" + kid + "\",\"typ\":\"at+jwt\",\"x\":\"\xff\"}"), ErrMalformed},
		{"claims duplicate exp", withClaims(claims(`,"exp":` + itoa(now+9999))), ErrMalformed},
		{"claims duplicate escaped exp", withClaims(claims(`,"\u0065xp":` + itoa(now+9999))), ErrMalformed},
		{"claims duplicate extra", withClaims(claims(`,"role":"a","role":"b"`)), ErrMalformed},
		{"claims lone surrogate", withClaims(claims(`,"x":"\ud800"`)), ErrMalformed},
		{"claims not an object", withClaims(`[1]`), ErrMalformed},
		{"claims trailing data", withClaims(claims("") + `{}`), ErrMalformed},
		{"claims deep nesting", withClaims(claims(`,"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40))), ErrMalformed},
		{"signature bit flipped", flip(good, sigStart), ErrSignature},
		{"payload bit flipped", flip(good, len(enc(hdr))+5), ErrSignature},
		{"signature of other key", forge(hdr, claims(""), edSigner(other)), ErrSignature},
		{"truncated", good[:len(good)-1], ErrSignature},
		{"truncated to header", good[:len(enc(hdr))], ErrMalformed},
		{"signature too long", good + "AAAA", ErrSignature},
	}
	ctx := context.Background()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			c, err := f.v.Verify(ctx, r.token)
			if r.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, r.want) {
				t.Fatalf("err = %v, want %v", err, r.want)
			}
			if c.Subject != "" {
				t.Fatal("claims returned with an error")
			}
			if r.token != "" && len(r.token) > 20 && strings.Contains(err.Error(), r.token[len(r.token)-20:]) {
				t.Fatal("error contains token material")
			}
		})
	}
}

// nonCanonical changes the last character of the signature so the unused
// low bits are set: same bytes under a lenient decoder, refused by a strict one.
func nonCanonical(tok string) string {
	// 64 bytes → 86 chars; the last char carries 4 bits of data + 2 zero bits.
	last := tok[len(tok)-1]
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alpha, last)
	return tok[:len(tok)-1] + string(alpha[i|1])
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestRFC8037Vector(t *testing.T) {
	// RFC 8037 appendix A.1–A.4.
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	d, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	pub := mustKey(NewEd25519Key("", ed25519.PublicKey(x)))
	if got := pub.Thumbprint(); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("thumbprint (A.3) = %s", got)
	}
	const jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
	payload, err := VerifySignature(jws, pub)
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != "Example of Ed25519 signing" {
		t.Errorf("payload = %q", payload)
	}
	// Signing reproduces the vector (Ed25519 is deterministic).
	priv := ed25519.NewKeyFromSeed(d)
	if sig := ed25519.Sign(priv, []byte(jws[:strings.LastIndexByte(jws, '.')])); base64.RawURLEncoding.EncodeToString(sig) != jws[strings.LastIndexByte(jws, '.')+1:] {
		t.Error("signature differs from A.4")
	}
	// The default verifier refuses it: no typ, kid or claims.
	keys, _ := NewStaticKeys(pub)
	v, _ := NewVerifier(VerifierConfig{Keys: keys, Issuer: testIss, Audience: testAud})
	if _, err := v.Verify(context.Background(), jws); err == nil {
		t.Error("profile verifier accepted a token without typ")
	}
	// A flipped bit fails the low-level check too.
	if _, err := VerifySignature(jws[:40]+"x"+jws[41:], pub); err == nil {
		t.Error("tampered vector verified")
	}
	other := mustKey(NewEd25519Key("", seedKey(5).Public().(ed25519.PublicKey)))
	if _, err := VerifySignature(jws, other); !errors.Is(err, ErrSignature) {
		t.Errorf("other key: %v", err)
	}
}

func TestCheckExtraClaims(t *testing.T) {
	ok := []string{``, `{}`, ` { "role" : "admin" , "scope":"a b", "n": [1, {"x": null}] } `, `{"roles":["a"]}`}
	for _, s := range ok {
		if err := CheckExtraClaims([]byte(s)); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := []string{`[]`, `"x"`, `{`, `{"a":1,}`, `{"a":1}x`, `{"a":1,"a":2}`, `{"sub":"x"}`, `{"\u0073ub":"x"}`,
		`{"sid":"x"}`, `{"cnf":{}}`, `{"client_id":"x"}`, `{"typ":"x"}`, `{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
		`{"a":"` + strings.Repeat("x", MaxExtraClaims) + `"}`}
	for _, s := range bad {
		err := CheckExtraClaims([]byte(s))
		var ee *ExtraClaimsError
		if !errors.Is(err, ErrExtraClaims) || !errors.As(err, &ee) {
			t.Errorf("%.40q: err = %v", s, err)
		}
	}
	// Extra with whitespace is compacted when issued.
	f := newFixture(t, -1)
	c := f.claim
	c.Extra = []byte(" {\n \"role\" : \"a b\" } ")
	tok, err := f.iss.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.v.Verify(context.Background(), tok)
	if err != nil || string(got.Extra) != `{"role":"a b"}` {
		t.Errorf("extra = %s, %v", got.Extra, err)
	}
	c.Extra = []byte(`{"exp":1}`)
	if _, err := f.iss.Issue(context.Background(), c); !errors.Is(err, ErrBadClaims) {
		t.Errorf("reserved claim issued: %v", err)
	}
}

func TestIssueRefusesBadClaims(t *testing.T) {
	f := newFixture(t, -1)
	ctx := context.Background()
	for name, c := range map[string]Claims{
		"no subject":   {ExpiresAt: t0.Add(time.Minute), IssuedAt: t0},
		"exp <= iat":   {Subject: "u", ExpiresAt: t0, IssuedAt: t0},
		"invalid utf8": {Subject: "u\xff", ExpiresAt: t0.Add(time.Minute), IssuedAt: t0},
	} {
		if _, err := f.iss.Issue(ctx, c); !errors.Is(err, ErrBadClaims) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Defaults: iat from the clock, exp from TTL.
	tok, err := f.iss.Issue(ctx, Claims{Subject: "u"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.v.Verify(ctx, tok)
	if err != nil || !c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("%+v %v", c, err)
	}
}

func TestOnlineAndCache(t *testing.T) {
	f := newFixture(t, 100)
	ctx := context.Background()
	var calls atomic.Int32
	revoked := false
	v, _ := NewVerifier(VerifierConfig{Keys: f.keys, Issuer: testIss, Audience: testAud, Now: f.clk.Now,
		Online: func(ctx context.Context, c Claims) error {
			calls.Add(1)
			if revoked {
				return ErrRevoked
			}
			return nil
		}})
	tok, _ := f.iss.Issue(ctx, f.claim)
	for range 3 {
		c, err := v.Verify(ctx, tok)
		if err != nil || c.SessionID != "ses_abc" {
			t.Fatal(c, err)
		}
		c.Extra[0] = 'X' // callers may modify their copy
	}
	if calls.Load() != 3 {
		t.Errorf("online hook ran %d times, want 3 (also on cache hits)", calls.Load())
	}
	revoked = true
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked session: %v", err)
	}
	// No sid in online mode: refused.
	c := f.claim
	c.SessionID = ""
	tok2, _ := f.iss.Issue(ctx, c)
	if _, err := v.Verify(ctx, tok2); !errors.Is(err, ErrMissingClaim) {
		t.Errorf("no sid: %v", err)
	}
	// Cache honours exp.
	v2, _ := NewVerifier(VerifierConfig{Keys: f.keys, Issuer: testIss, Audience: testAud, Now: f.clk.Now, CacheSize: 4})
	if _, err := v2.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(10 * time.Minute)
	if _, err := v2.Verify(ctx, tok); !errors.Is(err, ErrExpired) {
		t.Errorf("cached token after exp: %v", err)
	}
	// The cache stays bounded.
	f.clk.Set(t0)
	for i := range 200 {
		c := f.claim
		c.ID = itoa(int64(i))
		tk, _ := f.iss.Issue(ctx, c)
		if _, err := v2.Verify(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range v2.cache.shards {
		n += len(v2.cache.shards[i].m)
	}
	if n > cacheShards*v2.cache.perShard {
		t.Errorf("cache holds %d entries", n)
	}
}

// TestCacheDropsRemovedKey: a cached token stops verifying once its key
// leaves the key set.
func TestCacheDropsRemovedKey(t *testing.T) {
	f := newFixture(t, 100)
	ctx := context.Background()
	ks := &swapKeys{}
	ks.set(f.keys)
	v, _ := NewVerifier(VerifierConfig{Keys: ks, Issuer: testIss, Audience: testAud, Now: f.clk.Now})
	tok, _ := f.iss.Issue(ctx, f.claim)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	empty, _ := NewStaticKeys()
	ks.set(empty)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after key removal: %v", err)
	}
}

type swapKeys struct{ p atomic.Pointer[StaticKeys] }

func (s *swapKeys) set(k *StaticKeys) { s.p.Store(k) }
func (s *swapKeys) VerificationKey(ctx context.Context, kid string) (*Key, error) {
	return s.p.Load().VerificationKey(ctx, kid)
}

func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	f := newFixture(t, -1)
	hk := mustKey(NewHS256Key("", bytes.Repeat([]byte{3}, 32)))
	keys, _ := NewStaticKeys(hk)
	iss, _ := NewIssuer(IssuerConfig{Keys: keys, Issuer: testIss, Audience: testAud})
	v, _ := NewVerifier(VerifierConfig{Keys: keys, Issuer: testIss, Audience: testAud, Now: f.clk.Now, CacheSize: -1})
	c := f.claim
	c.Extra = nil
	tok, _ := iss.Issue(context.Background(), c)
	ctx := context.Background()
	// sub, jti and sid strings are the only allocations.
	if n := testing.AllocsPerRun(100, func() {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}); n > 3 {
		t.Errorf("HS256 verify: %v allocs, want <= 3", n)
	}
	bad := tok[:len(tok)-2] + "AA"
	if n := testing.AllocsPerRun(100, func() { v.Verify(ctx, bad) }); n > 0 {
		t.Errorf("rejection: %v allocs, want 0", n)
	}
}

func TestConfigErrors(t *testing.T) {
	keys, _ := NewStaticKeys()
	for _, cfg := range []VerifierConfig{{}, {Keys: keys}, {Keys: keys, Issuer: "x"}, {Keys: keys, Issuer: "x", Audience: "a", Leeway: time.Hour}} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("NewVerifier(%+v) accepted", cfg)
		}
	}
	if _, err := NewIssuer(IssuerConfig{}); err == nil {
		t.Error("NewIssuer accepted empty config")
	}
	if _, err := NewEd25519Key("a/b", seedKey(1)); err == nil {
		t.Error("kid with / accepted")
	}
	pubOnly, _ := NewStaticKeys(mustKey(NewEd25519Key("", seedKey(1).Public())))
	iss, _ := NewIssuer(IssuerConfig{Keys: pubOnly, Issuer: "x", Audience: "a"})
	if _, err := iss.Issue(context.Background(), Claims{Subject: "u"}); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("signing with a public key: %v", err)
	}
	if s := mustKey(NewHS256Key("k", bytes.Repeat([]byte("s"), 32))).String(); strings.Contains(s, "sss") {
		t.Errorf("String leaks the secret: %s", s)
	}
}
