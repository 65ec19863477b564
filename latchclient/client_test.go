package latchclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/faultnet"
	"github.com/latch-sessions/latch/internal/server"
	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/latchclient"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
	"github.com/latch-sessions/latch/store/redisstore"
)

const apiKey = "latchclient-test-api-key-0123456789abcdef"

var ctx = context.Background()

// serve runs a latch serve replica on st; mod changes its options.
func serve(t testing.TB, st store.Store, mod ...func(*server.Options)) string {
	t.Helper()
	opts := server.Options{
		Store: st, APIKey: apiKey, KEK: bytes.Repeat([]byte{5}, 32), Issuer: "https://latch.test",
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	for _, f := range mod {
		f(&opts)
	}
	srv, err := server.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

func newClient(t testing.TB, url string, cache bool) *latchclient.Client {
	t.Helper()
	c, err := latchclient.New(latchclient.Config{BaseURL: url, APIKey: apiKey, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// steadyClient is a caching client whose stream stays trusted for 10 s
// without a heartbeat, for tests of what the cache answers rather than of
// staleness: on a loaded machine a heartbeat can come later than the
// default 250 ms bound, and the client then rightly stops answering from
// its cache (or vouching for access tokens) until the next one.
func steadyClient(t testing.TB, url string) *latchclient.Client {
	t.Helper()
	c, err := latchclient.New(latchclient.Config{BaseURL: url, APIKey: apiKey, Cache: true, StalenessBound: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func prefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "latchcl" + hex.EncodeToString(b[:]) + ":"
}

func openRedis(t testing.TB, url string, opts ...redisstore.Option) store.Store {
	t.Helper()
	st, err := redisstore.Open(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitCached verifies tok on c until an answer comes from the cache.
func waitCached(t *testing.T, c *latchclient.Client, tok string) *latchclient.Verified {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := c.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if v.Cached {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cached answer within 10 s (stats %+v)", c.CacheStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testRevocationReachesCache: a session cached by a client of replica B is
// refused by it once replica A revoked it.
func testRevocationReachesCache(t *testing.T, a, b string) {
	ca, cb := newClient(t, a, false), newClient(t, b, true)
	var delays []time.Duration
	for range 10 {
		s, err := ca.Create(ctx, latchclient.NewSession{Subject: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		v := waitCached(t, cb, s.SessionToken)
		if v.Session.ID != s.Session.ID || !v.CheckCSRF(v.CSRFToken) || v.CheckCSRF(flip(v.CSRFToken)) {
			t.Fatalf("cached answer %+v does not match the session or its CSRF key", v.Session)
		}
		if err := ca.Revoke(ctx, s.Session.ID); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		for {
			_, err := cb.Verify(ctx, s.SessionToken)
			if errors.Is(err, latchclient.ErrRevoked) {
				delays = append(delays, time.Since(revoked))
				break
			}
			if err != nil {
				t.Fatalf("Verify after the revocation: %v", err)
			}
			if time.Since(revoked) > 5*time.Second {
				t.Fatal("B's client still accepted the session 5 s after A revoked it")
			}
		}
		if _, err := cb.Verify(ctx, s.SessionToken); !errors.Is(err, latchclient.ErrRevoked) {
			t.Fatalf("a revoked session answered %v", err)
		}
	}
	t.Logf("revoked through A -> refused by a cached client of B after %v (max of %d)", maxOf(delays), len(delays))
}

// flip changes one character in the middle of a token.
func flip(tok string) string {
	b := []byte(tok)
	if b[40] == 'A' {
		b[40] = 'B'
	} else {
		b[40] = 'A'
	}
	return string(b)
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func TestCachedRevocationMemstore(t *testing.T) {
	u := serve(t, memstore.New())
	testRevocationReachesCache(t, u, u)
}

func TestCachedRevocationRedis(t *testing.T) {
	url := "redis://" + testredis.Addr(t) + "?prefix=" + prefix()
	testRevocationReachesCache(t, serve(t, openRedis(t, url)), serve(t, openRedis(t, url)))
}

func TestCachedRevocationRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := "redis-cluster://" + strings.Join(testredis.StartCluster(t), ",") + "?prefix=" + prefix()
	testRevocationReachesCache(t, serve(t, openRedis(t, url)), serve(t, openRedis(t, url)))
}

func TestCachedRevocationPostgres(t *testing.T) {
	open := pgOpener(t)
	testRevocationReachesCache(t, serve(t, open()), serve(t, open()))
}

func TestCachedRevocationMySQL(t *testing.T) {
	open := mysqlOpener(t)
	testRevocationReachesCache(t, serve(t, open()), serve(t, open()))
}

// TestCacheDistrustedWhileRedisIsDown kills the Redis of a replica whose
// client holds a cached session: the client must stop answering from its
// cache (Verify goes online and fails closed), and cache again once Redis
// is back.
func TestCacheDistrustedWhileRedisIsDown(t *testing.T) {
	rs := testredis.StartServer(t)
	b := serve(t, openRedis(t, "redis://"+rs.Addr()+"?prefix="+prefix()))
	c := newClient(t, b, true)
	s, err := c.Create(ctx, latchclient.NewSession{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	waitCached(t, c, s.SessionToken)

	rs.Kill()
	killed := time.Now()
	var lastCached time.Duration
	for {
		v, err := c.Verify(ctx, s.SessionToken)
		if err != nil {
			if !errors.Is(err, latchclient.ErrUnavailable) {
				t.Fatalf("with Redis down, Verify failed with %v, want ErrUnavailable", err)
			}
			break
		}
		if !v.Cached {
			t.Fatal("an online verify succeeded with Redis down")
		}
		lastCached = time.Since(killed)
		if lastCached > 5*time.Second {
			t.Fatal("the client still answered from its cache 5 s after Redis died")
		}
	}
	t.Logf("after kill -9 of Redis the client answered from its cache for %v", lastCached)
	// It stays distrusted: every answer is online, and fails closed.
	for range 5 {
		if _, err := c.Verify(ctx, s.SessionToken); !errors.Is(err, latchclient.ErrUnavailable) {
			t.Fatalf("with Redis down: %v, want ErrUnavailable", err)
		}
	}
	if c.CacheStats().Live {
		t.Error("the stream is reported live while the replica's store is down")
	}

	// Redis returns, empty (it runs without persistence): the stream is
	// live again and validation answers from the store (the session is
	// gone) instead of failing closed.
	rs.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Verify(ctx, s.SessionToken)
		if err != nil && !errors.Is(err, latchclient.ErrUnavailable) && c.CacheStats().Live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after Redis returned: %v, live %v", err, c.CacheStats().Live)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccessTokenRevoked: an offline verifier refuses the tokens of a
// session revoked, renewed or subject-revoked after they were issued, and
// asks for an online check while it cannot vouch.
func TestAccessTokenRevoked(t *testing.T) {
	u := serve(t, memstore.New())
	c := steadyClient(t, u)
	for !c.CacheStats().Live {
		time.Sleep(time.Millisecond)
	}
	iat := time.Now().Add(-time.Second) // issued after the stream started... in the past
	if _, err := c.AccessTokenRevoked("ses_x", "alice", iat); !errors.Is(err, latchclient.ErrUnavailable) {
		t.Fatalf("a token issued before the stream was live: %v, want ErrUnavailable", err)
	}
	// Access tokens' iat has whole seconds: one issued in the second the
	// stream connected might predate it, so only later ones are vouched for.
	time.Sleep(1100 * time.Millisecond)
	mk := func(subject string) (*latchclient.Created, time.Time) {
		s, err := c.Create(ctx, latchclient.NewSession{Subject: subject})
		if err != nil {
			t.Fatal(err)
		}
		return s, time.Now().Truncate(time.Second) // iat has whole seconds
	}
	waitRevoked := func(sid, subject string, iat time.Time, want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := c.AccessTokenRevoked(sid, subject, iat)
			if err != nil {
				t.Fatalf("AccessTokenRevoked: %v", err)
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("AccessTokenRevoked(%s) stayed %v", sid, got)
			}
			time.Sleep(time.Millisecond)
		}
	}
	a, iatA := mk("alice")
	waitRevoked(a.Session.ID, "alice", iatA, false)
	if err := c.Revoke(ctx, a.Session.ID); err != nil {
		t.Fatal(err)
	}
	waitRevoked(a.Session.ID, "alice", iatA, true)

	b, iatB := mk("bob")
	keep, _ := mk("bob")
	if _, err := c.RevokeSubject(ctx, "bob", keep.Session.ID); err != nil {
		t.Fatal(err)
	}
	waitRevoked(b.Session.ID, "bob", iatB, true)
	waitRevoked(keep.Session.ID, "bob", iatB, false)
	// A token issued after the subject's revocation is fine.
	waitRevoked(b.Session.ID, "bob", time.Now().Add(2*time.Second), false)
}

// TestCachedClientBehindStalledReplica is issue 16's fault for the client
// cache: replica B's link to Redis stalls (a proxy that stops forwarding
// and keeps the connections open), A revokes a session B's cached client
// holds. The client may accept it only within the replica's bound plus its
// own (docs/protocol.md section 3), then fails closed until the link heals,
// then sees `revoked`.
func TestCachedClientBehindStalledReplica(t *testing.T) {
	rs := testredis.StartServer(t)
	ps := faultnet.NewProxies(t, rs.Addr())
	url := "redis://" + rs.Addr() + "?prefix=" + prefix() + "&timeout=300ms"
	a := serve(t, openRedis(t, url))
	b := serve(t, openRedis(t, url, func(o *redisstore.Options) { o.Dial = ps.Dial }))
	ca, cb := newClient(t, a, false), newClient(t, b, true)
	// 150 ms (the replica) + 250 ms (the client) + one heartbeat interval
	// for the last heartbeat in flight.
	const bound = 500 * time.Millisecond
	var windows []time.Duration
	for range 3 {
		s, err := ca.Create(ctx, latchclient.NewSession{Subject: "stall"})
		if err != nil {
			t.Fatal(err)
		}
		waitCached(t, cb, s.SessionToken)
		ps.Stall()
		if err := ca.Revoke(ctx, s.Session.ID); err != nil {
			ps.Resume()
			t.Fatal(err)
		}
		acked := time.Now()
		var window time.Duration
		for {
			start := time.Now()
			v, err := cb.Verify(ctx, s.SessionToken)
			if err != nil {
				if !errors.Is(err, latchclient.ErrUnavailable) {
					ps.Resume()
					t.Fatalf("behind a stalled replica: %v, want ErrUnavailable", err)
				}
				break
			}
			if since := start.Sub(acked); since >= bound {
				ps.Resume()
				t.Fatalf("the client accepted the revoked session (cached %v) in a request started %v after the revocation", v.Cached, since)
			}
			window = time.Since(acked)
			time.Sleep(2 * time.Millisecond)
		}
		windows = append(windows, window)
		ps.Resume()
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := cb.Verify(ctx, s.SessionToken)
			if errors.Is(err, latchclient.ErrRevoked) {
				break
			}
			if !errors.Is(err, latchclient.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("after the link healed: %v, want ErrUnavailable then ErrRevoked", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("behind a stalled replica the cached client accepted a revoked session for %v (bound %v)", windows, bound)
}
