package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-sessions/latch/store"
)

// replayTests check the optional [store.ReplayCache].
var replayTests = []test{
	{
		name:   "ReplayCache/OncePerWindow",
		clause: "Seen records key until until and reports fresh = true if key was not already recorded with an until in the future; a second call with the same key before the first one's until reports fresh = false and changes nothing. An entry whose until has passed counts as absent.",
		run: func(t *T) {
			rc := replayCache(t)
			key, other := "storetest-jti-"+rand.Text(), "storetest-jti-"+rand.Text()
			until := time.Now().Add(time.Minute)
			seen := func(k string, until time.Time, want bool) {
				t.Helper()
				fresh, err := rc.Seen(t.ctx, k, until)
				if err != nil {
					t.Fatalf("Seen: %v", err)
				}
				if fresh != want {
					t.Errorf("Seen = fresh %t, want %t", fresh, want)
				}
			}
			seen(key, until, true)
			seen(key, until, false)
			seen(key, until.Add(time.Hour), false) // a replay does not extend or reset the window
			seen(key, time.Now().Add(-time.Second), false)
			seen(other, until, true)
			past := "storetest-jti-" + rand.Text()
			seen(past, time.Now().Add(-time.Second), true)
			seen(past, until, true) // the passed entry was absent
			seen(past, until, false)
		},
	},
	{
		name:   "ReplayCache/Concurrent",
		clause: "Concurrent calls with one key see exactly one fresh = true.",
		run: func(t *T) {
			rc := replayCache(t)
			key := "storetest-jti-" + rand.Text()
			until := time.Now().Add(time.Minute)
			var fresh, failed atomic.Int32
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					ok, err := rc.Seen(t.ctx, key, until)
					if err != nil {
						failed.Add(1)
					} else if ok {
						fresh.Add(1)
					}
				})
			}
			wg.Wait()
			if failed.Load() != 0 || fresh.Load() != 1 {
				t.Errorf("50 concurrent Seen of one key: %d fresh, %d failed; want exactly 1 fresh and none failed", fresh.Load(), failed.Load())
			}
		},
	},
	{
		name:   "ReplayCache/Refusals",
		clause: "Keys are 1..MaxReplayKeyLen bytes (ErrInvalid otherwise). A call whose context is already done fails with an error that matches both ErrUnavailable and ctx.Err() and changes nothing.",
		run: func(t *T) {
			rc := replayCache(t)
			until := time.Now().Add(time.Minute)
			for _, k := range []string{"", strings.Repeat("k", store.MaxReplayKeyLen+1)} {
				if _, err := rc.Seen(t.ctx, k, until); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("Seen with a %d-byte key: %v, want ErrInvalid", len(k), err)
				}
			}
			long := strings.Repeat("k", store.MaxReplayKeyLen-26) + rand.Text()
			ctx, cancel := context.WithCancel(t.ctx)
			cancel()
			if _, err := rc.Seen(ctx, long, until); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
				t.Errorf("Seen with a done context: %v, want ErrUnavailable and context.Canceled", err)
			}
			if fresh, err := rc.Seen(t.ctx, long, until); err != nil || !fresh {
				t.Errorf("Seen of a %d-byte key after the refused call = %t, %v; want fresh (the refused call changed nothing)", len(long), fresh, err)
			}
		},
	},
}

func replayCache(t *T) store.ReplayCache {
	t.Helper()
	rc, ok := t.s.(store.ReplayCache)
	if !ok {
		t.Skip("store does not implement store.ReplayCache")
	}
	return rc
}
