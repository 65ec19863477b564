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
// and keys with private members ("d") are refused: a JWKS is public. A key
// without kid gets its RFC 7638 thumbprint. The result is suitable for
// NewStaticKeys.
func ParseJWKS(doc []byte) ([]*Key, error) {
	if len(doc) > MaxJWKSSize {
		return nil, errors.New("accesstoken: JWKS document too large")
	}
	var set struct {
		Keys []struct {
			Kty string  `json:"kty"`
			Crv string  `json:"crv"`
			X   string  `json:"x"`
			Y   string  `json:"y"`
			N   string  `json:"n"`
			E   string  `json:"e"`
			D   *string `json:"d"`
			Kid string  `json:"kid"`
			Alg string  `json:"alg"`
			Use string  `json:"use"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, errors.New("accesstoken: JWKS document is not valid JSON")
	}
	var keys []*Key
	seen := map[string]bool{}
	for i, j := range set.Keys {
		if j.D != nil || j.Kty == "oct" {
			return nil, fmt.Errorf("accesstoken: JWKS key %d holds private or symmetric key material", i)
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		var k *Key
		var err error
		switch {
		case j.Kty == "OKP" && j.Crv == "Ed25519" && (j.Alg == "" || j.Alg == string(EdDSA)):
			x, derr := strict.DecodeString(j.X)
			if derr != nil || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("accesstoken: JWKS key %d: bad Ed25519 x", i)
			}
			k, err = NewEd25519Key(j.Kid, ed25519.PublicKey(x))
		case j.Kty == "EC" && j.Crv == "P-256" && (j.Alg == "" || j.Alg == string(ES256)):
			x, errx := strict.DecodeString(j.X)
			y, erry := strict.DecodeString(j.Y)
			if errx != nil || erry != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("accesstoken: JWKS key %d: bad P-256 coordinates", i)
			}
			pub, perr := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if perr != nil {
				return nil, fmt.Errorf("accesstoken: JWKS key %d: point not on P-256", i)
			}
			k, err = NewES256Key(j.Kid, pub)
		case j.Kty == "RSA" && (j.Alg == "" || j.Alg == string(RS256)):
			n, errn := strict.DecodeString(j.N)
			e, erre := strict.DecodeString(j.E)
			if errn != nil || erre != nil || len(n) == 0 || n[0] == 0 || len(e) == 0 || len(e) > 4 || e[0] == 0 {
				return nil, fmt.Errorf("accesstoken: JWKS key %d: bad RSA n or e", i)
			}
			ev := 0
			for _, b := range e {
				ev = ev<<8 | int(b)
			}
			// Keys outside MinRSABits..MaxRSABits are skipped below:
			// never trusted, like any key latch cannot use.
			k, err = NewRS256Key(j.Kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev})
		default:
			continue
		}
		if err != nil {
			continue // a kid latch would never accept in a token
		}
		if seen[k.kid] {
			return nil, fmt.Errorf("accesstoken: JWKS has duplicate kid %q", k.kid)
		}
		seen[k.kid] = true
		keys = append(keys, k)
	}
	return keys, nil
}
