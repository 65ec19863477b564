package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"slices"
)

// CSRFKeyLen is the length of a CSRF key: the value a synchronizer token
// masks.
const CSRFKeyLen = 32

// CSRFKey is the value behind a CSRF token: derived from a session's CSRF
// secret, or from an anonymous visitor's cookie secret.
type CSRFKey [CSRFKeyLen]byte

// CSRFTokenLen is the length of a masked CSRF token's text form.
var CSRFTokenLen = base64.RawURLEncoding.EncodedLen(2 * CSRFKeyLen)

// MaskCSRF returns base64url(m ‖ (m ⊕ k)) for 32 fresh bytes m read from
// rand (docs/protocol.md, section 2): every call gives a different string,
// so compression side channels (BREACH) cannot recover k, and all of them
// unmask to k.
func MaskCSRF(rand io.Reader, k *CSRFKey) (string, error) {
	b, err := AppendMaskCSRF(nil, rand, k)
	return string(b), err
}

// AppendMaskCSRF appends a fresh masking of k, as MaskCSRF returns it, to
// dst. The random mask is read into dst's spare capacity (so nothing
// escapes to the heap beyond dst) and cleared again before returning; on
// error dst is returned unchanged.
func AppendMaskCSRF(dst []byte, rand io.Reader, k *CSRFKey) ([]byte, error) {
	n := len(dst)
	dst = slices.Grow(dst, CSRFTokenLen+2*CSRFKeyLen)
	out := dst[n : n+CSRFTokenLen]
	b := dst[n+CSRFTokenLen : n+CSRFTokenLen+2*CSRFKeyLen]
	defer clear(b)
	if _, err := io.ReadFull(rand, b[:CSRFKeyLen]); err != nil {
		return dst[:n], err
	}
	for i := range CSRFKeyLen {
		b[CSRFKeyLen+i] = b[i] ^ k[i]
	}
	base64.RawURLEncoding.Encode(out, b)
	return dst[:n+CSRFTokenLen], nil
}

// CheckCSRF reports whether tok is a masking of k. Anything else — the
// wrong length, non-canonical base64url, another key — is false. The
// comparison with k takes constant time.
func CheckCSRF(tok string, k *CSRFKey) bool {
	if len(tok) != CSRFTokenLen {
		return false
	}
	var b [2 * CSRFKeyLen]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(tok)); err != nil || n != len(b) {
		return false
	}
	var got CSRFKey
	for i := range CSRFKeyLen {
		got[i] = b[i] ^ b[CSRFKeyLen+i]
	}
	return subtle.ConstantTimeCompare(got[:], k[:]) == 1
}

// AnonCSRFSecretLen is the length of the random secret in an anonymous
// visitor's CSRF cookie.
const AnonCSRFSecretLen = 32

// anonCSRFCookieLen is the length of that cookie's value.
var anonCSRFCookieLen = base64.RawURLEncoding.EncodedLen(AnonCSRFSecretLen)

// NewAnonCSRF draws a fresh anonymous CSRF secret from rand.
func NewAnonCSRF(rand io.Reader) (secret [AnonCSRFSecretLen]byte, err error) {
	_, err = io.ReadFull(rand, secret[:])
	return secret, err
}

// EncodeAnonCSRF returns the cookie value of an anonymous CSRF secret:
// base64url without padding.
func EncodeAnonCSRF(secret *[AnonCSRFSecretLen]byte) string {
	return base64.RawURLEncoding.EncodeToString(secret[:])
}

// ParseAnonCSRF decodes an anonymous CSRF cookie's value; ok is false for
// anything but the canonical base64url of 32 bytes.
func ParseAnonCSRF(cookie string) (secret [AnonCSRFSecretLen]byte, ok bool) {
	if len(cookie) != anonCSRFCookieLen {
		return secret, false
	}
	n, err := base64.RawURLEncoding.Strict().Decode(secret[:], []byte(cookie))
	return secret, err == nil && n == AnonCSRFSecretLen
}

// AnonCSRFKey derives the CSRF key of an anonymous visitor from the secret
// in their cookie: HMAC-SHA256(key = secret, message = "latch anon csrf
// v1"). Pages carry only maskings of it, so the cookie secret never appears
// in a page; a token is valid only together with the cookie it was minted
// for.
func AnonCSRFKey(secret *[AnonCSRFSecretLen]byte) (k CSRFKey) {
	mac := hmac.New(sha256.New, secret[:])
	mac.Write([]byte("latch anon csrf v1"))
	mac.Sum(k[:0])
	return k
}
