package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/latch-sessions/latch/store"
)

// Error is every error a SQL store returns for a backend failure or a
// contract outcome. It matches its sentinel (store.ErrUnavailable,
// store.ErrExists, …) and its cause with errors.Is / errors.As; its message
// never contains the password it was given.
type Error struct {
	Pkg, Op  string
	Sentinel error
	Cause    error
	Password string // scrubbed from the cause's message
}

func (e *Error) Error() string {
	msg := e.Pkg + ": " + e.Op + ": " + e.Sentinel.Error()
	if e.Cause != nil {
		c := e.Cause.Error()
		if e.Password != "" {
			c = strings.ReplaceAll(c, e.Password, "xxxxx")
		}
		msg += ": " + c
	}
	return msg
}

func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Sentinel}
	}
	return []error{e.Sentinel, e.Cause}
}

// Errors maps a driver's errors for one store.
type Errors struct {
	Pkg      string
	Password string
	// Classify names the contract sentinel of a driver error: ErrNotFound
	// for "no rows", ErrExists for a unique violation; nil (anything
	// else: network, timeout, server error) means ErrUnavailable, so the
	// manager fails closed.
	Classify func(error) error
}

// Wrap classifies err (nil stays nil; an *Error passes through). When ctx
// is done the error also matches ctx.Err(), whatever the driver reported,
// as the store contract requires.
func (m Errors) Wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, store.ErrInvalid) {
		return fmt.Errorf("%s: %s: %w", m.Pkg, op, err) // refused before reaching the backend
	}
	sentinel := store.ErrUnavailable
	if m.Classify != nil {
		if s := m.Classify(err); s != nil {
			sentinel = s
		}
	}
	if sentinel == store.ErrNotFound {
		return &Error{Pkg: m.Pkg, Op: op, Sentinel: sentinel}
	}
	if sentinel == store.ErrUnavailable {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = errors.Join(err, cerr)
		}
	}
	return &Error{Pkg: m.Pkg, Op: op, Sentinel: sentinel, Cause: err, Password: m.Password}
}

// Verdict is a contract outcome without a backend cause (ErrNotFound,
// ErrConflict).
func (m Errors) Verdict(op string, sentinel error) error {
	return &Error{Pkg: m.Pkg, Op: op, Sentinel: sentinel}
}
