package boltstore

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// BenchmarkGet is the validate read: one record by ID from a warm store of
// 10,000 sessions.
// BenchmarkGet reads warm records, served by the record cache after the
// first pass; BenchmarkGetUncached is the read transaction and decode.
func BenchmarkGet(b *testing.B) { benchGet(b, nil) }

func BenchmarkGetUncached(b *testing.B) { benchGet(b, &Options{CacheBytes: -1}) }

func benchGet(b *testing.B, opts *Options) {
	s := newTestStore(b, opts)
	ids := fill(b, s, 10_000)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	// CPU time per op, less sensitive than ns/op to other work on a shared
	// machine (it includes the GC's share).
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

func BenchmarkGetParallel(b *testing.B) {
	s := newTestStore(b, nil)
	ids := fill(b, s, 10_000)
	ctx := b.Context()
	b.ReportAllocs()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1000))
		for pb.Next() {
			if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkCreate measures Create with eviction enabled (max 100) into a
// store that already holds 10,000 sessions, serially and from 32
// goroutines, with fsync per commit (the default) and without, and with
// each commit strategy: group (the store's own group commit, the default),
// update (one bbolt transaction per write) and batch (bbolt's DB.Batch,
// which waits up to 10 ms to fill a batch).
func BenchmarkCreate(b *testing.B) {
	modes := []struct {
		name string
		mode int
	}{{"group", groupCommit}, {"update", updatePerWrite}, {"batch", boltBatch}}
	for _, sync := range []bool{true, false} {
		durability := "fsync"
		if !sync {
			durability = "nosync"
		}
		for _, m := range modes[:3:3] {
			if m.mode == updatePerWrite {
				continue // the same as group for a lone writer
			}
			b.Run(fmt.Sprintf("serial/%s/%s", durability, m.name), func(b *testing.B) {
				benchCreate(b, &Options{NoSync: !sync}, m.mode, 1)
			})
		}
		for _, m := range modes {
			b.Run(fmt.Sprintf("parallel32/%s/%s", durability, m.name), func(b *testing.B) {
				benchCreate(b, &Options{NoSync: !sync}, m.mode, 32)
			})
		}
	}
}

func benchCreate(b *testing.B, opts *Options, mode, par int) {
	s := newTestStore(b, opts)
	fill(b, s, 10_000)
	s.commitMode = mode
	ctx := b.Context()
	now := time.Now()
	var n atomic.Int64
	create := func() error {
		i := n.Add(1)
		r := newRecord(b, fmt.Sprintf("user-%d", i%1000), now)
		_, err := s.Create(ctx, r, 100)
		return err
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if par == 1 {
		for range b.N {
			if err := create(); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(par / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := create(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
}

// BenchmarkSweepNothingExpired shows Sweep's cost does not grow with the
// number of live records: it stops at the first unexpired entry.
func BenchmarkSweepNothingExpired(b *testing.B) {
	s := newTestStore(b, &Options{NoSync: true})
	fill(b, s, 10_000)
	ctx := b.Context()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if n, err := s.Sweep(ctx, now); n != 0 || err != nil {
			b.Fatal(n, err)
		}
	}
}

// fill creates n sessions over 1,000 subjects and returns their IDs.
func fill(b testing.TB, s *Store, n int) []store.ID {
	b.Helper()
	ids := make([]store.ID, 0, n)
	now := time.Now()
	noSync := s.db.NoSync
	s.db.NoSync = true // setup only
	defer func() { s.db.NoSync = noSync }()
	for i := range n {
		r := newRecord(b, fmt.Sprintf("user-%d", i%1000), now)
		if _, err := s.Create(b.Context(), r, 0); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}
