package accesstoken

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// MaxJWKSSize is the largest JWK Set document ParseJWKS reads.
const MaxJWKSSize = 256 << 10

// ParseJWKS parses a JWK Set document into verification keys. It accepts
// public Ed25519 (kty OKP, crv Ed25519), P-256 (kty EC) and RSA keys of
// MinRSABits to MaxRSABits bits (kty RSA, for RS256); shorter RSA keys are
// skipped, never trusted. Keys of
// other types, keys whose use is not "sig", and keys whose alg does not
// match the key type are skipped, never guessed at, and so are keys whose
// kid latch's verifier would refuse. Symmetric ("oct") keys
// and keys with private members (d, p, q, dp, dq, qi, oth, k) are refused: a JWKS is public. A key
// without kid gets its RFC 7638 thumbprint. The result is suitable for
// NewStaticKeys.
func ParseJWKS(doc []byte) ([]*Key, error) {
	if len(doc) > MaxJWKSSize {
		return nil, errors.New("accesstoken: JWKS document too large")
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, errors.New("accesstoken: JWKS document is not valid JSON")
	}
	var keys []*Key
	seen := map[string]bool{}
	for i, j := range set.Keys {
		if j.private() {
			return nil, fmt.Errorf("accesstoken: JWKS key %d holds private or symmetric key material", i)
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.key()
		switch {
		case errors.Is(err, errJWKUnsupported), errors.Is(err, errJWKRefused):
			continue // never guessed at, never trusted
		case err != nil:
			return nil, fmt.Errorf("accesstoken: JWKS key %d: %w", i, err)
		}
		if seen[k.kid] {
			return nil, fmt.Errorf("accesstoken: JWKS has duplicate kid %q", k.kid)
		}
		seen[k.kid] = true
		keys = append(keys, k)
	}
	return keys, nil
}

// jwk is the part of a JWK latch reads. The private members of every key
// type (RFC 7518 6.2.2, 6.3.2, 6.4; RFC 8037) are read only to refuse them.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`

	D   *json.RawMessage `json:"d"`
	P   *json.RawMessage `json:"p"`
	Q   *json.RawMessage `json:"q"`
	DP  *json.RawMessage `json:"dp"`
	DQ  *json.RawMessage `json:"dq"`
	QI  *json.RawMessage `json:"qi"`
	Oth *json.RawMessage `json:"oth"`
	K   *json.RawMessage `json:"k"`
}

var (
	errJWKUnsupported = errors.New("unsupported key type, curve or alg")
	errJWKRefused     = errors.New("kid or RSA key size not accepted")
)

// private reports whether j carries private or symmetric key material.
func (j *jwk) private() bool {
	return j.Kty == "oct" || j.D != nil || j.P != nil || j.Q != nil || j.DP != nil || j.DQ != nil ||
		j.QI != nil || j.Oth != nil || j.K != nil
}

// key builds the verification key of a public JWK.
func (j *jwk) key() (*Key, error) {
	var k *Key
	var err error
	switch {
	// Ed25519 is RFC 9864's fully-specified name for EdDSA with Ed25519.
	case j.Kty == "OKP" && j.Crv == "Ed25519" && (j.Alg == "" || j.Alg == string(EdDSA) || j.Alg == "Ed25519"):
		x, derr := strict.DecodeString(j.X)
		if derr != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 x")
		}
		k, err = NewEd25519Key(j.Kid, ed25519.PublicKey(x))
	case j.Kty == "EC" && j.Crv == "P-256" && (j.Alg == "" || j.Alg == string(ES256)):
		x, errx := strict.DecodeString(j.X)
		y, erry := strict.DecodeString(j.Y)
		if errx != nil || erry != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad P-256 coordinates")
		}
		pub, perr := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if perr != nil {
			return nil, errors.New("point not on P-256")
		}
		k, err = NewES256Key(j.Kid, pub)
	case j.Kty == "RSA" && (j.Alg == "" || j.Alg == string(RS256)):
		n, errn := strict.DecodeString(j.N)
		e, erre := strict.DecodeString(j.E)
		if errn != nil || erre != nil || len(n) == 0 || n[0] == 0 || len(e) == 0 || len(e) > 4 || e[0] == 0 {
			return nil, errors.New("bad RSA n or e")
		}
		ev := 0
		for _, b := range e {
			ev = ev<<8 | int(b)
		}
		// Keys outside MinRSABits..MaxRSABits are refused: never trusted,
		// like any key latch cannot use.
		k, err = NewRS256Key(j.Kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev})
	default:
		return nil, errJWKUnsupported
	}
	if err != nil {
		return nil, errJWKRefused
	}
	return k, nil
}

// ParseJWK parses one public JWK (a JSON object) into a verification key,
// with the rules of [ParseJWKS] for a single key: Ed25519, P-256 or RSA,
// alg (if present) matching the key type, use (if present) "sig". It
// refuses, with an error matching [ErrPrivateJWK], a key with private or
// symmetric material (d, p, q, dp, dq, qi, oth, k, or kty oct). The key's
// kid is its RFC 7638 thumbprint, whatever the JWK says, so a caller can
// use it for a key it received from the party that holds it (a DPoP
// proof's header).
//
// Most users won't need this: it exists for proof-of-possession protocols.
func ParseJWK(raw []byte) (*Key, error) {
	if len(raw) > maxHeaderSeg {
		return nil, errors.New("accesstoken: JWK too large")
	}
	var j jwk
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, errors.New("accesstoken: JWK is not a valid JSON object")
	}
	return j.verificationKey()
}

// PublicJWK holds the members of a public JWK that make a verification
// key, already decoded from JSON; it cannot hold private members.
//
// Most users won't need this: it lets a caller with its own JSON decoder
// (package dpop's, for proof headers) skip [ParseJWK]'s encoding/json.
type PublicJWK struct {
	Kty, Crv, X, Y, N, E, Alg, Use string
}

// Key is [ParseJWK] of a JWK with exactly these members (an empty one
// counts as absent).
func (p PublicJWK) Key() (*Key, error) {
	j := jwk{Kty: p.Kty, Crv: p.Crv, X: p.X, Y: p.Y, N: p.N, E: p.E, Alg: p.Alg, Use: p.Use}
	return j.verificationKey()
}

// verificationKey is the rest of ParseJWK, once j is decoded.
func (j *jwk) verificationKey() (*Key, error) {
	if j.private() {
		return nil, ErrPrivateJWK
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, errors.New("accesstoken: JWK use is not sig")
	}
	j.Kid = ""
	k, err := j.key()
	if err != nil {
		return nil, fmt.Errorf("accesstoken: JWK: %w", err)
	}
	return k, nil
}

// VerifyDetached checks a JWS signature made by k: signed is the JWS
// signing input (encoded header, '.', encoded payload) and sig the encoded
// signature segment. It checks nothing in the header; the caller must have
// checked that the header's alg is k.Algorithm().
//
// Most users won't need this: use a [Verifier] for access tokens.
func (k *Key) VerifyDetached(signed, sig []byte) error { return k.verify(signed, sig) }
