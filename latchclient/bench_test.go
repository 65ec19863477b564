package latchclient_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latch-sessions/latch/internal/testmysql"
	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/latchclient"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/mysqlstore"
	"github.com/latch-sessions/latch/store/pgstore"
)

// The figures of BENCHMARKS.md ("Session events"), all from one run:
//
//	go test -run '^$' -bench . -count 6 ./latchclient

// BenchmarkVerify compares a Go service validating one hot session through
// latch serve online with the same service using the cached client. Both
// talk to a replica on Redis over loopback HTTP.
func BenchmarkVerify(b *testing.B) {
	u := serve(b, openRedis(b, "redis://"+testredis.Addr(b)+"?prefix="+prefix()))
	for _, mode := range []string{"online", "cached"} {
		b.Run(mode, func(b *testing.B) {
			c := newClient(b, u, mode == "cached")
			s, err := c.Create(ctx, latchclient.NewSession{Subject: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			if mode == "cached" {
				waitCachedB(b, c, s.SessionToken)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Verify(ctx, s.SessionToken); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if st := c.CacheStats(); mode == "cached" {
				b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hit-ratio")
			}
		})
	}
}

func waitCachedB(b *testing.B, c *latchclient.Client, tok string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := c.Verify(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		if v.Cached {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("no cached answer within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkRevokeToCachedRefusal: replica A revokes a session that a
// cached client of replica B holds, while B's client validates it every
// 100 µs; reports how long after A's answer the client refused it.
func BenchmarkRevokeToCachedRefusal(b *testing.B) {
	url := "redis://" + testredis.Addr(b) + "?prefix=" + prefix()
	a, bb := serve(b, openRedis(b, url)), serve(b, openRedis(b, url))
	ca, cb := newClient(b, a, false), newClient(b, bb, true)
	var delays []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s, err := ca.Create(ctx, latchclient.NewSession{Subject: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		waitCachedB(b, cb, s.SessionToken)
		b.StartTimer()
		if err := ca.Revoke(ctx, s.Session.ID); err != nil {
			b.Fatal(err)
		}
		answered := time.Now()
		for {
			if _, err := cb.Verify(ctx, s.SessionToken); errors.Is(err, latchclient.ErrRevoked) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			// A request every 100 µs, not a spin that would starve the
			// stream's reader of the machine's two cores.
			time.Sleep(100 * time.Microsecond)
		}
		delays = append(delays, time.Since(answered))
	}
	reportQuantiles(b, delays)
}

func reportQuantiles(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // the quantiles are the figures
}

// BenchmarkEventLatency: from the answer of a revocation through replica A
// to the event on a GET /v1/events stream of replica B.
func BenchmarkEventLatency(b *testing.B) {
	b.Run("redis", func(b *testing.B) {
		url := "redis://" + testredis.Addr(b) + "?prefix=" + prefix()
		eventLatency(b, serve(b, openRedis(b, url)), serve(b, openRedis(b, url)))
	})
	b.Run("redis-cluster", func(b *testing.B) {
		url := "redis-cluster://" + strings.Join(testredis.StartCluster(b), ",") + "?prefix=" + prefix()
		eventLatency(b, serve(b, openRedis(b, url)), serve(b, openRedis(b, url)))
	})
	b.Run("postgres", func(b *testing.B) {
		open := pgOpener(b)
		eventLatency(b, serve(b, open()), serve(b, open()))
	})
	b.Run("mariadb", func(b *testing.B) {
		open := mysqlOpener(b)
		eventLatency(b, serve(b, open()), serve(b, open()))
	})
}

func eventLatency(b *testing.B, a, bb string) {
	ca := newClient(b, a, false)
	arrived := make(chan struct {
		sid string
		at  time.Time
	}, 1024)
	sub, err := latchclient.New(latchclient.Config{BaseURL: bb, APIKey: apiKey, Cache: true, OnEvent: func(e latchclient.Event) {
		if e.Type == "session.revoked" {
			arrived <- struct {
				sid string
				at  time.Time
			}{e.SessionID, time.Now()}
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	for !sub.CacheStats().Live {
		time.Sleep(time.Millisecond)
	}
	var delays []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s, err := ca.Create(ctx, latchclient.NewSession{Subject: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := ca.Revoke(ctx, s.Session.ID); err != nil {
			b.Fatal(err)
		}
		answered := time.Now()
		for e := range arrived {
			if e.sid == s.Session.ID {
				delays = append(delays, max(0, e.at.Sub(answered))) // it may beat the answer
				break
			}
		}
	}
	reportQuantiles(b, delays)
}

// BenchmarkFanout: events per second delivered to each of 10 subscribers
// of one replica on Redis (the events are published straight to the
// store's log, so the figure is the stream's, not the revocations').
func BenchmarkFanout(b *testing.B) {
	st := openRedis(b, "redis://"+testredis.Addr(b)+"?prefix="+prefix())
	u := serve(b, st)
	const subscribers = 10
	var got [subscribers]atomic.Int64
	var wg sync.WaitGroup
	for i := range subscribers {
		c, err := latchclient.New(latchclient.Config{BaseURL: u, APIKey: apiKey, Cache: true, OnEvent: func(e latchclient.Event) {
			if e.Type == "keys.changed" {
				got[i].Add(1)
			}
		}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for !c.CacheStats().Live {
			time.Sleep(time.Millisecond)
		}
	}
	log := st.(store.EventLog)
	b.ResetTimer()
	start := time.Now()
	const publishers = 8
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < b.N; i += publishers {
				if err := log.Publish(ctx, store.Event{Type: store.EventKeysChanged, KeyID: "k", Reason: "rotated"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for i := range subscribers {
		for got[i].Load() < int64(b.N) {
			if time.Now().After(deadline) {
				b.Fatalf("subscriber %d got %d of %d events", i, got[i].Load(), b.N)
			}
			time.Sleep(time.Millisecond)
		}
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s/subscriber")
	b.ReportMetric(float64(subscribers*b.N)/el.Seconds(), "deliveries/s")
}

func pgOpener(b testing.TB) func() store.Store {
	dsn := os.Getenv("LATCH_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			b.Fatalf("PostgreSQL unreachable: %v", err)
		}
		b.Skipf("PostgreSQL unreachable (set LATCH_TEST_POSTGRES): %v", err)
	}
	conn.Close(ctx)
	schema := "latch_cl_" + prefix()[7:19]
	b.Cleanup(func() {
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			c.Close(ctx)
		}
	})
	return func() store.Store {
		st, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
}

// mysqlOpener returns a function that opens stores on one fresh MariaDB/MySQL
// database, as replicas sharing it would.
func mysqlOpener(b testing.TB) func() store.Store {
	dsn := testmysql.Database(b)
	return func() store.Store {
		st, err := mysqlstore.Open(ctx, dsn, mysqlstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
}
