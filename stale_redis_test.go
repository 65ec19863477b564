package latch_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/redisstore"
)

// countingFresh counts the reads a Manager makes past the Redis store's
// client-side cache.
type countingFresh struct {
	*redisstore.Store
	fresh atomic.Int64
}

func (c *countingFresh) GetFresh(ctx context.Context, id store.ID) (*store.Record, error) {
	c.fresh.Add(1)
	return c.Store.GetFresh(ctx, id)
}

// laggyConn delivers what the server sent lag after it arrived: on B's
// connection it holds Redis's invalidation of B's cached record back long
// enough for B to serve the stale copy, which on loopback happens only
// now and then (it needs B's reader to be descheduled).
type laggyConn struct {
	net.Conn
	lag    time.Duration
	chunks chan lagChunk
	buf    []byte
	err    error
}

type lagChunk struct {
	b   []byte
	at  time.Time
	err error
}

func newLaggyConn(c net.Conn, lag time.Duration) *laggyConn {
	l := &laggyConn{Conn: c, lag: lag, chunks: make(chan lagChunk, 1024)}
	go func() {
		for {
			b := make([]byte, 64<<10)
			n, err := c.Read(b)
			l.chunks <- lagChunk{b[:n], time.Now().Add(lag), err}
			if err != nil {
				close(l.chunks)
				return
			}
		}
	}()
	return l
}

func (l *laggyConn) Read(p []byte) (int, error) {
	for len(l.buf) == 0 {
		if l.err != nil {
			return 0, l.err
		}
		ck, ok := <-l.chunks
		if !ok {
			return 0, net.ErrClosed
		}
		time.Sleep(time.Until(ck.at))
		l.buf, l.err = ck.b, ck.err
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

// TestRefreshAcrossCachingReplicas is two replicas, each with its own
// client-side cache, on one real Redis: a refresh token rotated through A
// and presented to B at once (before Redis's invalidation of B's cached
// record has arrived: B's replies come 30 ms late) must rotate on B, and
// the parent presented again must still be caught as reuse.
func TestRefreshAcrossCachingReplicas(t *testing.T) {
	url := "redis://" + testredis.Addr(t) + "?prefix=latchtest:" + strings.ToLower(rand.Text()[:8]) + ":"
	open := func(lag time.Duration) *redisstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := redisstore.Open(ctx, url, func(o *redisstore.Options) {
			if lag == 0 {
				return
			}
			o.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				if err != nil {
					return nil, err
				}
				return newLaggyConn(c, lag), nil
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	cfg := func(s store.Store) latch.Config {
		// Short lifetimes, so the test's keys expire by themselves.
		return latch.Config{Store: s, IdleTimeout: 2 * time.Minute, AbsoluteTimeout: 3 * time.Minute, Observer: latch.MultiObserver()}
	}
	ma, err := latch.New(cfg(open(0)))
	if err != nil {
		t.Fatal(err)
	}
	b := &countingFresh{Store: open(30 * time.Millisecond)}
	mb, err := latch.New(cfg(b))
	if err != nil {
		t.Fatal(err)
	}

	const rounds = 20
	stale := 0
	for i := range rounds {
		is, err := ma.Create(ctx, latch.NewSession{Subject: "stale-cache-user"})
		if err != nil {
			t.Fatal(err)
		}
		// B reads the record (twice: the second read is served from its
		// cache), so it holds a copy that A's rotation makes stale.
		for range 2 {
			if _, err := mb.Peek(ctx, is.SessionToken.Reveal()); err != nil {
				t.Fatalf("round %d: peek on B: %v", i, err)
			}
		}
		r1, err := ma.Refresh(ctx, is.RefreshToken.Reveal())
		if err != nil {
			t.Fatalf("round %d: refresh on A: %v", i, err)
		}
		before := b.fresh.Load()
		if _, err := mb.Refresh(ctx, r1.RefreshToken.Reveal()); err != nil {
			t.Fatalf("round %d: the successor of a rotation through A, on B at once: %v", i, err)
		}
		if b.fresh.Load() > before {
			stale++
		}
		if _, err := mb.Refresh(ctx, is.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRefreshReuse) {
			t.Fatalf("round %d: the spent parent on B: %v, want refresh_reuse", i, err)
		}
	}
	// B's cached copy must have been behind A's rotation in most rounds, or
	// this test did not test the race (the 30 ms lag makes it so).
	t.Logf("B's cached copy was behind A's rotation in %d of %d rounds", stale, rounds)
	if stale < rounds/2 {
		t.Fatalf("B's cache was stale in only %d of %d rounds: the lag did not hold its invalidations back", stale, rounds)
	}
}
