package mysqlstore

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/latch-sessions/latch/store/internal/sqltest"
)

const defaultTestDSN = "root@tcp(127.0.0.1:3306)/test"

// testDSN returns the MySQL/MariaDB DSN tests use (LATCH_TEST_MYSQL, a
// driver DSN or mysql:// URL), or skips the test when the server is
// unreachable — unless LATCH_REQUIRE_INTEGRATION=1 (CI), where that is a
// failure.
func testDSN(tb testing.TB) string {
	tb.Helper()
	return sqltest.DSN(tb, "LATCH_TEST_MYSQL", defaultTestDSN, "MySQL/MariaDB", func(ctx context.Context, dsn string) error {
		cfg, err := ParseDSN(dsn)
		if err != nil {
			return err
		}
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(c)
		defer db.Close()
		return db.PingContext(ctx)
	})
}

// testDatabase creates a fresh database, dropped when the test ends, and
// returns a driver DSN for it, so test runs never see each other's rows.
func testDatabase(tb testing.TB) string {
	tb.Helper()
	cfg, err := ParseDSN(testDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	name := sqltest.Name("latch_test_")
	admin := func(q string) error {
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(c)
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = db.ExecContext(ctx, q)
		return err
	}
	if err := admin("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		if err := admin("DROP DATABASE IF EXISTS " + name); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	c := cfg.Clone()
	c.DBName = name
	return c.FormatDSN()
}

// openTestStore opens a Store on a fresh database; it is closed and the
// database dropped when the test ends.
func openTestStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	return openTestStoreAt(tb, testDatabase(tb), opts)
}

func openTestStoreAt(tb testing.TB, dsn string, opts Options) *Store {
	tb.Helper()
	if opts.OpTimeout == 0 {
		// Tests check behaviour, not speed: a loaded machine must not turn
		// a slow call into a failure. Fail-closed timeouts are tested
		// explicitly.
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
