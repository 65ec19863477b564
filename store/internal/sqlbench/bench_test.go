package sqlbench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
	"github.com/latch-sessions/latch/store/internal/sqltest"
	"github.com/latch-sessions/latch/store/mysqlstore"
	"github.com/latch-sessions/latch/store/pgstore"
)

// backend is one SQL store under test, with a bare read of the same row
// through the same pool for comparison.
type backend struct {
	name string
	s    store.Store
	// bare reads the row of id with the store's own pool and a prepared
	// statement, scanning every column into plain variables: the floor
	// the store's Get is measured against.
	bare func(ctx context.Context, id store.ID) error
}

func backends(b *testing.B) []backend {
	return []backend{openMySQL(b), openPostgres(b)}
}

func openMySQL(b *testing.B) backend {
	dsn := sqltest.DSN(b, "LATCH_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/test", "MySQL/MariaDB", func(ctx context.Context, dsn string) error {
		cfg, err := mysqlstore.ParseDSN(dsn)
		if err != nil {
			return err
		}
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(c)
		defer db.Close()
		return db.PingContext(ctx)
	})
	cfg, err := mysqlstore.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	c, _ := mysql.NewConnector(cfg)
	admin := sql.OpenDB(c)
	b.Cleanup(func() { admin.Close() })
	name := sqltest.Name("latch_bench_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name) })
	cfg.DBName = name
	s, err := mysqlstore.Open(context.Background(), cfg.FormatDSN(), mysqlstore.Options{OpTimeout: time.Minute, MaxOpenConns: 32})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	stmt, err := s.DB().Prepare("SELECT " + sqlstore.Columns + " FROM latch_sessions WHERE id = ?")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stmt.Close() })
	return backend{name: "mysql", s: s, bare: func(ctx context.Context, id store.ID) error {
		var w sqlstore.Row
		return stmt.QueryRowContext(ctx, id[:]).Scan(w.Dest()...)
	}}
}

func openPostgres(b *testing.B) backend {
	dsn := sqltest.DSN(b, "LATCH_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL", func(ctx context.Context, dsn string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	})
	schema := sqltest.Name("latch_bench_")
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema, OpTimeout: time.Minute, MaxConns: 32})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		s.Close()
	})
	q := "SELECT " + sqlstore.Columns + " FROM " + pgx.Identifier{schema}.Sanitize() + ".sessions WHERE id = $1"
	return backend{name: "postgres", s: s, bare: func(ctx context.Context, id store.ID) error {
		var w sqlstore.Row
		return s.Pool().QueryRow(ctx, q, id[:]).Scan(w.Dest()...)
	}}
}

func newRecord(b *testing.B, subject string, now time.Time) *store.Record {
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	r := &store.Record{ID: id, Subject: subject, CreatedAt: now, AuthTime: now, LastSeenAt: now,
		IdleExpiresAt: now.Add(30 * time.Minute), ExpiresAt: now.Add(24 * time.Hour),
		IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) bench", Data: []byte(`{"cart":3}`), Claims: []byte(`{"role":"user"}`)}
	rand.Read(r.VerifierHash[:])
	rand.Read(r.CSRFSecret[:])
	rand.Read(r.Refresh.Key[:])
	rand.Read(r.Refresh.Current[:])
	return r
}

// BenchmarkGet is the validation read: Get by ID of one of 1,000 stored
// sessions, sequentially, over loopback, against a bare prepared QueryRow
// of the same row through the same pool. Each iteration makes one call of
// each, alternating which goes first, so both see the same machine load;
// it reports the p50 and p99 of each (µs) and the store's share of the
// bare read's speed at p50 and p99 (bare latency / store latency, %).
//
//	go test -run '^$' -bench 'BenchmarkGet' -benchtime 10000x ./store/internal/sqlbench
func BenchmarkGet(b *testing.B) {
	for _, be := range backends(b) {
		ctx := context.Background()
		ids := make([]store.ID, 1000)
		now := time.Now()
		for i := range ids {
			r := newRecord(b, fmt.Sprintf("bench-%d", i%50), now)
			if _, err := be.s.Create(ctx, r, 0); err != nil {
				b.Fatal(err)
			}
			ids[i] = r.ID
		}
		get := func(ctx context.Context, id store.ID) error { _, err := be.s.Get(ctx, id); return err }
		b.Run(be.name, func(b *testing.B) {
			for i := range 200 { // warm connections and statements
				if err := errors.Join(get(ctx, ids[i%len(ids)]), be.bare(ctx, ids[i%len(ids)])); err != nil {
					b.Fatal(err)
				}
			}
			storeLat := make([]time.Duration, 0, b.N)
			bareLat := make([]time.Duration, 0, b.N)
			timed := func(f func(context.Context, store.ID) error, id store.ID, lat *[]time.Duration) {
				t0 := time.Now()
				if err := f(ctx, id); err != nil {
					b.Fatal(err)
				}
				*lat = append(*lat, time.Since(t0))
			}
			b.ResetTimer()
			for i := range b.N {
				id := ids[i%len(ids)]
				if i%2 == 0 {
					timed(get, id, &storeLat)
					timed(be.bare, id, &bareLat)
				} else {
					timed(be.bare, id, &bareLat)
					timed(get, id, &storeLat)
				}
			}
			b.StopTimer()
			s50, s99 := pct(storeLat, 0.50), pct(storeLat, 0.99)
			b50, b99 := pct(bareLat, 0.50), pct(bareLat, 0.99)
			b.ReportMetric(s50, "store-p50-µs")
			b.ReportMetric(s99, "store-p99-µs")
			b.ReportMetric(b50, "bare-p50-µs")
			b.ReportMetric(b99, "bare-p99-µs")
			b.ReportMetric(100*b50/s50, "p50-%-of-bare")
			b.ReportMetric(100*b99/s99, "p99-%-of-bare")
		})
	}
}

// BenchmarkCreate32 is login throughput: 32 goroutines creating sessions
// with eviction at the default limit of 100 per subject, over 1,000
// subjects. It reports creates/s and the p50/p99 of single Creates (µs);
// ns/op is wall time per Create with 32 in flight.
//
//	go test -run '^$' -bench 'BenchmarkCreate32' -benchtime 4000x -count 6 ./store/internal/sqlbench
func BenchmarkCreate32(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			const writers = 32
			ctx := context.Background()
			now := time.Now()
			recs := make([]*store.Record, b.N)
			for i := range recs {
				recs[i] = newRecord(b, fmt.Sprintf("bench-%d", i%1000), now.Add(time.Duration(i)))
			}
			var next atomic.Int64
			lats := make([][]time.Duration, writers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(len(recs)) {
							return
						}
						t0 := time.Now()
						if _, err := be.s.Create(ctx, recs[i], 100); err != nil {
							b.Error(err)
							return
						}
						lats[w] = append(lats[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
			percentiles(b, slices.Concat(lats...))
			if ms, ok := be.s.(*mysqlstore.Store); ok {
				b.ReportMetric(float64(ms.Stats().Retries), "retries")
			}
		})
	}
}

func percentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(pct(lat, 0.50), "p50-µs")
	b.ReportMetric(pct(lat, 0.99), "p99-µs")
}

// pct returns the p-th quantile of lat in µs; it sorts lat.
func pct(lat []time.Duration, p float64) float64 {
	slices.Sort(lat)
	return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
}
