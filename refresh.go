package latch

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"time"

	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/token"
	"github.com/latch-sessions/latch/store"
)

// maxAncestorWalk bounds how many generations back Refresh looks to
// recognise a rotated token. Sessions rotating every few minutes for a day
// stay far below it; the bound caps the work an unknown token can cause.
const maxAncestorWalk = 1024

// Refreshed is the result of a refresh: the successor refresh token and a
// new access token. The old refresh token is spent.
type Refreshed struct {
	Session         *Session
	RefreshToken    Token
	AccessToken     Token     // zero unless Config.AccessTokens is set
	AccessExpiresAt time.Time // zero unless AccessToken is set
}

// Refresh rotates a refresh token: it returns the successor refresh token
// and a fresh access token, and records the activity.
//
// Refresh tokens are single-use. Presenting the token that the last rotation
// replaced, within Config.RefreshGrace of that rotation, returns the
// identical successor and access token (so tabs refreshing at once do not
// log the user out). Presenting it later, or presenting any older token of
// the family, is treated as theft: the session is revoked and the error
// matches ErrRefreshReuse and ErrRevoked. A token that is not part of the
// family (forged, or from before a renewal) is ErrInvalidToken and changes
// nothing.
func (m *Manager) Refresh(ctx context.Context, refreshToken string) (*Refreshed, error) {
	return m.RefreshProof(ctx, refreshToken, nil)
}

// ProofCheck checks a DPoP proof for a refresh of a session bound to the
// key with thumbprint jkt (see package dpop); it is called at most once,
// and only after the refresh token was found valid.
type ProofCheck func(ctx context.Context, jkt string) error

// RefreshProof is Refresh for sessions that may be DPoP-bound (RFC 9449):
// a bound session's refresh token is rotated only if prove accepts a proof
// by its key. Without prove (nil), a bound session is refused with a
// [*dpop.Error]; a refused proof changes nothing. Unbound sessions ignore
// prove.
func (m *Manager) RefreshProof(ctx context.Context, refreshToken string, prove ProofCheck) (*Refreshed, error) {
	id, secret, err := token.Parse(token.Refresh, refreshToken)
	if err != nil {
		m.Emit(ctx, Event{Type: EventValidationFailed, Reason: FailMalformed})
		return nil, ErrInvalidToken
	}
	rec, err := m.load(ctx, id, "", false)
	if err != nil {
		return nil, err
	}
	h := token.Hash(token.Refresh, secret)
	proved := false
	// fresh: rec was read from the backend itself, not from a cache that
	// may lag a rotation another replica made a moment ago.
	fresh, retried := false, false
	for {
		now := m.cfg.Now()
		current := token.Equal(h, rec.Refresh.Current)
		if !fresh && !rec.Revoked() && (!current || !rec.Live(now)) {
			// Every answer but a rotation of a live record refuses or
			// answers without a write, so judge it on the source: a token
			// rotated or renewed through another replica a moment ago is
			// unknown to a stale cached copy (whose family key may be one
			// a renewal replaced, which would turn a stale token into
			// false theft). A rotation needs no re-read: RotateRefresh
			// compares against the source. A revocation is final.
			if rec, err = m.load(ctx, id, "", true); err != nil {
				return nil, err
			}
			fresh = true
			continue
		}
		if err := m.checkLive(ctx, rec, now); err != nil {
			return nil, err
		}
		if current || token.Equal(h, rec.Refresh.Previous) && now.Sub(rec.Refresh.RotatedAt) <= m.cfg.RefreshGrace {
			if err := m.checkProof(ctx, rec, prove, &proved); err != nil {
				return nil, err
			}
		}
		switch {
		case current:
			next := token.NextRefresh(&rec.Refresh.Key, secret)
			now = now.UTC()
			rot := store.Rotation{
				ID:     rec.ID,
				Expect: h,
				Next: store.Refresh{
					Key:        rec.Refresh.Key,
					Current:    token.Hash(token.Refresh, next),
					Previous:   h,
					RotatedAt:  now,
					Generation: rec.Refresh.Generation + 1,
				},
				LastSeenAt:    now,
				IdleExpiresAt: now.Add(m.cfg.IdleTimeout),
			}
			got, err := m.cfg.Store.RotateRefresh(ctx, rot)
			if errors.Is(err, store.ErrConflict) && got != nil && !retried {
				// A concurrent rotation won (or rec was stale): judge the
				// token against the stored record the store returned.
				rec, fresh, retried = got, true, true
				continue
			}
			if err != nil {
				return nil, storeErr(err)
			}
			m.emitFor(ctx, EventRefreshed, got, "")
			return m.refreshed(ctx, got, next)

		case token.Equal(h, rec.Refresh.Previous):
			next := token.NextRefresh(&rec.Refresh.Key, secret)
			if now.Sub(rec.Refresh.RotatedAt) <= m.cfg.RefreshGrace && token.Equal(token.Hash(token.Refresh, next), rec.Refresh.Current) {
				return m.refreshed(ctx, rec, next)
			}
			return nil, m.reuseProven(ctx, rec, prove, &proved)

		case m.isAncestor(rec, secret):
			return nil, m.reuseProven(ctx, rec, prove, &proved)

		default:
			m.emitFor(ctx, EventValidationFailed, rec, FailMismatch)
			return nil, ErrInvalidToken
		}
	}
}

