package pgstore

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqltest"
)

const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testDSN returns the PostgreSQL DSN tests use (LATCH_TEST_POSTGRES), or
// skips the test when the server is unreachable — unless
// LATCH_REQUIRE_INTEGRATION=1 (CI), where that is a failure.
func testDSN(tb testing.TB) string {
	tb.Helper()
	return sqltest.DSN(tb, "LATCH_TEST_POSTGRES", defaultTestDSN, "PostgreSQL", func(ctx context.Context, dsn string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	})
}

// testSchema returns a fresh schema name, dropped when the test ends, so
// concurrent test runs against one database never see each other's rows.
func testSchema(tb testing.TB, dsn string) string {
	tb.Helper()
	schema := sqltest.Name("latch_test_")
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("drop test schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop test schema: %v", err)
		}
	})
	return schema
}

// openTestStore opens a Store on its own schema; it is closed and the
// schema dropped when the test ends.
func openTestStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	dsn := testDSN(tb)
	if opts.Schema == "" {
		opts.Schema = testSchema(tb, dsn)
	}
	if opts.OpTimeout == 0 {
		// Tests check behaviour, not speed: a loaded CI machine (or other
		// engineers' runs on the same two cores) must not turn a slow
		// call into a failure. Fail-closed timeouts are tested explicitly.
		opts.OpTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var testEpoch = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)

// newRecord returns a fully populated live record of subject, created at
// testEpoch+offset.
func newRecord(tb testing.TB, subject string, offset time.Duration) *store.Record {
	tb.Helper()
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := testEpoch.Add(offset)
	r := &store.Record{
		ID:            id,
		Subject:       subject,
		CreatedAt:     now,
		AuthTime:      now,
		LastSeenAt:    now,
		IdleExpiresAt: now.Add(30 * time.Minute),
		ExpiresAt:     now.Add(24 * time.Hour),
		IP:            "192.0.2.1",
		UserAgent:     "test-agent/1.0",
		Data:          []byte(`{"k":"v"}`),
		Claims:        []byte(`{"role":"admin"}`),
	}
	rand.Read(r.VerifierHash[:])
	rand.Read(r.CSRFSecret[:])
	rand.Read(r.Refresh.Key[:])
	rand.Read(r.Refresh.Current[:])
	return r
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
