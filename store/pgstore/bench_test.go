package pgstore

import (
	"context"
	"encoding/binary"
	"github.com/latch-sessions/latch/internal/benchpair"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// BenchmarkGet measures the validation read path: one Get by ID of a stored
// session, sequentially, over loopback. Besides ns/op it reports the p50 and
// p99 of the individual Get latencies (µs).
//
//	go test -run '^$' -bench BenchmarkGet -benchtime 20000x ./store/pgstore/
func BenchmarkGet(b *testing.B) {
	s := openTestStore(b, Options{})
	ctx := context.Background()
	const n = 1000
	recs := make([]store.ID, n)
	for i := range recs {
		r := newRecord(b, "bench-"+string(rune('a'+i%26)), 0)
		r.ExpiresAt = time.Now().Add(time.Hour)
		if _, err := s.Create(ctx, r, 0); err != nil {
			b.Fatal(err)
		}
		recs[i] = r.ID
	}
	// Warm the pool's connection and its prepared statement.
	for i := 0; i < 100; i++ {
		if _, err := s.Get(ctx, recs[i%n]); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := s.Get(ctx, recs[i%n]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkGetParallel is BenchmarkGet from GOMAXPROCS goroutines (raise
// with -cpu), for throughput.
func BenchmarkGetParallel(b *testing.B) {
	s := openTestStore(b, Options{})
	ctx := context.Background()
	r := newRecord(b, "bench", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Get(ctx, r.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkTouch measures the activity write the manager makes at most once
// per touch interval: a compare-and-swap Update of LastSeenAt.
func BenchmarkTouch(b *testing.B) {
	s := openTestStore(b, Options{})
	ctx := context.Background()
	r := newRecord(b, "bench", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		b.Fatal(err)
	}
	cur := r.Clone()
	cur.Version = 1
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cur.LastSeenAt = cur.LastSeenAt.Add(time.Second)
		t0 := time.Now()
		if err := s.Update(ctx, cur); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		cur.Version++
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkCreate measures login: Create with eviction at the default limit
// of 100 sessions per subject, spread over 100 subjects.
func BenchmarkCreate(b *testing.B) {
	s := openTestStore(b, Options{})
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := newRecord(b, "bench-"+strconv.Itoa(i%100), time.Duration(i))
		b.StartTimer()
		t0 := time.Now()
		if _, err := s.Create(ctx, r, 100); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkRotateRefresh measures one refresh-token rotation.
func BenchmarkRotateRefresh(b *testing.B) {
	s := openTestStore(b, Options{})
	ctx := context.Background()
	r := newRecord(b, "bench", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		b.Fatal(err)
	}
	cur := r.Refresh.Current
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := store.Refresh{Key: r.Refresh.Key, Previous: cur, Generation: uint32(i + 1)}
		binary.BigEndian.PutUint64(next.Current[:], uint64(i+1))
		t0 := time.Now()
		if _, err := s.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: cur, Next: next, LastSeenAt: testEpoch, IdleExpiresAt: r.IdleExpiresAt}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		cur = next.Current
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkKeyringVersion: what an online verification on PostgreSQL pays
// to notice a key revoked on another replica (the keyring's version alone),
// against the session Get it does anyway, alternating one of each so that
// load drift hits both alike. Reports µs per call of each and their ratio.
//
//	go test -run '^$' -bench KeyringVersion -count 6 ./store/pgstore/
func BenchmarkKeyringVersion(b *testing.B) {
	s := openTestStore(b, Options{})
	ctx := context.Background()
	if err := s.SaveKeyring(ctx, make([]byte, 4096), 0); err != nil {
		b.Fatal(err)
	}
	r := newRecord(b, "bench-kv", 0)
	r.ExpiresAt = time.Now().Add(time.Hour)
	if _, err := s.Create(ctx, r, 0); err != nil {
		b.Fatal(err)
	}
	var version, get time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := s.KeyringVersion(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.Get(ctx, r.ID); err != nil {
			b.Fatal(err)
		}
		version, get = version+t1.Sub(t0), get+time.Since(t1)
		n++
	}
	b.ReportMetric(float64(version.Microseconds())/float64(n), "version-µs/op")
	b.ReportMetric(float64(get.Microseconds())/float64(n), "get-µs/op")
	b.ReportMetric(float64(version)/float64(get), "version/get")
}

// BenchmarkGetRatio is the store half of issue #15's PostgreSQL ratio: Get
// against a bare pgx QueryRow of the same row (the same statement on the
// store's own pool, scanned into plain []byte and int64 destinations, as
// an application reading its own table would), 16 goroutines over 1,000
// sessions, the two taking turns of 50 ms (internal/benchpair). It reports
// both ops/s, the process CPU, system calls and allocations per op of
// each, and ratio-% (Get ÷ QueryRow, ops/s). The Manager-level figure
// (Validate) is bench's BenchmarkSQLRatio.
//
//	go test -run '^$' -bench GetRatio -benchtime 1s -count 6 ./store/pgstore/
func BenchmarkGetRatio(b *testing.B) {
	s := openTestStore(b, Options{})
	ctx := context.Background()
	const n = 1000
	ids := make([]store.ID, n)
	for i := range ids {
		r := newRecord(b, "ratio-"+strconv.Itoa(i/10), 0)
		r.ExpiresAt = time.Now().Add(time.Hour)
		if _, err := s.Create(ctx, r, 0); err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	get := benchpair.Op{Name: "get", Do: func(ctx context.Context, i int) error {
		_, err := s.Get(ctx, ids[i])
		return err
	}}
	queryRow := benchpair.Op{Name: "pgx", Do: func(ctx context.Context, i int) error {
		var w sqlstore.Row
		return s.pool.QueryRow(ctx, s.q.get, ids[i][:]).Scan(w.Dest()...)
	}}
	r := benchpair.Run(b, 16, n, get, queryRow)
	b.ReportMetric(100*r[0].Rate()/r[1].Rate(), "ratio-%")
}
