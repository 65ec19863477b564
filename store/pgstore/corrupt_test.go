package pgstore

import (
	"database/sql"
	"fmt"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql for the raw client

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqltest"
	"github.com/latch-sessions/latch/store/storetest"
)

// rawRows is a raw client on s's sessions table, closed with the test.
func rawRows(t *testing.T, s *Store) sqltest.RowCorrupter {
	t.Helper()
	db, err := sql.Open("pgx", testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return sqltest.RowCorrupter{DB: db, Table: s.q.sessions, Param: func(n int) string { return fmt.Sprintf("$%d", n) }}
}

func TestCorruptionDetected(t *testing.T) {
	s := openTestStore(t, Options{})
	storetest.RunCorruption(t, func(*testing.T) store.Store { return s }, rawRows(t, s))
}

func TestUnsummedRowsStillWork(t *testing.T) {
	s := openTestStore(t, Options{})
	sqltest.CheckUnsummedRows(t, s, rawRows(t, s), newRecord(t, "alice", 0))
}
