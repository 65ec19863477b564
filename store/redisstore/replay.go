package redisstore

import (
	"context"
	"time"

	"github.com/redis/rueidis"

	"github.com/latch-sessions/latch/store"
)

var _ store.ReplayCache = (*Store)(nil)

// Seen implements [store.ReplayCache] with one SET NX PX of
// "<prefix>{r:<key>}": Redis makes the check and the write one atomic
// step and drops the key itself when until passes. Keys are hashed to
// cluster slots by their own content, so replay entries spread over the
// shards. An until already passed records nothing (the entry would count
// as absent anyway); it only reports whether key is recorded.
func (s *Store) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, unavailable("replay", err)
	}
	if err := store.ValidReplayKey(key); err != nil {
		return false, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	k := s.prefix + "{r:" + key + "}"
	ttl := time.Until(until)
	if ttl < time.Millisecond {
		n, err := s.client.Do(ctx, s.client.B().Exists().Key(k).Build()).AsInt64()
		if err != nil {
			return false, unavailable("replay", err)
		}
		return n == 0, nil
	}
	err := s.client.Do(ctx, s.client.B().Set().Key(k).Value("1").Nx().PxMilliseconds(ttl.Milliseconds()).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil // NX: already recorded
	}
	if err != nil {
		return false, unavailable("replay", err)
	}
	return true, nil
}
