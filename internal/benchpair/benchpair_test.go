package benchpair

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestRun: both ops get turns, every operation is counted once, each on
// the op that ran it, and the indexes stay in range.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a benchmark")
	}
	var calls [2]atomic.Int64
	var bad atomic.Bool
	op := func(k int) Op {
		return Op{Name: []string{"a", "b"}[k], Do: func(_ context.Context, i int) error {
			if i < 0 || i >= 10 {
				bad.Store(true)
			}
			calls[k].Add(1)
			return nil
		}}
	}
	var res []Result
	var n int
	testing.Benchmark(func(b *testing.B) {
		res = Run(b, 4, 10, op(0), op(1))
		n = b.N
	})
	if bad.Load() {
		t.Error("an index out of [0, n)")
	}
	if len(res) != 2 || res[0].Name != "a" || res[1].Name != "b" {
		t.Fatalf("results %+v", res)
	}
	// The last benchmark round's counts are the last calls made.
	if got := res[0].Ops + res[1].Ops; got != int64(n) {
		t.Errorf("%d ops counted, want b.N = %d", got, n)
	}
	for k, r := range res {
		if r.Ops == 0 || r.Wall <= 0 || r.Rate() <= 0 {
			t.Errorf("op %s had no turn: %+v", r.Name, r)
		}
		if r.Ops > calls[k].Load() {
			t.Errorf("op %s: %d counted, %d calls in all", r.Name, r.Ops, calls[k].Load())
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.v); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.v, got, c.want)
		}
	}
	var m Medians
	m.Add("x", 2)
	m.Add("x", 8)
	m.Add("x", 4)
	if got, n := m.Median("x"); got != 4 || n != 3 {
		t.Errorf("Medians.Median = %v, %d; want 4, 3", got, n)
	}
}
