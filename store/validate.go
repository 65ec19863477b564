package store

import (
	"fmt"
	"time"
)

// Validate reports, with an error matching [ErrInvalid], why a store must
// refuse rec: nil, the zero ID, an ID that does not carry
// SubjectTag(rec.Subject), a Subject outside 1..[MaxSubjectLen] bytes, a
// field beyond its bound or an ACR or AMR value with a byte [AuthValue]
// refuses (see the package documentation), or a time outside
// the years 1678–2262 (also matching [ErrUnencodable]). It returns nil for a
// record every store keeps exactly. The error names the rule, never a value.
//
// Stores call it at the top of Create and Update; most users won't need it.
func Validate(rec *Record) error {
	switch {
	case rec == nil:
		return fmt.Errorf("%w: nil record", ErrInvalid)
	case rec.ID.IsZero():
		return fmt.Errorf("%w: zero session ID", ErrInvalid)
	case len(rec.Subject) == 0 || len(rec.Subject) > MaxSubjectLen:
		return fmt.Errorf("%w: subject must be 1 to %d bytes", ErrInvalid, MaxSubjectLen)
	case rec.ID.Tag() != SubjectTag(rec.Subject):
		return fmt.Errorf("%w: session ID does not carry its subject's tag (make IDs with store.NewID)", ErrInvalid)
	case len(rec.Data) > MaxValueLen || len(rec.Claims) > MaxValueLen:
		return fmt.Errorf("%w: Data and Claims must be at most %d bytes", ErrInvalid, MaxValueLen)
	case len(rec.IP) > MaxIPLen:
		return fmt.Errorf("%w: IP must be at most %d bytes", ErrInvalid, MaxIPLen)
	case len(rec.UserAgent) > MaxUserAgentLen:
		return fmt.Errorf("%w: UserAgent must be at most %d bytes", ErrInvalid, MaxUserAgentLen)
	case len(rec.RevokeReason) > MaxReasonLen:
		return fmt.Errorf("%w: RevokeReason must be at most %d bytes", ErrInvalid, MaxReasonLen)
	case len(rec.ACR) > MaxACRLen || !AuthValue(rec.ACR):
		return fmt.Errorf("%w: ACR must be at most %d bytes of visible ASCII other than '\"' and '\\'", ErrInvalid, MaxACRLen)
	case len(rec.AMR) > MaxAMRValues:
		return fmt.Errorf("%w: AMR must list at most %d methods", ErrInvalid, MaxAMRValues)
	}
	for _, m := range rec.AMR {
		if len(m) == 0 || len(m) > MaxAMRValueLen || !AuthValue(m) {
			return fmt.Errorf("%w: each AMR value must be 1 to %d bytes of visible ASCII other than '\"' and '\\'", ErrInvalid, MaxAMRValueLen)
		}
	}
	if err := checkEncodable(rec); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// AuthValue reports whether s is made only of the bytes an ACR or AMR
// value may hold: visible ASCII (0x21–0x7E) other than '"' and '\'. Such a
// value needs no escaping in a JSON string or an HTTP quoted-string, and a
// space can separate a list of them (RFC 9470 acr_values). It does not check
// lengths.
func AuthValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ValidReason reports, with an error matching [ErrInvalid], a revocation
// reason longer than [MaxReasonLen] or a revocation time a store cannot
// keep. Stores call it at the top of Revoke and RevokeSubject.
func ValidReason(reason string, at time.Time) error {
	if len(reason) > MaxReasonLen {
		return fmt.Errorf("%w: reason must be at most %d bytes", ErrInvalid, MaxReasonLen)
	}
	if !at.IsZero() && (at.Before(minTime) || at.After(maxTime)) {
		return fmt.Errorf("%w: %w", ErrInvalid, ErrUnencodable)
	}
	return nil
}

// ValidSubject reports, with an error matching [ErrInvalid], a subject
// outside 1..[MaxSubjectLen] bytes.
func ValidSubject(subject string) error {
	if len(subject) == 0 || len(subject) > MaxSubjectLen {
		return fmt.Errorf("%w: subject must be 1 to %d bytes", ErrInvalid, MaxSubjectLen)
	}
	return nil
}

// UnixNano is the encoding every store that keeps times as integers uses
// (the binary codec, SQL BIGINT columns): Unix nanoseconds, 0 for the zero
// Time. Times outside 1678–2262 must have been refused ([Validate]) first.
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromUnixNano decodes [UnixNano]: 0 is the zero Time, anything else an
// instant in UTC.
func FromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// ValidReplayKey reports, with an error matching [ErrInvalid], a
// [ReplayCache] key outside 1..[MaxReplayKeyLen] bytes.
func ValidReplayKey(key string) error {
	if len(key) == 0 || len(key) > MaxReplayKeyLen {
		return fmt.Errorf("%w: replay key must be 1 to %d bytes", ErrInvalid, MaxReplayKeyLen)
	}
	return nil
}
