package memstore

import (
	"context"
	"time"

	"github.com/latch-sessions/latch/store"
)

// Publish appends e to the store's event log; see [store.EventLog]. The log
// lives in memory: events are retained for [store.DefaultEventRetention]
// and, like the records, do not survive the process.
func (s *Store) Publish(ctx context.Context, e store.Event) error { return s.events.Publish(ctx, e) }

// Subscribe delivers the store's events; see [store.EventLog].
func (s *Store) Subscribe(ctx context.Context, since time.Time, sink store.EventSink) error {
	return s.events.Subscribe(ctx, since, sink)
}
