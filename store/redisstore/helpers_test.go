package redisstore

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
	"github.com/redis/rueidis"
)

// testPrefix returns a key prefix no other test uses.
func testPrefix() string {
	return "latchtest:" + strings.ToLower(rand.Text()[:8]) + ":"
}

// tracked is a Store that remembers every key its tests may have written,
// so Cleanup can delete exactly those (no SCAN, even in tests).
type tracked struct {
	*Store
	mu       sync.Mutex
	ids      map[store.ID]bool
	subjects map[string]bool
}

func (t *tracked) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	if rec != nil {
		t.mu.Lock()
		t.ids[rec.ID] = true
		t.subjects[rec.Subject] = true
		t.mu.Unlock()
	}
	return t.Store.Create(ctx, rec, max)
}

func (t *tracked) cleanup(tb testing.TB) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := []string{t.keyringKey()}
	for id := range t.ids {
		keys = append(keys, t.recordKey(id))
	}
	for sub := range t.subjects {
		keys = append(keys, t.indexKey(sub))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := t.client
	cmds := make(rueidis.Commands, 0, len(keys))
	for _, k := range keys {
		cmds = append(cmds, c.B().Del().Key(k).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			tb.Logf("cleanup: %v", err)
			return
		}
	}
}

// openURL opens a Store on url with a fresh prefix, closed and cleaned up
// when tb ends.
func openURL(tb testing.TB, url string, opts ...Option) *tracked {
	tb.Helper()
	prefix := testPrefix()
	opts = append([]Option{func(o *Options) { o.Prefix = prefix }}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, url, opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	t := &tracked{Store: s, ids: map[store.ID]bool{}, subjects: map[string]bool{}}
	tb.Cleanup(func() {
		t.cleanup(tb)
		s.Close()
	})
	waitLive(tb, s)
	return t
}

// waitLive starts s's heartbeat, as a first Get would, and waits until its
// cache may serve records, so that tests of the cache need not warm it
// themselves. Stores without a bound return at once.
func waitLive(tb testing.TB, s *Store) {
	tb.Helper()
	if s.live.bound <= 0 {
		return
	}
	s.live.want()
	deadline := time.Now().Add(10 * time.Second)
	for !s.live.fresh() {
		if time.Now().After(deadline) {
			tb.Fatalf("the cache of a store on a healthy Redis was not proven live within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// standalone opens a Store on the shared standalone Redis.
func standalone(tb testing.TB, opts ...Option) *tracked {
	tb.Helper()
	return openURL(tb, "redis://"+testredis.Addr(tb), opts...)
}

// clusterURL returns the redis-cluster:// URL of a private test cluster.
func clusterURL(tb testing.TB) string {
	tb.Helper()
	return "redis-cluster://" + strings.Join(testredis.StartCluster(tb), ",")
}

// newRecord returns a realistic fresh record of subject.
func newRecord(tb testing.TB, subject string, now time.Time) *store.Record {
	tb.Helper()
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	r := &store.Record{
		ID:            id,
		Subject:       subject,
		CreatedAt:     now,
		AuthTime:      now,
		LastSeenAt:    now,
		IdleExpiresAt: now.Add(30 * time.Minute),
		ExpiresAt:     now.Add(24 * time.Hour),
	}
	rand.Read(r.VerifierHash[:])
	rand.Read(r.CSRFSecret[:])
	rand.Read(r.Refresh.Key[:])
	rand.Read(r.Refresh.Current[:])
	return r
}
