package redisstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/latch-sessions/latch/internal/benchpair"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
	"github.com/redis/rueidis"
)

// Benchmarks (see BENCHMARKS.md for figures):
//
//	go test -run '^$' -bench . -benchtime 3s ./store/redisstore/
//
// Get benchmarks run 64 goroutines (b.SetParallelism) and report ops/s.
// LATCH_BENCH_SESSIONS sets the large size of BenchmarkGetScale (default
// 1,000,000; loading it takes a while and ~450 MB in a private redis-server).

// parallel64 makes b.RunParallel use 64 goroutines in all.
func parallel64(b *testing.B) {
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
}

func reportOps(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// benchGet runs Get over ids with 64 goroutines.
func benchGet(b *testing.B, s *tracked, ids []store.ID) {
	ctx := context.Background()
	var seed atomic.Uint64
	parallel64(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		x := seed.Add(0x9E3779B97F4A7C15)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			hi, _ := bits.Mul64(x, uint64(len(ids)))
			if _, err := s.Get(ctx, ids[hi]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOps(b, start)
}

// BenchmarkGet is a session load (validation's one store read) on the
// shared Redis, 1,000 sessions, without and with client-side caching, and
// with caching but without its staleness bound (cache=unbounded), to show
// what the bound costs.
func BenchmarkGet(b *testing.B) {
	for _, mode := range []string{"false", "true", "unbounded"} {
		cache := mode != "false"
		b.Run("cache="+mode, func(b *testing.B) {
			s := standalone(b, func(o *Options) {
				o.DisableCache = !cache
				if mode == "unbounded" {
					o.CacheStaleness = -1
				}
			})
			ids := loadSubjects(b, s, 1000, 10)
			if cache { // warm the cache (after the store's own-write guard)
				time.Sleep(writeGuard)
				for _, id := range ids {
					s.Get(context.Background(), id)
				}
			}
			benchGet(b, s, ids)
		})
	}
}

// BenchmarkRevokeSubject10k revokes all 10,000 sessions of one subject.
func BenchmarkRevokeSubject10k(b *testing.B) {
	srv := testredis.StartServer(b)
	s := openURL(b, "redis://"+srv.Addr(), func(o *Options) { o.Timeout = 10 * time.Second })
	ctx := context.Background()
	b.ResetTimer()
	b.StopTimer()
	var total, cpu time.Duration
	for range b.N {
		sub := "big-" + rand.Text()[:8]
		ids := loadSubject(b, s, sub, 10000)
		cpu0 := serverCPU(b, s)
		b.StartTimer()
		start := time.Now()
		got, err := s.RevokeSubject(ctx, sub, store.ID{}, store.ReasonRevokeAll, time.Now())
		total += time.Since(start)
		b.StopTimer()
		cpu += serverCPU(b, s) - cpu0
		if err != nil || len(got) != len(ids) {
			b.Fatalf("RevokeSubject: %d of %d, %v", len(got), len(ids), err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms/revoke-all")
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "redis-cpu-ms/revoke-all")
}

// BenchmarkGetScale compares uncached Get latency with 1,000 and with
// LATCH_BENCH_SESSIONS (default 1,000,000) sessions stored, each in a
// private redis-server; the target is within 20 %.
func BenchmarkGetScale(b *testing.B) {
	large := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("LATCH_BENCH_SESSIONS")); err == nil && v > 0 {
		large = v
	}
	for _, n := range []int{1000, large} {
		// Load once, outside the sub-benchmark that b.N calibration reruns.
		srv := testredis.StartServer(b)
		s := openURL(b, "redis://"+srv.Addr(), func(o *Options) { o.DisableCache = true; o.Timeout = 10 * time.Second })
		start := time.Now()
		ids := bulkLoad(b, s, n, 10)
		b.Logf("loaded %d sessions in %v", n, time.Since(start).Round(time.Millisecond))
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) { benchGet(b, s, ids) })
		// Free the private server's memory before the next size.
		s.client.Do(context.Background(), s.client.B().Flushall().Build())
	}
}

// loadSubjects creates n sessions, perSubject per subject, through Create.
func loadSubjects(tb testing.TB, s *tracked, n, perSubject int) []store.ID {
	var ids []store.ID
	for i := 0; i < n; i += perSubject {
		ids = append(ids, loadSubject(tb, s, fmt.Sprintf("bench-%s-%d", rand.Text()[:6], i), min(perSubject, n-i))...)
	}
	return ids
}

// bulkLoad writes n sessions straight in the store's key layout (the value
// encoding, the index entry and expiries a Create writes, without its
// pruning), pipelined, for loading a large store quickly.
func bulkLoad(tb testing.TB, s *tracked, n, perSubject int) []store.ID {
	tb.Helper()
	ctx := context.Background()
	c := s.client
	now := time.Now()
	ids := make([]store.ID, n)
	const batch = 2000
	cmds := make(rueidis.Commands, 0, 3*batch)
	var sub string
	flush := func() {
		for _, r := range c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				tb.Fatalf("bulk load: %v", err)
			}
		}
		cmds = cmds[:0]
	}
	for i := range n {
		if i%perSubject == 0 {
			sub = fmt.Sprintf("user-%07d", i/perSubject)
		}
		r := newRecord(tb, sub, now)
		ids[i] = r.ID
		px := ceilMillis(r.Deadline())
		m := member(r.ID)
		idx := s.indexKey(sub)
		cmds = append(cmds,
			c.B().Set().Key(s.recordKey(r.ID)).Value(string(encodeValue(nil, r, 1))).Pxat(time.UnixMilli(px)).Build(),
			c.B().Zadd().Key(idx).ScoreMember().ScoreMember(float64(floorMillis(r.LastSeenAt)), m).Build(),
			c.B().Pexpireat().Key(idx).MillisecondsTimestamp(px).Build())
		if len(cmds) >= 3*batch {
			flush()
		}
	}
	if len(cmds) > 0 {
		flush()
	}
	return ids
}

