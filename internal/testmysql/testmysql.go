// Package testmysql gives integration tests outside store/mysqlstore a fresh
// database on the MySQL or MariaDB server named by LATCH_TEST_MYSQL (a
// driver DSN or mysql:// URL; default root@tcp(127.0.0.1:3306)/test).
//
// Where the server is unreachable it skips the test with a message saying
// what to set, unless LATCH_REQUIRE_INTEGRATION=1 (CI sets it), in which
// case it fails it.
package testmysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store/mysqlstore"
)

// DefaultDSN is the server tests use when LATCH_TEST_MYSQL is unset.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/test"

// Database creates a database of its own for tb, dropped when tb ends, and
// returns a driver DSN for it (for mysqlstore.Open), so tests never see each
// other's rows.
func Database(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("LATCH_TEST_MYSQL")
	if dsn == "" {
		dsn = DefaultDSN
	}
	cfg, err := mysqlstore.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("LATCH_TEST_MYSQL: %v", err)
	}
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
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "latch_t_" + hex.EncodeToString(rnd[:])
	if err := admin("CREATE DATABASE " + name); err != nil {
		testredis.Unavailable(tb, "MySQL/MariaDB unreachable (set LATCH_TEST_MYSQL): "+err.Error())
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
