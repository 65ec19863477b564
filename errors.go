package latch

import (
	"errors"

	"github.com/latch-sessions/latch/store"
)

// Errors returned by the Manager. Match them with errors.Is; none of them
// ever carries a token.
var (
	// ErrInvalidToken: the token is malformed, of the wrong kind, unknown,
	// or its secret does not match.
	ErrInvalidToken = errors.New("latch: invalid token")
	// ErrNotFound: no live session has that ID.
	ErrNotFound = errors.New("latch: session not found")
	// ErrExpired: the session passed a deadline. Errors matching it also
	// match exactly one of ErrIdleTimeout and ErrAbsoluteTimeout.
	ErrExpired = errors.New("latch: session expired")
	// ErrIdleTimeout: the session was idle for longer than the idle timeout.
	ErrIdleTimeout = &expiredError{"latch: session expired (idle timeout)"}
	// ErrAbsoluteTimeout: the session outlived its absolute lifetime.
	ErrAbsoluteTimeout = &expiredError{"latch: session expired (absolute timeout)"}
	// ErrRevoked: the session was revoked (logout, admin, revoke-all,
	// eviction, replacement or detected refresh reuse).
	ErrRevoked = errors.New("latch: session revoked")
	// ErrRefreshReuse: an already-rotated refresh token was presented after
	// the grace window. The session has been revoked; the error also
	// matches ErrRevoked.
	ErrRefreshReuse = &reuseError{}
	// ErrConflict: a concurrent write won a compare-and-swap, or an
	// If-Match version did not match. Re-read and retry.
	ErrConflict = store.ErrConflict
	// ErrUnavailable: the store could not be reached or answered with
	// something unusable. The request is not authenticated.
	ErrUnavailable = store.ErrUnavailable
	// ErrBadInput: an argument is malformed or too large. The concrete
	// error is an *InputError naming the field.
	ErrBadInput = errors.New("latch: bad input")
)

type expiredError struct{ msg string }

func (e *expiredError) Error() string        { return e.msg }
func (e *expiredError) Is(target error) bool { return target == ErrExpired }

type reuseError struct{}

func (*reuseError) Error() string {
	return "latch: refresh token reuse detected; session revoked"
}
func (*reuseError) Is(target error) bool { return target == ErrRevoked }

// InputError reports which argument was refused and why. It matches
// ErrBadInput. Its message never quotes the offending value.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string        { return "latch: bad " + e.Field + ": " + e.Reason }
func (e *InputError) Is(target error) bool { return target == ErrBadInput }

func badInput(field, reason string) error { return &InputError{Field: field, Reason: reason} }
