package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"sync"
)

// Algorithm is a JWS signature algorithm latch signs and verifies with.
type Algorithm string

// The algorithms latch supports. EdDSA means Ed25519 (RFC 8037); RS256
// is RSASSA-PKCS1-v1_5 with SHA-256, for verifiers (Node's jsonwebtoken,
// several API gateways) that support neither EdDSA nor ES256.
const (
	EdDSA Algorithm = "EdDSA"
	ES256 Algorithm = "ES256"
	RS256 Algorithm = "RS256"
	HS256 Algorithm = "HS256"
)

// RSA key sizes. NewRS256Key and ParseJWKS refuse moduli outside
// MinRSABits..MaxRSABits (the upper bound keeps a hostile JWKS from making
// every verification expensive); a Keyring generates RSAKeyBits.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
	RSAKeyBits = 2048
)

// MinHMACSecret is the shortest HS256 secret NewHS256Key accepts.
const MinHMACSecret = 32

// MaxKeyIDLen is the longest kid latch accepts.
const MaxKeyIDLen = 128

// Key is one key with its algorithm and key ID: a public verification key,
// an asymmetric signing key (which also verifies), or an HS256 secret.
// A Key is immutable and safe for concurrent use.
type Key struct {
	kid     string
	alg     Algorithm
	edPub   ed25519.PublicKey
	edPriv  ed25519.PrivateKey
	ecPub   *ecdsa.PublicKey
	ecPriv  *ecdsa.PrivateKey
	rsaPub  *rsa.PublicKey
	rsaPriv *rsa.PrivateKey
	secret  []byte
	macs    *sync.Pool // of *macState, HS256 only

	header string // base64url of the protected header for signing
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// ID returns the key ID (the JWS kid).
func (k *Key) ID() string { return k.kid }

// Algorithm returns the key's algorithm; it is the only algorithm the key
// is ever used with.
func (k *Key) Algorithm() Algorithm { return k.alg }

// CanSign reports whether k holds private (or secret) key material.
func (k *Key) CanSign() bool {
	return k.edPriv != nil || k.ecPriv != nil || k.rsaPriv != nil || k.secret != nil
}

// Public returns the verification half of an asymmetric key. For an HS256
// key, which has no public half, it returns k itself.
func (k *Key) Public() *Key {
	switch {
	case k.edPriv != nil:
		p := &Key{kid: k.kid, alg: k.alg, edPub: k.edPub}
		p.header = k.header
		return p
	case k.ecPriv != nil:
		p := &Key{kid: k.kid, alg: k.alg, ecPub: k.ecPub}
		p.header = k.header
		return p
	case k.rsaPriv != nil:
		p := &Key{kid: k.kid, alg: k.alg, rsaPub: k.rsaPub}
		p.header = k.header
		return p
	}
	return k
}

// String describes the key without any key material.
func (k *Key) String() string {
	return fmt.Sprintf("accesstoken.Key{kid: %q, alg: %s, private: %t}", k.kid, k.alg, k.CanSign())
}

// NewEd25519Key returns an EdDSA key. key must be an ed25519.PublicKey (a
// verification key) or an ed25519.PrivateKey (a signing key). An empty kid
// is replaced by the key's RFC 7638 thumbprint.
func NewEd25519Key(kid string, key any) (*Key, error) {
	k := &Key{alg: EdDSA}
	switch key := key.(type) {
	case ed25519.PublicKey:
		if len(key) != ed25519.PublicKeySize {
			return nil, errors.New("accesstoken: bad Ed25519 public key size")
		}
		k.edPub = append(ed25519.PublicKey(nil), key...)
	case ed25519.PrivateKey:
		if len(key) != ed25519.PrivateKeySize {
			return nil, errors.New("accesstoken: bad Ed25519 private key size")
		}
		k.edPriv = append(ed25519.PrivateKey(nil), key...)
		k.edPub = k.edPriv.Public().(ed25519.PublicKey)
	default:
		return nil, errors.New("accesstoken: NewEd25519Key wants an ed25519.PublicKey or ed25519.PrivateKey")
	}
	return k.finish(kid)
}

// NewES256Key returns an ES256 (ECDSA P-256, SHA-256) key. key must be a
// *ecdsa.PublicKey or *ecdsa.PrivateKey on P-256. An empty kid is replaced
// by the key's RFC 7638 thumbprint.
//
// Signatures made with an ES256 key are deterministic (RFC 6979), so
// issuing the same claims twice yields the same token.
func NewES256Key(kid string, key any) (*Key, error) {
	k := &Key{alg: ES256}
	switch key := key.(type) {
	case *ecdsa.PublicKey:
		if key == nil || key.Curve != elliptic.P256() {
			return nil, errors.New("accesstoken: ES256 needs a P-256 key")
		}
		k.ecPub = key
	case *ecdsa.PrivateKey:
		if key == nil || key.Curve != elliptic.P256() {
			return nil, errors.New("accesstoken: ES256 needs a P-256 key")
		}
		k.ecPriv = key
		k.ecPub = &key.PublicKey
	default:
		return nil, errors.New("accesstoken: NewES256Key wants a *ecdsa.PublicKey or *ecdsa.PrivateKey")
	}
	return k.finish(kid)
}

// NewRS256Key returns an RS256 (RSASSA-PKCS1-v1_5, SHA-256) key. key must
// be a *rsa.PublicKey or *rsa.PrivateKey with a modulus of MinRSABits to
// MaxRSABits bits; shorter keys are refused, never used. An empty kid is
// replaced by the key's RFC 7638 thumbprint.
//
// PKCS #1 v1.5 signatures are deterministic, so issuing the same claims
// twice yields the same token.
func NewRS256Key(kid string, key any) (*Key, error) {
	k := &Key{alg: RS256}
	switch key := key.(type) {
	case *rsa.PublicKey:
		if err := checkRSAPublic(key); err != nil {
			return nil, err
		}
		k.rsaPub = key
	case *rsa.PrivateKey:
		if key == nil {
			return nil, errors.New("accesstoken: nil RSA key")
		}
		if err := checkRSAPublic(&key.PublicKey); err != nil {
			return nil, err
		}
		if err := key.Validate(); err != nil {
			return nil, errors.New("accesstoken: invalid RSA private key")
		}
		key.Precompute()
		k.rsaPriv = key
		k.rsaPub = &key.PublicKey
	default:
		return nil, errors.New("accesstoken: NewRS256Key wants a *rsa.PublicKey or *rsa.PrivateKey")
	}
	return k.finish(kid)
}

// checkRSAPublic refuses moduli outside MinRSABits..MaxRSABits and
// exponents that are even, below 3 or beyond 2^31-1.
func checkRSAPublic(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return errors.New("accesstoken: nil RSA key")
	}
	if n := pub.N.BitLen(); n < MinRSABits || n > MaxRSABits {
		return fmt.Errorf("accesstoken: RSA keys must have %d to %d bits, got %d", MinRSABits, MaxRSABits, n)
	}
	if pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return errors.New("accesstoken: RSA public exponent must be odd, at least 3 and below 2^31")
	}
	return nil
}

