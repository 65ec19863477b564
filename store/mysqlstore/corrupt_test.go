package mysqlstore

import (
	"database/sql"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqltest"
	"github.com/latch-sessions/latch/store/storetest"
)

// openRaw opens a store on a fresh database and a raw client on its
// sessions table, both closed with the test.
func openRaw(t *testing.T) (*Store, sqltest.RowCorrupter) {
	t.Helper()
	dsn := testDatabase(t)
	s := openTestStoreAt(t, dsn, Options{})
	cfg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return s, sqltest.RowCorrupter{DB: db, Table: "latch_sessions", Param: func(int) string { return "?" }}
}

func TestCorruptionDetected(t *testing.T) {
	s, raw := openRaw(t)
	storetest.RunCorruption(t, func(*testing.T) store.Store { return s }, raw)
}

func TestUnsummedRowsStillWork(t *testing.T) {
	s, raw := openRaw(t)
	r := newRecord(t, "alice")
	sqltest.CheckUnsummedRows(t, s, raw, r)
}
