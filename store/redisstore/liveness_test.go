package redisstore

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
)

// stallConn is a connection whose reads can be held back, as if the
// network had stopped delivering on this one connection only.
type stallConn struct {
	net.Conn
	mu      sync.Mutex
	running chan struct{} // closed while reads go through
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	ch := c.running
	c.mu.Unlock()
	<-ch
	return c.Conn.Read(p)
}

func (c *stallConn) stall() {
	c.mu.Lock()
	c.running = make(chan struct{})
	c.mu.Unlock()
}

func (c *stallConn) resume() {
	c.mu.Lock()
	close(c.running)
	c.mu.Unlock()
}

// stallDialer records every connection a store makes.
type stallDialer struct {
	mu    sync.Mutex
	conns []*stallConn
}

func (d *stallDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: c, running: make(chan struct{})}
	close(sc.running)
	d.mu.Lock()
	d.conns = append(d.conns, sc)
	d.mu.Unlock()
	return sc, nil
}

// waitFresh polls s until its cache freshness is want, failing after 10 s.
func waitFresh(t *testing.T, s *Store, want bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.live.fresh() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the cache's freshness never became %v", what, want)
		}
		s.live.want()
		time.Sleep(time.Millisecond)
	}
}

// TestHeartbeatReachesEveryConnection stalls, one at a time, each of the
// connections rueidis multiplexes to the server: each must make the cache
// stale, since each holds the cached entries of its share of the keys.
func TestHeartbeatReachesEveryConnection(t *testing.T) {
	srv := testredis.StartServer(t)
	var d stallDialer
	s := openURL(t, "redis://"+srv.Addr(), func(o *Options) { o.Dial = d.dial })
	d.mu.Lock()
	conns := append([]*stallConn(nil), d.conns...)
	d.mu.Unlock()
	if want := wiresPerNode(multiplexFor(s.client.Mode(), 0)); len(conns) != want {
		t.Fatalf("the store opened %d connections, want one per pipelining connection (%d)", len(conns), want)
	}
	for i, c := range conns {
		c.stall()
		waitFresh(t, s.Store, false, "one connection stalled")
		c.resume()
		waitFresh(t, s.Store, true, "the connection resumed")
		t.Logf("connection %d of %d: a stall made the cache stale", i+1, len(conns))
	}
}

// TestStaleCacheReadsThrough: a Get that finds the cache stale reads from
// Redis, so it sees a revocation whose invalidation was held back, and the
// heartbeat goes idle when the cache is not used.
func TestStaleCacheReadsThrough(t *testing.T) {
	srv := testredis.StartServer(t)
	a := openURL(t, "redis://"+srv.Addr())
	var d stallDialer
	b := openURL(t, "redis://"+srv.Addr(), func(o *Options) {
		o.Prefix = a.prefix
		o.Dial = d.dial
		o.CacheTTL = 50 * time.Millisecond // the heartbeat idles 50ms + the bound after the last fill
	})
	ctx := t.Context()
	r := newRecord(t, "stale-"+rand.Text()[:6], time.Now())
	if _, err := a.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	key := b.recordKey(r.ID)
	for {
		if _, err := b.Get(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if b.client.DoCache(ctx, b.client.B().Get().Key(key).Cache(), b.ttl).IsCacheHit() {
			break // B serves it from its cache
		}
	}
	// Hold back every reply to B, then revoke through A: B's cache keeps
	// the live record, since the invalidation does not arrive.
	d.mu.Lock()
	for _, c := range d.conns {
		c.stall()
	}
	d.mu.Unlock()
	if err := a.Revoke(ctx, r.ID, store.ReasonAdmin, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFresh(t, b.Store, false, "B's replies held back")
	d.mu.Lock()
	for _, c := range d.conns {
		c.resume()
	}
	d.mu.Unlock()
	got, err := b.Get(ctx, r.ID)
	if err != nil || !got.Revoked() {
		t.Fatalf("Get with the cache stale: %v, revoked %v; want the revoked record", err, got != nil && got.Revoked())
	}

	// Unused, the heartbeat stops: once the idle time (and a round that
	// may have been under way) has passed, the bound passes and stays passed.
	l := &b.live
	deadline := time.Now().Add(10 * time.Second)
	for l.fresh() || l.now()-l.wanted.Load() <= int64(l.idle+l.bound+l.every) {
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat kept running with the cache unused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	until := l.until.Load()
	time.Sleep(3 * l.every)
	if l.until.Load() != until {
		t.Fatal("the heartbeat ran with the cache unused past CacheTTL")
	}
	// The next Get wakes it.
	if _, err := b.Get(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	waitFresh(t, b.Store, true, "a Get after the idle time")
}

// TestCloseTwice: Close stops the heartbeat once; a second Close is harmless.
func TestCloseTwice(t *testing.T) {
	s, err := Open(t.Context(), "redis://"+testredis.Addr(t), func(o *Options) { o.Prefix = testPrefix() })
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, s)
	s.Close()
	s.Close()
}

// TestGetHitAllocs: a cache hit allocates nothing with context.Background
// or a context whose deadline is within the timeout, and only its bounded
// context otherwise, staleness check included. The minimum of a few measurements is taken, so
// that a heartbeat delayed on a loaded machine (a Get that reads through)
// does not count.
func TestGetHitAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations against Redis")
	}
	a := standalone(t)
	b := openURL(t, "redis://"+testredis.Addr(t), func(o *Options) { o.Prefix = a.prefix })
	r := newRecord(t, "allocs-"+rand.Text()[:6], time.Now())
	if _, err := a.Create(t.Context(), r, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
		max  float64
	}{
		{"background", context.Background(), 0},
		{"values", context.WithValue(context.Background(), struct{}{}, 1), 1},
		{"deadline", func() context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			t.Cleanup(cancel)
			ctx, cancel = context.WithTimeout(ctx, time.Second/2)
			t.Cleanup(cancel)
			return ctx
		}(), 0},
	} {
		for range 3 {
			if _, err := b.Get(c.ctx, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		best := 1e9
		for range 5 {
			waitFresh(t, b.Store, true, "before measuring")
			best = min(best, testing.AllocsPerRun(200, func() { b.Get(c.ctx, r.ID) }))
		}
		if best > c.max {
			t.Errorf("cached Get, %s: %v allocs, want at most %v", c.name, best, c.max)
		}
	}
}

// TestGetAllocs: an uncached Get of an unchanged record allocates
// rueidis's reply alone (see memo), and with a caller's context that is not
// context.Background its bounded context.
func TestGetAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations against Redis")
	}
	s := standalone(t, func(o *Options) { o.DisableCache = true })
	r := newRecord(t, "allocs-"+rand.Text()[:6], time.Now())
	r.Data = []byte(`{"user":"alice"}`)
	if _, err := s.Create(t.Context(), r, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
		max  float64
	}{
		{"background", context.Background(), 1},
		{"values", context.WithValue(context.Background(), struct{}{}, 1), 2},
	} {
		// The minimum of a few runs: AllocsPerRun counts the whole process,
		// and rueidis allocates its pipeline's ring once, on first need.
		got := 1e9
		for range 3 {
			got = min(got, testing.AllocsPerRun(200, func() { s.Get(c.ctx, r.ID) }))
		}
		if got > c.max {
			t.Errorf("uncached Get, %s: %v allocs, want at most %v", c.name, got, c.max)
		}
	}
}

