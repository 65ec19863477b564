package redisstore

import "context"

// bound returns ctx bounded by the store's timeout (package deadline): a
// call may run up to an eighth longer, and a caller's cancellation is
// checked when the call starts.
func (s *Store) bound(ctx context.Context) context.Context { return s.deadlines.Bound(ctx) }
