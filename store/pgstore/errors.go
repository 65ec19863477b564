package pgstore

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/latch-sessions/latch/store"
)

// storeError is every error a Store method returns for a backend failure.
// It matches its sentinel (store.ErrUnavailable, store.ErrExists, …) and its
// cause with errors.Is / errors.As; its message never contains the password.
type storeError struct {
	op       string
	sentinel error
	cause    error
	password string
}

func (e *storeError) Error() string {
	msg := "pgstore: " + e.op + ": " + e.sentinel.Error()
	if e.cause != nil {
		c := e.cause.Error()
		if e.password != "" {
			c = strings.ReplaceAll(c, e.password, "xxxxx")
		}
		msg += ": " + c
	}
	return msg
}

func (e *storeError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}

const uniqueViolation = "23505"

// wrapErr classifies a pgx error: no rows → ErrNotFound, unique violation →
// ErrExists, anything else (network, timeout, cancelled context, server
// error) → ErrUnavailable, so that the manager fails closed.
func wrapErr(op string, err error, password string) error {
	if err == nil {
		return nil
	}
	var se *storeError
	if errors.As(err, &se) {
		return err
	}
	sentinel := store.ErrUnavailable
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return &storeError{op: op, sentinel: store.ErrNotFound}
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		sentinel = store.ErrExists
	}
	return &storeError{op: op, sentinel: sentinel, cause: err, password: password}
}

func (s *Store) err(op string, err error) error { return wrapErr(op, err, s.password) }

// sentinelErr is a contract outcome without a backend cause (ErrNotFound,
// ErrConflict).
func sentinelErr(op string, sentinel error) error {
	return &storeError{op: op, sentinel: sentinel}
}