// TestServeWaitsForLateRound drives serve on a liveness of its own: a
// proof younger than half the bound serves at once; an older one with a
// round under way waits for the round and serves only what fresh allows
// after it; an expired proof never serves, round or not.
func TestServeWaitsForLateRound(t *testing.T) {
	l := &liveness{bound: 250 * time.Millisecond, every: 50 * time.Millisecond, base: time.Now().Add(-time.Hour)}
	ended := make(chan struct{})
	l.ended.Store(&ended)
	ctx := context.Background()

	l.until.Store(l.now() + int64(l.bound))
	if !l.serve(ctx) {
		t.Fatal("a proof just made does not serve")
	}

	// Older than half the bound, a round under way that proves liveness.
	l.until.Store(l.now() + int64(l.bound)/4)
	l.inflight.Store(1)
	got := make(chan bool)
	go func() { got <- l.serve(ctx) }()
	l.raise(l.now() + int64(l.bound))
	l.inflight.Store(0)
	l.roundEnded()
	if !<-got {
		t.Fatal("a Get that waited for a successful round does not serve")
	}

	// A wait that brings no newer proof (the round ended and failed) is
	// not repeated for the same proof: the next Get serves at once.
	l.until.Store(l.now() + int64(l.bound)/4)
	l.inflight.Store(1)
	go func() { got <- l.serve(ctx) }()
	l.roundEnded() // may come before serve waits: then the timer ends it
	if !<-got {
		t.Fatal("a proof within the bound does not serve after a failed round")
	}
	if l.waited.Load() != l.until.Load() {
		t.Fatal("a wait in vain is not remembered")
	}
	if !l.serve(ctx) {
		t.Fatal("a proof within the bound does not serve after a wait in vain")
	}

	// An expired proof, whether or not a round is under way.
	l.until.Store(l.now() - 1)
	l.inflight.Store(1)
	if l.serve(ctx) {
		t.Fatal("an expired proof serves while a round is under way")
	}
	l.inflight.Store(0)
	if l.serve(ctx) {
		t.Fatal("an expired proof serves")
	}

	// Cancelled: the wait ends with the context, and fresh decides.
	l.until.Store(l.now() + int64(l.bound)/4)
	l.inflight.Store(1)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if !l.serve(cctx) {
		t.Fatal("a cancelled wait within the bound does not serve")
	}
}