// BenchmarkHeartbeat measures what Options.CacheStaleness costs when
// nothing else runs: a store whose cache is in use on a private
// redis-server, with the default bound (bound=on) and without one
// (bound=off, the baseline: Redis's own housekeeping, rueidis's keepalive).
// One op is one heartbeat interval of waiting; it reports the commands
// Redis processed per second (a heartbeat round is a PING per node with one
// connection, or a CLIENT CACHING and an HGET per connection), the Redis
// server's CPU time per second, and this whole process's.
//
//	go test -run '^$' -bench Heartbeat -benchtime 5s -count 3 ./store/redisstore/
func BenchmarkHeartbeat(b *testing.B) {
	srv := testredis.StartServer(b)
	for _, bound := range []bool{true, false} {
		b.Run(fmt.Sprintf("bound=%v", map[bool]string{true: "on", false: "off"}[bound]), func(b *testing.B) {
			s := openURL(b, "redis://"+srv.Addr(), func(o *Options) {
				if !bound {
					o.CacheStaleness = -1
				}
			})
			benchHeartbeat(b, s)
		})
	}
}

func benchHeartbeat(b *testing.B, s *tracked) {
	commands := func() int64 {
		info, err := s.client.Do(context.Background(), s.client.B().Info().Section("stats").Build()).ToString()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no total_commands_processed in INFO stats")
		return 0
	}
	every := DefaultCacheStaleness / heartbeatsPerBound
	var ru0, ru1 syscall.Rusage
	cmd0, cpu0 := commands(), serverCPU(b, s)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if s.live.bound > 0 {
			s.live.want() // as a Get filling the cache does
		}
		time.Sleep(every)
	}
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	// INFO is one command per call: serverCPU's and commands' below.
	b.ReportMetric(float64(commands()-cmd0-2)/elapsed, "redis-cmds/s")
	b.ReportMetric(float64((serverCPU(b, s)-cpu0).Microseconds())/elapsed, "redis-cpu-µs/s")
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime)+syscall.TimevalToNsec(ru1.Stime)) -
		time.Duration(syscall.TimevalToNsec(ru0.Utime)+syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu.Microseconds())/elapsed, "client-cpu-µs/s")
	b.ReportMetric(float64(wiresPerNode(multiplexFor(rueidis.ClientModeStandalone, 0))), "connections")
}

