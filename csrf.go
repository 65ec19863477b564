package latch

import (
	"crypto/hmac"
	"crypto/sha256"

	"github.com/latch-sessions/latch/internal/token"
)

// csrfKey derives the session's synchronizer value from its CSRF secret and
// ID. The secret itself never leaves the store.
func csrfKey(s *Session) (k token.CSRFKey) {
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
	return token.MaskCSRF(m.cfg.Rand, &k)
}

// CheckCSRF reports whether tok is a CSRF token issued for s. The comparison
// takes constant time.
func (m *Manager) CheckCSRF(s *Session, tok string) bool {
	k := csrfKey(s)
	return token.CheckCSRF(tok, &k)
}
