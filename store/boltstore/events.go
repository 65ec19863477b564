package boltstore

import (
	"context"
	"time"

	"github.com/latch-sessions/latch/store"
)

// Publish appends e to the store's event log; see [store.EventLog]. The log
// lives in this process (a bbolt file has one): events are retained for
// [store.DefaultEventRetention] and do not survive a restart.
func (s *Store) Publish(ctx context.Context, e store.Event) error { return s.events.Publish(ctx, e) }

// Subscribe delivers the store's events; see [store.EventLog].
func (s *Store) Subscribe(ctx context.Context, since time.Time, sink store.EventSink) error {
	return s.events.Subscribe(ctx, since, sink)
}
