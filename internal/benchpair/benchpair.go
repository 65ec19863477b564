// Package benchpair compares operations in one benchmark by running them in
// turns: every Slice the operation that all goroutines run changes, so a
// machine whose load drifts (other processes, a CI neighbour) slows each of
// them alike and their ratio stays meaningful, where separate benchmarks run
// one after the other would each see a different machine.
//
// Besides ops/s it measures what throughput on a shared machine cannot: the
// CPU time this process spent per operation (getrusage, all threads: the
// caller's goroutines, a client's background writers and readers, the GC)
// and, on Linux, the read and write system calls per operation
// (/proc/self/io), which show how well a client batches its round trips.
package benchpair

import (
	"context"
	"math/bits"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Op is one operation to compare. Do is called with a pseudo-random index
// in [0, n) of Run's n items.
type Op struct {
	Name string
	Do   func(ctx context.Context, i int) error
}

// Result is what one Op did while it had its turns.
type Result struct {
	Name string
	Ops  int64
	Wall time.Duration // the sum of its turns
	CPU  time.Duration // process CPU time during its turns
	// Syscalls is the read and write system calls made during its turns
	// (0 where /proc/self/io is missing).
	Syscalls int64
	// Allocs and Bytes are the heap allocations of the process during its
	// turns (runtime/metrics), background goroutines included.
	Allocs, Bytes uint64
}

// Rate is Ops per second of its turns.
func (r Result) Rate() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Wall.Seconds()
}

// CPUPerOp is the process CPU time per operation.
func (r Result) CPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Ops)
}

// AllocsPerOp and BytesPerOp are the heap allocations per operation.
func (r Result) AllocsPerOp() float64 { return per(float64(r.Allocs), r.Ops) }
func (r Result) BytesPerOp() float64  { return per(float64(r.Bytes), r.Ops) }

func per(v float64, ops int64) float64 {
	if ops == 0 {
		return 0
	}
	return v / float64(ops)
}

// SyscallsPerOp is the read and write system calls per operation.
func (r Result) SyscallsPerOp() float64 {
	if r.Ops == 0 {
		return 0
	}
	return float64(r.Syscalls) / float64(r.Ops)
}

// Slice is how long each turn lasts.
const Slice = 50 * time.Millisecond

// Run runs b.N operations in all with goroutines goroutines (spread by
// b.SetParallelism), the ops taking turns of Slice, over n items picked at
// random. It reports, per op, "<name>-ops/s", "<name>-cpu-µs/op",
// "<name>-syscalls/op", "<name>-allocs/op" and "<name>-B/op" (the
// testing package's own B/op and allocs/op average all ops), and returns
// the results in the order of ops. An error from an op fails b.
func Run(b *testing.B, goroutines, n int, ops ...Op) []Result {
	ctx := context.Background()
	b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	res := make([]Result, len(ops))
	for i, op := range ops {
		res[i].Name = op.Name
	}
	var (
		turn atomic.Int32
		seed atomic.Uint64
		mu   sync.Mutex
		ops0 = make([]int64, len(ops))
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	// The switcher charges each turn's wall time, CPU and system calls to
	// the op whose turn it was.
	b.ResetTimer()
	go func() {
		defer close(done)
		t0, cpu0, sys0, heap0 := time.Now(), processCPU(), syscalls(), readHeap()
		tick := time.NewTicker(Slice)
		defer tick.Stop()
		for {
			var last bool
			select {
			case <-tick.C:
			case <-stop:
				last = true
			}
			t1, cpu1, sys1, heap1 := time.Now(), processCPU(), syscalls(), readHeap()
			k := turn.Load()
			res[k].Wall += t1.Sub(t0)
			res[k].CPU += cpu1 - cpu0
			res[k].Syscalls += sys1 - sys0
			res[k].Allocs += heap1.allocs - heap0.allocs
			res[k].Bytes += heap1.bytes - heap0.bytes
			t0, cpu0, sys0, heap0 = t1, cpu1, sys1, heap1
			if last {
				return
			}
			turn.Store((k + 1) % int32(len(ops)))
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		x := seed.Add(0x9E3779B97F4A7C15)
		count := make([]int64, len(ops))
		defer func() {
			mu.Lock()
			for i, c := range count {
				ops0[i] += c
			}
			mu.Unlock()
		}()
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			hi, _ := bits.Mul64(x, uint64(n))
			k := turn.Load()
			if err := ops[k].Do(ctx, int(hi)); err != nil {
				b.Errorf("%s: %v", ops[k].Name, err)
				return
			}
			count[k]++
		}
	})
	close(stop)
	<-done
	b.StopTimer()
	for i := range res {
		res[i].Ops = ops0[i]
		r := res[i]
		b.ReportMetric(r.Rate(), r.Name+"-ops/s")
		b.ReportMetric(float64(r.CPUPerOp().Nanoseconds())/1e3, r.Name+"-cpu-µs/op")
		if r.Syscalls > 0 {
			b.ReportMetric(r.SyscallsPerOp(), r.Name+"-syscalls/op")
		}
		b.ReportMetric(r.AllocsPerOp(), r.Name+"-allocs/op")
		b.ReportMetric(r.BytesPerOp(), r.Name+"-B/op")
	}
	return res
}

type heap struct{ allocs, bytes uint64 }

var heapSamples = []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}

// readHeap reads the cumulative heap allocations (only the switcher calls
// it, so the shared samples need no lock).
func readHeap() heap {
	metrics.Read(heapSamples)
	return heap{heapSamples[0].Value.Uint64(), heapSamples[1].Value.Uint64()}
}

// Medians collects a figure per benchmark round and reports medians: with
// -count N the testing package runs a sub-benchmark N times in a row, and
// only its final round of each (not the calibration rounds) should count.
type Medians struct {
	mu sync.Mutex
	v  map[string][]float64
}

// Add records v under name.
func (m *Medians) Add(name string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v == nil {
		m.v = map[string][]float64{}
	}
	m.v[name] = append(m.v[name], v)
}

// Median returns the median of the values under name and how many there are.
func (m *Medians) Median(name string) (float64, int) {
	m.mu.Lock()
	v := slices.Clone(m.v[name])
	m.mu.Unlock()
	return Median(v), len(v)
}

// Median returns the median of v (0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
