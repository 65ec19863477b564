package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

const uniqueViolation = "23505"

// classify maps pgx errors to the contract: no rows → ErrNotFound, unique
// violation → ErrExists; anything else (network, timeout, cancelled
// context, server error) is ErrUnavailable, so the manager fails closed.
func classify(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		return store.ErrExists
	}
	return nil
}

// errorsFor maps errors of a connection made with password, which no
// message shows.
func errorsFor(password string) sqlstore.Errors {
	return sqlstore.Errors{Pkg: "pgstore", Password: password, Classify: classify}
}

// wrapErr maps an error of a call outside a Store (Open, Migrate).
func wrapErr(ctx context.Context, op string, err error, password string) error {
	return errorsFor(password).Wrap(ctx, op, err)
}

func (s *Store) err(ctx context.Context, op string, err error) error {
	return s.errs.Wrap(ctx, op, err)
}
