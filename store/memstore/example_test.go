package memstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

func Example() {
	ctx := context.Background()
	s := memstore.New()
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

	for i := range 3 {
		id, _ := store.NewID("alice", rand.Reader)
		rec := &store.Record{
			ID: id, Subject: "alice",
			CreatedAt: now, LastSeenAt: now.Add(time.Duration(i) * time.Minute),
			IdleExpiresAt: now.Add(30 * time.Minute), ExpiresAt: now.Add(24 * time.Hour),
		}
		evicted, _ := s.Create(ctx, rec, 2) // at most 2 live sessions
		fmt.Println("created; evicted", len(evicted))
	}
	live, _ := s.List(ctx, "alice", now)
	fmt.Println("live:", len(live))

	n, _ := s.Sweep(ctx, now.Add(31*time.Minute)) // every idle deadline passed
	fmt.Println("swept:", n, "left:", s.Len())
	// Output:
	// created; evicted 0
	// created; evicted 0
	// created; evicted 1
	// live: 2
	// swept: 3 left: 0
}
