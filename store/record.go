package store

import (
	"bytes"
	"slices"
	"time"
)

// HashLen is the length of every secret hash a record holds.
const HashLen = 32

// Hash is a SHA-256 (or HMAC-SHA-256) digest of a token's secret part. The
// secret itself is never stored.
type Hash [HashLen]byte

// Record is the server-side state of one session: the single source of truth
// for both the cookie and the token carriers.
//
// A Record returned by a [Store] is shared and must be treated as read-only;
// call [Record.Clone] before modifying it. Stores take ownership of a Record
// passed to them only for the duration of the call.
type Record struct {
	ID      ID
	Subject string // 1..MaxSubjectLen bytes; immutable
	Version uint64 // incremented by the store on every write; see Store.Update

	VerifierHash Hash     // hash of the session token's secret
	CSRFSecret   [32]byte // per-session CSRF key; replaced on renew
	Refresh      Refresh

	CreatedAt     time.Time
	AuthTime      time.Time // when the user last proved who they are
	LastSeenAt    time.Time
	IdleExpiresAt time.Time // moves on activity
	ExpiresAt     time.Time // absolute deadline; never moves

	RevokedAt    time.Time // zero unless revoked
	RevokeReason string

	IP        string
	UserAgent string

	Data   []byte // a JSON object or nil
	Claims []byte // a JSON object or nil; copied into access tokens

	// How the user authenticated at AuthTime (RFC 9470 step-up; RFC 8176
	// method names); set at create and replaced on renew. Both are bounded
	// and limited to visible ASCII other than '"' and '\' (see
	// [MaxACRLen], [MaxAMRValues]), so they can be quoted in a header
	// without escaping.
	ACR string   // authentication context class reference; "" if none
	AMR []string // authentication methods, e.g. "pwd", "otp"; nil if none

	// JKT is the RFC 7638 SHA-256 thumbprint of the DPoP key (RFC 9449) the
	// session is bound to; the zero value means unbound. A binding is for
	// the session's life: renewal keeps it.
	JKT [32]byte
}

// Refresh is the state of a session's refresh-token family.
//
// Successive refresh secrets are derived from their parent with an HMAC under
// Key, so the store holds only hashes and the family key: a dump of the store
// yields no usable refresh token.
type Refresh struct {
	Key        [32]byte  // family key; replaced on renew
	Current    Hash      // hash of the live refresh secret
	Previous   Hash      // hash of the secret Current replaced; zero before the first rotation
	RotatedAt  time.Time // when Current replaced Previous
	Generation uint32    // number of rotations in this family
}

// Deadline is when the record stops being valid: the earlier of the idle and
// absolute deadlines. Stores may discard the record from then on.
func (r *Record) Deadline() time.Time {
	if r.IdleExpiresAt.Before(r.ExpiresAt) {
		return r.IdleExpiresAt
	}
	return r.ExpiresAt
}

// Revoked reports whether the session was revoked.
func (r *Record) Revoked() bool { return !r.RevokedAt.IsZero() }

// Live reports whether the record is neither revoked nor past a deadline at now.
func (r *Record) Live(now time.Time) bool {
	return !r.Revoked() && now.Before(r.Deadline())
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := *r
	c.Data = bytes.Clone(r.Data)
	c.Claims = bytes.Clone(r.Claims)
	c.AMR = slices.Clone(r.AMR)
	return &c
}
