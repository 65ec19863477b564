package memstore

import (
	"context"
	"time"

	"github.com/latch-sessions/latch/store"
)

var _ store.ReplayCache = (*Store)(nil)

// replay is the store's [store.ReplayCache]: one map under one lock, pruned
// of passed entries whenever it has doubled since the last pruning, so its
// size stays proportional to the entries still within their window.
type replay struct {
	seen  map[string]time.Time
	prune int // prune when len(seen) reaches this
}

// Seen implements [store.ReplayCache].
func (s *Store) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := unavailable(ctx); err != nil {
		return false, err
	}
	if err := store.ValidReplayKey(key); err != nil {
		return false, err
	}
	now := time.Now()
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	r := &s.replay
	if r.seen == nil {
		r.seen = make(map[string]time.Time)
	}
	if u, ok := r.seen[key]; ok && now.Before(u) {
		return false, nil
	}
	if len(r.seen) >= r.prune {
		for k, u := range r.seen {
			if !now.Before(u) {
				delete(r.seen, k)
			}
		}
		r.prune = max(1024, 2*len(r.seen))
	}
	r.seen[key] = until
	return true, nil
}