// NewHS256Key returns an HS256 key. The secret must be at least
// MinHMACSecret bytes of random data; anything shorter is refused with
// ErrWeakSecret. An HS256 key never appears in a JWKS document, and tokens
// signed with it can only be verified by holders of the same secret.
// An empty kid is replaced by a value derived from the secret by a one-way
// function (it reveals nothing useful about the secret).
func NewHS256Key(kid string, secret []byte) (*Key, error) {
	if len(secret) < MinHMACSecret {
		return nil, ErrWeakSecret
	}
	k := &Key{alg: HS256, secret: append([]byte(nil), secret...)}
	if kid == "" {
		m := hmac.New(sha256.New, k.secret)
		m.Write([]byte("latch accesstoken HS256 key id"))
		kid = "hs-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
	}
	sec := k.secret
	k.macs = &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, sec)} }}
	return k.finish(kid)
}

func (k *Key) finish(kid string) (*Key, error) {
	if kid == "" {
		kid = k.Thumbprint()
	}
	if !validKid(kid) {
		return nil, errors.New("accesstoken: kid must be 1-128 printable ASCII characters without / \\ ? # % \" or ..")
	}
	k.kid = kid
	if k.CanSign() { // a verification key never needs a header: it cannot sign
		k.header = base64.RawURLEncoding.EncodeToString(
			[]byte(`{"alg":"` + string(k.alg) + `","kid":"` + kid + `","typ":"at+jwt"}`))
	}
	return k, nil
}

// validKid reports whether kid is 1-MaxKeyIDLen printable ASCII characters
// with none of / \ ? # % " and no "..", so it can never act as a path,
// query or fragment if some key source uses it to build a URL or file name.
func validKid[S string | []byte](kid S) bool {
	if len(kid) == 0 || len(kid) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		switch c := kid[i]; {
		case c <= 0x20 || c >= 0x7f:
			return false
		case c == '/' || c == '\\' || c == '?' || c == '#' || c == '%' || c == '"':
			return false
		case c == '.' && i+1 < len(kid) && kid[i+1] == '.':
			return false
		}
	}
	return true
}

var b64 = base64.RawURLEncoding

// Thumbprint returns the RFC 7638 JWK thumbprint (base64url SHA-256) of an
// asymmetric key, or "" for an HS256 key.
func (k *Key) Thumbprint() string {
	var buf [160]byte // an EC key's canonical JWK; RSA ones grow it
	canon := buf[:0]
	switch {
	case k.edPub != nil:
		canon = append(canon, `{"crv":"Ed25519","kty":"OKP","x":"`...)
		canon = append(b64.AppendEncode(canon, k.edPub), `"}`...)
	case k.ecPub != nil:
		x, y := ecXY(k.ecPub)
		canon = append(canon, `{"crv":"P-256","kty":"EC","x":"`...)
		canon = append(b64.AppendEncode(canon, x), `","y":"`...)
		canon = append(b64.AppendEncode(canon, y), `"}`...)
	case k.rsaPub != nil:
		canon = append(canon, `{"e":"`...)
		canon = append(b64.AppendEncode(canon, rsaE(k.rsaPub)), `","kty":"RSA","n":"`...)
		canon = append(b64.AppendEncode(canon, k.rsaPub.N.Bytes()), `"}`...)
	default:
		return ""
	}
	sum := sha256.Sum256(canon)
	return b64.EncodeToString(sum[:])
}

