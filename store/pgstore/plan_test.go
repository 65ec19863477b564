package pgstore

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// TestSweepSkipsLockedRows: a row another transaction holds locked is left
// for a later sweep instead of waited for.
func TestSweepSkipsLockedRows(t *testing.T) {
	s := openTestStore(t, Options{SweepBatch: 2})
	ctx := ctxT(t)
	var held []byte
	for i := 0; i < 5; i++ {
		r := newRecord(t, "alice", 0)
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		held = r.ID[:]
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT 1 FROM "+s.q.sessions+" WHERE id = $1 FOR UPDATE", held); err != nil {
		t.Fatal(err)
	}
	later := testEpoch.AddDate(0, 0, 2)
	if n, err := s.Sweep(ctx, later); err != nil || n != 4 {
		t.Fatalf("Sweep with one row locked: %d, %v; want 4 and no waiting", n, err)
	}
	tx.Rollback(ctx)
	if n, err := s.Sweep(ctx, later); err != nil || n != 1 {
		t.Fatalf("Sweep after the lock is gone: %d, %v; want 1", n, err)
	}
}

// TestQueriesUseIndexes: with sequential scans disabled, the planner serves
// every request-path query and the sweeper from an index, so none has to
// read the whole table. (On tiny tables it would pick a sequential scan by
// cost, which says nothing.)
func TestQueriesUseIndexes(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	id := make([]byte, 18)
	subj := []byte("alice")
	cases := map[string][]any{
		s.q.get:           {id},
		s.q.list:          {subj, int64(1)},
		s.q.evict:         {subj, id, int64(1), 3, []byte("evicted"), int64(0)},
		s.q.revokeSubject: {subj, id, []byte("x"), int64(1), int64(0)},
		s.q.sweep:         {int64(1), 500},
		s.q.rotate:        {id, id, id, id, id, int64(0), int64(0), int64(0), int64(0), int64(0)},
		s.q.update:        append([]any{id, int64(1)}, sqlstore.Args(newRecord(t, "alice", 0))...),
		s.q.revoke:        {id, []byte("x"), int64(1), int64(0)},
	}
	for q, args := range cases {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "EXPLAIN "+q, args...)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			plan := strings.Join(lines, "\n")
			if strings.Contains(plan, "Seq Scan") {
				t.Errorf("query scans the whole table:\n%s\n%s", q, plan)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", q, err)
		}
	}
}
