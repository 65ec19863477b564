package latch

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/latch-sessions/latch/store"
)

// AuthRequirement is what a sensitive action demands of how the user
// authenticated (RFC 9470 step-up): a recent enough authentication, an
// authentication context class from a list, or both. The zero value demands
// nothing.
type AuthRequirement struct {
	// MaxAge, if positive, is the longest time since the session's
	// AuthTime the action accepts.
	MaxAge time.Duration
	// ACRValues, if not empty, are the ACR values the action accepts; the
	// session's ACR must equal one of them. Each must pass the rules for a
	// session's ACR (CheckAuthContext).
	ACRValues []string
}

// ErrInsufficientAuth: the session is valid but its authentication is
// older, or of another class, than the action demands (RFC 9470
// insufficient_user_authentication). The concrete error is an
// *InsufficientAuthError. Re-authenticate the user, then Renew with the new
// AuthTime, ACR and AMR.
var ErrInsufficientAuth = errors.New("latch: insufficient user authentication")

// InsufficientAuthError reports an unmet AuthRequirement. It matches
// ErrInsufficientAuth. A challenge (RFC 9470 §3) repeats the whole
// requirement, not only the part that failed.
type InsufficientAuthError struct {
	Need     AuthRequirement
	TooOld   bool // AuthTime is older than Need.MaxAge
	WrongACR bool // ACR is not one of Need.ACRValues
}

func (e *InsufficientAuthError) Error() string {
	switch {
	case e.TooOld && e.WrongACR:
		return "latch: insufficient user authentication: too old and of another class"
	case e.TooOld:
		return "latch: insufficient user authentication: too old"
	default:
		return "latch: insufficient user authentication: of another class"
	}
}

func (e *InsufficientAuthError) Is(target error) bool { return target == ErrInsufficientAuth }

// IsZero reports whether r demands nothing.
func (r AuthRequirement) IsZero() bool { return r.MaxAge <= 0 && len(r.ACRValues) == 0 }

// checkAuthTime is the rule for an AuthTime given to Create or Renew: not
// later than now plus AuthTimeLeeway, and recorded as now if within it, so
// a session never claims an authentication from the future.
func checkAuthTime(t, now time.Time) (time.Time, error) {
	if t.After(now.Add(AuthTimeLeeway)) {
		return t, badInput("auth_time", "is in the future")
	}
	if t.After(now) {
		return now, nil
	}
	return t.UTC(), nil
}

// Check reports, as an *InsufficientAuthError, whether an authentication at
// authTime with class acr fails r at now. It works for a Session
// (AuthTime, ACR) and for an access token's claims alike. A zero authTime
// is too old for any MaxAge.
func (r AuthRequirement) Check(authTime time.Time, acr string, now time.Time) error {
	e := &InsufficientAuthError{Need: r}
	if r.MaxAge > 0 && (authTime.IsZero() || now.Sub(authTime) > r.MaxAge) {
		e.TooOld = true
	}
	if len(r.ACRValues) > 0 {
		e.WrongACR = true
		for _, v := range r.ACRValues {
			if v == acr && acr != "" {
				e.WrongACR = false
				break
			}
		}
	}
	if e.TooOld || e.WrongACR {
		return e
	}
	return nil
}

// maxACRValues bounds AuthRequirement.ACRValues.
const maxACRValues = 8

// Valid reports, as an *InputError, an ACRValues entry that could never
// match a session's ACR (see CheckAuthContext): such a requirement is a bug
// in the caller, not an unmet requirement.
func (r AuthRequirement) Valid() error {
	if len(r.ACRValues) > maxACRValues {
		return badInput("acr_values", "lists more than "+strconv.Itoa(maxACRValues)+" values")
	}
	for _, v := range r.ACRValues {
		if v == "" || len(v) > store.MaxACRLen || !store.AuthValue(v) {
			return badInput("acr_values", "each value must be 1 to "+strconv.Itoa(store.MaxACRLen)+" bytes of visible ASCII other than '\"' and '\\'")
		}
	}
	return nil
}

// CheckAuthContext reports, as an *InputError, an ACR or AMR a session
// cannot record: an ACR of more than store.MaxACRLen bytes, more than
// store.MaxAMRValues AMR values or one outside 1..store.MaxAMRValueLen
// bytes, or a byte other than visible ASCII without '"' and '\' in either.
// Create and Renew call it; most users won't need it.
func CheckAuthContext(acr string, amr []string) error {
	if len(acr) > store.MaxACRLen || !store.AuthValue(acr) {
		return badInput("acr", "must be at most "+strconv.Itoa(store.MaxACRLen)+" bytes of visible ASCII other than '\"' and '\\'")
	}
	if len(amr) > store.MaxAMRValues {
		return badInput("amr", "lists more than "+strconv.Itoa(store.MaxAMRValues)+" methods")
	}
	for _, m := range amr {
		if m == "" || len(m) > store.MaxAMRValueLen || !store.AuthValue(m) {
			return badInput("amr", "each method must be 1 to "+strconv.Itoa(store.MaxAMRValueLen)+" bytes of visible ASCII other than '\"' and '\\'")
		}
	}
	return nil
}

// Challenge is the WWW-Authenticate value (RFC 9470 §3) that tells a client
// the Bearer token it sent does not meet r: error, a fixed description, and
// the max_age and acr_values r demands. Values that pass Valid need no
// escaping.
func (r AuthRequirement) Challenge() string {
	var b strings.Builder
	b.WriteString(`Bearer error="insufficient_user_authentication", error_description="`)
	switch {
	case r.MaxAge > 0 && len(r.ACRValues) > 0:
		b.WriteString("A more recent authentication of another level is required")
	case r.MaxAge > 0:
		b.WriteString("A more recent authentication is required")
	default:
		b.WriteString("A different authentication level is required")
	}
	b.WriteByte('"')
	if r.MaxAge > 0 {
		b.WriteString(`, max_age="`)
		b.WriteString(strconv.FormatInt(int64(r.MaxAge/time.Second), 10))
		b.WriteByte('"')
	}
	if len(r.ACRValues) > 0 {
		b.WriteString(`, acr_values="`)
		b.WriteString(strings.Join(r.ACRValues, " "))
		b.WriteByte('"')
	}
	return b.String()
}
