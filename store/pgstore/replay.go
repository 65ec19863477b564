package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latch-sessions/latch/store"
)

var _ store.ReplayCache = (*Store)(nil)

// Seen implements [store.ReplayCache] in one statement: insert the key, or
// take over a row whose until has passed; a row comes back only then. The
// conflicting insert locks the row, so of concurrent calls exactly one
// sees it absent.
func (s *Store) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := store.ValidReplayKey(key); err != nil {
		return false, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var one int
	err := s.pool.QueryRow(ctx, `INSERT INTO `+pgx.Identifier{s.q.schema, "replay"}.Sanitize()+` AS r (key, until) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET until = EXCLUDED.until WHERE r.until <= $3 RETURNING 1`,
		[]byte(key), store.UnixNano(until), time.Now().UnixNano()).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.err(ctx, "replay", err)
	}
	return true, nil
}

// sweepReplay deletes up to batch passed replay rows.
func (s *Store) sweepReplay(ctx context.Context, cutoff int64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	t := pgx.Identifier{s.q.schema, "replay"}.Sanitize()
	_, err := s.pool.Exec(ctx, `DELETE FROM `+t+` WHERE key IN (SELECT key FROM `+t+` WHERE until <= $1 LIMIT $2)`, cutoff, s.batch)
	if err != nil {
		return s.err(ctx, "sweep replay", err)
	}
	return nil
}
