package mysqlstore

import (
	"context"
	"time"

	"github.com/latch-sessions/latch/store"
)

var _ store.ReplayCache = (*Store)(nil)

// Seen implements [store.ReplayCache] with INSERT IGNORE on the primary
// key, so of concurrent calls exactly one inserts. Only when the key is
// there already does it delete the row if its until has passed and insert
// again (the usual fresh value costs one round trip).
func (s *Store) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := store.ValidReplayKey(key); err != nil {
		return false, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var fresh bool
	err := s.retry(ctx, func() error {
		insert := func() error {
			res, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO latch_replay (k, until) VALUES (?, ?)`, []byte(key), store.UnixNano(until))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			fresh = n == 1
			return err
		}
		if err := insert(); err != nil || fresh {
			return err
		}
		res, err := s.db.ExecContext(ctx, `DELETE FROM latch_replay WHERE k = ? AND until <= ?`, []byte(key), time.Now().UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // recorded and within its window
		}
		return insert()
	})
	if err != nil {
		return false, s.err(ctx, "replay", err)
	}
	return fresh, nil
}

// sweepReplay deletes up to batch passed replay rows.
func (s *Store) sweepReplay(ctx context.Context, cutoff int64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := s.retry(ctx, func() error {
		_, err := s.db.ExecContext(ctx, `DELETE FROM latch_replay WHERE until <= ? LIMIT ?`, cutoff, s.batch)
		return err
	})
	if err != nil {
		return s.err(ctx, "sweep replay", err)
	}
	return nil
}
