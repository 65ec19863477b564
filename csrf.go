package latch

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

const csrfKeyLen = 32

// csrfTokenLen is the length of a masked CSRF token's text form.
var csrfTokenLen = base64.RawURLEncoding.EncodedLen(2 * csrfKeyLen)

// csrfKey derives the session's synchronizer value from its CSRF secret and
// ID. The secret itself never leaves the store.
func csrfKey(s *Session) (k [csrfKeyLen]byte) {
	mac := hmac.New(sha256.New, s.rec.CSRFSecret[:])
	mac.Write([]byte("latch csrf v1"))
	mac.Write(s.rec.ID[:])
	mac.Sum(k[:0])
	return k
}

// CSRFToken returns a synchronizer token for forms and the X-CSRF-Token
// header of s's pages. Each call returns a different string (the value is
// masked with fresh randomness, so it cannot be recovered by compression
// side channels such as BREACH); all of them are valid until the session is
// renewed or ends.
func (m *Manager) CSRFToken(s *Session) (string, error) {
	k := csrfKey(s)
	var b [2 * csrfKeyLen]byte
	if _, err := m.cfg.Rand.Read(b[:csrfKeyLen]); err != nil {
		return "", err
	}
	for i := range csrfKeyLen {
		b[csrfKeyLen+i] = b[i] ^ k[i]
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// CheckCSRF reports whether tok is a CSRF token issued for s. The comparison
// takes constant time.
func (m *Manager) CheckCSRF(s *Session, tok string) bool {
	if len(tok) != csrfTokenLen {
		return false
	}
	var b [2 * csrfKeyLen]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(tok)); err != nil || n != len(b) {
		return false
	}
	k := csrfKey(s)
	var got [csrfKeyLen]byte
	for i := range csrfKeyLen {
		got[i] = b[i] ^ b[csrfKeyLen+i]
	}
	return subtle.ConstantTimeCompare(got[:], k[:]) == 1
}