// BenchmarkGetHit is one goroutine getting one cached record over and
// over: the CPU cost of a cache hit without the scheduling noise of 64
// goroutines (cache=unbounded: without the staleness bound's check).
func BenchmarkGetHit(b *testing.B) {
	for _, mode := range []string{"bounded", "unbounded"} {
		b.Run("cache="+mode, func(b *testing.B) {
			s := standalone(b, func(o *Options) {
				if mode == "unbounded" {
					o.CacheStaleness = -1
				}
			})
			ids := loadSubjects(b, s, 1, 1)
			time.Sleep(writeGuard)
			ctx := context.Background()
			for range 3 {
				s.Get(ctx, ids[0])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := s.Get(ctx, ids[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeValue is what a Get that misses the client-side cache
// spends decoding a typical record, sealed (the seal checked: SHA-1 of
// about 250 bytes) and legacy (no seal): the difference is the seal's cost
// per uncached read, to compare with BenchmarkGet/cache=false's CPU.
//
//	go test -run - -bench DecodeValue -benchmem ./store/redisstore/
func BenchmarkDecodeValue(b *testing.B) {
	now := time.Now()
	r := newRecord(b, "user-1234@example.com", now)
	r.IP, r.UserAgent = "203.0.113.9", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	r.Data, r.Claims = []byte(`{"cart":3,"theme":"dark"}`), []byte(`{"role":"user"}`)
	sealed := encodeValue(nil, r, 7)
	legacy := append([]byte{valueLegacy}, sealed[1:len(sealed)-sealLen]...)
	for _, c := range []struct {
		name string
		v    []byte
	}{{"sealed", sealed}, {"legacy", legacy}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.v)))
			for b.Loop() {
				if _, err := decodeValue(r.ID, c.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetRatio is the store half of issue #15's Redis ratios: Get
// against the bare rueidis call on the store's own client, 64 goroutines,
// 1,000 sessions, the two taking turns of 50 ms (internal/benchpair):
// cache=false a GET of a value as long as a record, cache=true DoCache of
// the same. It reports both ops/s, the process CPU, system calls and
// allocations per op of each, and ratio-% (Get ÷ rueidis, ops/s). The
// Manager-level figure (Validate) is bench's BenchmarkRedisRatio.
//
//	go test -run '^$' -bench GetRatio -benchtime 1s -count 6 ./store/redisstore/
func BenchmarkGetRatio(b *testing.B) {
	for _, cache := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", cache), func(b *testing.B) {
			s := standalone(b, func(o *Options) { o.DisableCache = !cache })
			ids := loadSubjects(b, s, 1000, 10)
			ctx := context.Background()
			c := s.client
			v, err := c.Do(ctx, c.B().Get().Key(s.recordKey(ids[0])).Build()).ToString()
			if err != nil {
				b.Fatal(err)
			}
			value := strings.Repeat("v", len(v))
			keys := make([]string, len(ids))
			for i, id := range ids {
				keys[i] = s.prefix + "raw:" + s.recordKey(id)[len(s.prefix):]
				if err := c.Do(ctx, c.B().Set().Key(keys[i]).Value(value).Build()).Error(); err != nil {
					b.Fatal(err)
				}
			}
			b.Cleanup(func() { c.Do(context.Background(), c.B().Del().Key(keys...).Build()) })
			if cache { // warm both caches (after the store's own-write guard)
				time.Sleep(writeGuard)
				for i, id := range ids {
					s.Get(ctx, id)
					c.DoCache(ctx, c.B().Get().Key(keys[i]).Cache(), time.Minute)
				}
			}
			get := benchpair.Op{Name: "get", Do: func(ctx context.Context, i int) error {
				_, err := s.Get(ctx, ids[i])
				return err
			}}
			peer := benchpair.Op{Name: "rueidis", Do: func(ctx context.Context, i int) error {
				var v string
				var err error
				if cache {
					v, err = c.DoCache(ctx, c.B().Get().Key(keys[i]).Cache(), time.Minute).ToString()
				} else {
					v, err = c.Do(ctx, c.B().Get().Key(keys[i]).Build()).ToString()
				}
				if err == nil && len(v) != len(value) {
					err = fmt.Errorf("rueidis: short value")
				}
				return err
			}}
			r := benchpair.Run(b, 64, len(ids), get, peer)
			b.ReportMetric(100*r[0].Rate()/r[1].Rate(), "ratio-%")
		})
	}
}