// checkProof runs prove for a DPoP-bound rec, once per refresh (a retry
// after a lost race does not need a second proof, whose jti would be a
// replay).
func (m *Manager) checkProof(ctx context.Context, rec *store.Record, prove ProofCheck, proved *bool) error {
	if rec.JKT == ([32]byte{}) || *proved {
		return nil
	}
	if prove == nil {
		m.emitFor(ctx, EventValidationFailed, rec, FailDPoP)
		return dpop.ErrProofRequired
	}
	if err := prove(ctx, dpop.EncodeThumbprint(rec.JKT)); err != nil {
		if errors.Is(err, dpop.ErrInvalidProof) {
			m.emitFor(ctx, EventValidationFailed, rec, FailDPoP)
		}
		return err
	}
	*proved = true
	return nil
}

// reuseProven answers the reuse of a spent refresh token: for a DPoP-bound
// session only once a proof by its key is accepted. A copied old token
// without the key is refused as a proof failure and changes nothing, so it
// cannot be used to end the victim's session; a client holding the key
// that replays an old token (theft of both) still revokes the family.
func (m *Manager) reuseProven(ctx context.Context, rec *store.Record, prove ProofCheck, proved *bool) error {
	if err := m.checkProof(ctx, rec, prove, proved); err != nil {
		return err
	}
	return m.reuse(ctx, rec)
}

// refreshed builds the answer for the rotation recorded in rec, whose live
// refresh secret is next. Its access token depends only on rec and next, so
// every caller that presents the same parent gets the same token.
func (m *Manager) refreshed(ctx context.Context, rec *store.Record, next token.Secret) (*Refreshed, error) {
	out := &Refreshed{
		Session:      &Session{rec: rec},
		RefreshToken: Token{token.Encode(token.Refresh, rec.ID, next)},
	}
	seed := sha256.Sum256(append([]byte("latch jti v1"), next[:]...))
	err := m.accessToken(ctx, rec, rec.Refresh.RotatedAt, newJTI(rec, seed[:jtiRandLen]), &out.AccessToken, &out.AccessExpiresAt)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isAncestor reports whether secret is an older member of rec's refresh
// family: deriving forward from it reaches the stored hashes.
func (m *Manager) isAncestor(rec *store.Record, secret token.Secret) bool {
	s := secret
	for i := uint32(0); i < rec.Refresh.Generation && i < maxAncestorWalk; i++ {
		s = token.NextRefresh(&rec.Refresh.Key, s)
		h := token.Hash(token.Refresh, s)
		if token.Equal(h, rec.Refresh.Previous) || token.Equal(h, rec.Refresh.Current) {
			return true
		}
	}
	return false
}

// reuse revokes a session whose rotated refresh token came back.
func (m *Manager) reuse(ctx context.Context, rec *store.Record) error {
	m.emitFor(ctx, EventRefreshReuse, rec, "")
	if err := m.cfg.Store.Revoke(ctx, rec.ID, store.ReasonReuse, m.cfg.Now().UTC()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(err)
	}
	m.emitFor(ctx, EventRevoked, rec, store.ReasonReuse)
	return ErrRefreshReuse
}

// An access token's jti is base64url(family tag ‖ unique part). The family
// tag is derived from the session's refresh-family key, which Renew
// replaces, so ValidateAccess can refuse tokens issued before a renewal
// without storing anything more. The tag is a truncated SHA-256 of a fixed
// label and the secret key: it reveals nothing about the key, and deriving
// it allocates nothing, since ValidateAccess runs on every bearer request.
const (
	jtiTagLen  = 8
	jtiRandLen = 10
	jtiLen     = (jtiTagLen + jtiRandLen) * 4 / 3 // 24 base64url characters, no padding
)

const familyLabel = "latch access family v1\x00"

func familyTag(rec *store.Record) (t [jtiTagLen]byte) {
	var in [len(familyLabel) + 32]byte
	copy(in[:], familyLabel)
	copy(in[len(familyLabel):], rec.Refresh.Key[:])
	sum := sha256.Sum256(in[:])
	copy(t[:], sum[:])
	return t
}

func newJTI(rec *store.Record, unique []byte) string {
	t := familyTag(rec)
	return base64.RawURLEncoding.EncodeToString(append(t[:], unique...))
}

func familyTagMatches(rec *store.Record, jti string) bool {
	if len(jti) != jtiLen {
		return false
	}
	var b [jtiTagLen + jtiRandLen]byte
	var src [jtiLen]byte
	copy(src[:], jti)
	if n, err := base64.RawURLEncoding.Decode(b[:], src[:]); err != nil || n != len(b) {
		return false
	}
	t := familyTag(rec)
	return subtle.ConstantTimeCompare(b[:jtiTagLen], t[:]) == 1
}