func ecXY(pub *ecdsa.PublicKey) (x, y []byte) {
	b, err := pub.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil || len(b) != 65 {
		return nil, nil
	}
	return b[1:33], b[33:]
}

// rsaE is the public exponent as an unsigned big-endian integer without
// leading zeros (RFC 7518 6.3.1.2).
func rsaE(pub *rsa.PublicKey) []byte { return big.NewInt(int64(pub.E)).Bytes() }

// appendJWK appends the public JWK of an asymmetric key.
func (k *Key) appendJWK(dst []byte) []byte {
	switch {
	case k.edPub != nil:
		dst = append(dst, `{"kty":"OKP","crv":"Ed25519","x":"`...)
		dst = b64.AppendEncode(dst, k.edPub)
	case k.ecPub != nil:
		x, y := ecXY(k.ecPub)
		dst = append(dst, `{"kty":"EC","crv":"P-256","x":"`...)
		dst = b64.AppendEncode(dst, x)
		dst = append(dst, `","y":"`...)
		dst = b64.AppendEncode(dst, y)
	case k.rsaPub != nil:
		dst = append(dst, `{"kty":"RSA","n":"`...)
		dst = b64.AppendEncode(dst, k.rsaPub.N.Bytes())
		dst = append(dst, `","e":"`...)
		dst = b64.AppendEncode(dst, rsaE(k.rsaPub))
	default:
		return dst
	}
	dst = append(dst, `","use":"sig","alg":"`...)
	dst = append(dst, k.alg...)
	dst = append(dst, `","kid":"`...)
	dst = append(dst, k.kid...) // validKid: no characters that need escaping
	return append(dst, `"}`...)
}

// JWKS returns a JWK Set document holding the public halves of the
// asymmetric keys among keys, in order. HS256 keys are never included.
func JWKS(keys ...*Key) []byte {
	b := []byte(`{"keys":[`)
	n := 0
	for _, k := range keys {
		if k.alg == HS256 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = k.appendJWK(b)
		n++
	}
	return append(b, "]}"...)
}

// KeySet finds verification keys by kid. Implementations must be safe for
// concurrent use and should return the same *Key for the same key, so the
// verifier's cache can tell a key that is still trusted from a removed one.
type KeySet interface {
	// VerificationKey returns the key named kid, or an error matching
	// ErrUnknownKey. Other errors (a key source that cannot be reached) make
	// verification fail too.
	VerificationKey(ctx context.Context, kid string) (*Key, error)
}

// SigningKeys supplies the key an Issuer signs with.
type SigningKeys interface {
	// SigningKey returns the key to sign with now, or an error.
	SigningKey(ctx context.Context) (*Key, error)
}

// StaticKeys is a fixed set of keys: a KeySet, and SigningKeys that signs
// with the first key. Use it for an HS256 secret, or to verify with keys
// obtained out of band. Most users of latch's server want a Keyring instead.
type StaticKeys struct {
	keys  []*Key
	byKid map[string]*Key
	jwks  []byte
}

// NewStaticKeys returns a StaticKeys holding keys; kids must be distinct.
func NewStaticKeys(keys ...*Key) (*StaticKeys, error) {
	s := &StaticKeys{byKid: make(map[string]*Key, len(keys))}
	for _, k := range keys {
		if k == nil {
			return nil, errors.New("accesstoken: nil key")
		}
		if _, dup := s.byKid[k.kid]; dup {
			return nil, fmt.Errorf("accesstoken: duplicate kid %q", k.kid)
		}
		s.byKid[k.kid] = k
		s.keys = append(s.keys, k)
	}
	s.jwks = JWKS(keys...)
	return s, nil
}

// VerificationKey implements KeySet.
func (s *StaticKeys) VerificationKey(_ context.Context, kid string) (*Key, error) {
	if k, ok := s.byKid[kid]; ok {
		return k, nil
	}
	return nil, errKidUnknown
}

// SigningKey implements SigningKeys: the first key, if it can sign.
func (s *StaticKeys) SigningKey(context.Context) (*Key, error) {
	if len(s.keys) == 0 || !s.keys[0].CanSign() {
		return nil, ErrNoSigningKey
	}
	return s.keys[0], nil
}

// JWKS returns the JWK Set of the asymmetric keys (never HS256 secrets).
func (s *StaticKeys) JWKS() []byte { return append([]byte(nil), s.jwks...) }

// normAlg reports whether an alg value names "none" in any case.
func isNone(alg []byte) bool { return strings.EqualFold(string(alg), "none") }
