package soak

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/faults"
)

func inf() float64 { return math.Inf(1) }

func TestSlope(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4}
	ys := []float64{2, 5, 8, 11, 14} // 3x + 2
	if got := Slope(xs, ys); math.Abs(got-3) > 1e-12 {
		t.Errorf("slope %v, want 3", got)
	}
	// Noise around a flat line fits a slope near zero.
	if got := Slope(xs, []float64{10, 12, 10, 12, 10}); math.Abs(got) > 1e-12 {
		t.Errorf("slope of a symmetric saw-tooth %v, want 0", got)
	}
	if got := Slope([]float64{1, 1}, []float64{0, 5}); got != 0 {
		t.Errorf("no spread in x: %v, want 0", got)
	}
}

// samplesOf builds one sample a minute with RssAnon, goroutines and files
// from f.
func samplesOf(n int, f func(i int) (anon int64, g, fds int)) []Sample {
	var out []Sample
	for i := range n {
		a, g, fd := f(i)
		out = append(out, Sample{At: time.Unix(0, 0).Add(time.Duration(i) * time.Minute), RSS: a + 10<<20, RSSAnon: a, Goroutines: g, FDs: fd})
	}
	return out
}

func TestJudgeWarmupAndBounds(t *testing.T) {
	b := Bounds{Warmup: 10 * time.Minute, RSSGrowth: 8 << 20, RSSGrowthFraction: 0.10, GoroutineGrowth: 10, FDGrowth: 10}
	// A steep climb during the warm-up, then a saw-tooth: flat.
	v := Judge(samplesOf(60, func(i int) (int64, int, int) {
		if i < 10 {
			return int64(i) * 4 << 20, 10 + 3*i, 10 + 3*i
		}
		return 40<<20 + int64(i%3)<<20, 40 + i%5, 40
	}), b)
	if !v.OK() {
		t.Errorf("flat after the warm-up, yet: %q (%v)", v.Problems, &v)
	}
	if v.Samples != 50 || v.Window != 49*time.Minute {
		t.Errorf("window %v with %d samples, want 49m0s with 50", v.Window, v.Samples)
	}
	if v.RSSMax != 42<<20+10<<20 || v.GoroutinesMin != 10 || v.GoroutinesMax != 44 {
		t.Errorf("extremes over the whole run: %v", &v)
	}
	// One goroutine every five minutes is a leak: 10 over 50 minutes.
	v = Judge(samplesOf(60, func(i int) (int64, int, int) { return 40 << 20, 20 + i/4, 30 }), b)
	if v.OK() || !strings.Contains(v.Problems[0], "goroutines") {
		t.Errorf("a goroutine per four minutes passed: %q (%v)", v.Problems, &v)
	}
	// Memory: the bound is 8 MiB plus 10 % of the median.
	// Half a MiB a minute is 24.5 MiB over the 49 judged minutes.
	v = Judge(samplesOf(60, func(i int) (int64, int, int) { return 100<<20 + int64(i)<<19, 20, 30 }), b)
	if v.OK() || !strings.Contains(v.Problems[0], "RssAnon") {
		t.Errorf("RssAnon +24.5 MiB passed a bound of 8 MiB + 10 %% of a 117 MiB median: %q (%v)", v.Problems, &v)
	}
	v = Judge(samplesOf(60, func(i int) (int64, int, int) { return 300<<20 + int64(i)<<19, 20, 30 }), b)
	if !v.OK() {
		t.Errorf("RssAnon +24.5 MiB failed a bound of 8 MiB + 10 %% of a 317 MiB median: %q (%v)", v.Problems, &v)
	}
	v = Judge(samplesOf(12, func(int) (int64, int, int) { return 1, 1, 1 }), b)
	if v.OK() {
		t.Error("two samples after the warm-up were judged flat")
	}
}

func TestReturned(t *testing.T) {
	base := Sample{Goroutines: 11, FDs: 12}
	if err := Returned(base, Sample{Goroutines: 16, FDs: 17}, 5); err != nil {
		t.Errorf("within the slack: %v", err)
	}
	if err := Returned(base, Sample{Goroutines: 11, FDs: 18}, 5); err == nil {
		t.Error("one file too many passed")
	}
	if err := Returned(base, Sample{Goroutines: 17, FDs: 12}, 5); err == nil {
		t.Error("one goroutine too many passed")
	}
}

func TestAddRequests(t *testing.T) {
	t0 := time.Unix(1000, 0)
	samples := []Sample{{At: t0}, {At: t0.Add(10 * time.Second)}, {At: t0.Add(20 * time.Second)}}
	op := func(end time.Duration, took time.Duration, status int) faults.Op {
		return faults.Op{Start: t0.Add(end - took), End: t0.Add(end), Status: status}
	}
	ops := []faults.Op{
		op(-time.Second, time.Millisecond, 200), // before the first sample: not counted
		op(time.Second, time.Millisecond, 200),
		op(2*time.Second, 3*time.Millisecond, 200),
		op(3*time.Second, 2*time.Millisecond, 401), // an expected refusal, not an error
		op(9*time.Second, 100*time.Millisecond, 503),
		op(15*time.Second, 5*time.Millisecond, 0), // no answer
		op(25*time.Second, time.Millisecond, 200), // after the last sample
	}
	AddRequests(samples, ops)
	s := samples[1]
	if s.Requests != 4 || s.Errors != 1 || s.ReqP50 != 2*time.Millisecond || s.ReqP99 != 100*time.Millisecond || s.Interval != 10*time.Second {
		t.Errorf("first interval: %d requests, %d errors, p50 %v, p99 %v, interval %v; want 4, 1, 2ms, 100ms, 10s", s.Requests, s.Errors, s.ReqP50, s.ReqP99, s.Interval)
	}
	if s := samples[2]; s.Requests != 1 || s.Errors != 1 {
		t.Errorf("second interval: %d requests, %d errors; want 1 and 1", s.Requests, s.Errors)
	}
	if s := samples[0]; s.Requests != 0 {
		t.Errorf("the first sample opens the first interval, yet has %d requests", s.Requests)
	}
}

// TestChartsAreWellFormedSVG draws both figures from synthetic samples and
// parses them back: every series is a polyline with a point per sample,
// text is escaped, markers are drawn.
func TestChartsAreWellFormedSVG(t *testing.T) {
	t0 := time.Unix(0, 0)
	var samples []Sample
	for i := range 20 {
		samples = append(samples, Sample{At: t0.Add(time.Duration(i) * 10 * time.Second), RSS: int64(30+i%3) << 20, RSSAnon: 12 << 20,
			Goroutines: 20 + i%2, FDs: 21, HeapInuse: 9 << 20, Load1: float64(i), Interval: 10 * time.Second, Requests: 2000, Errors: i % 2,
			ReqP50: 600 * time.Microsecond, ReqP99: time.Duration(i+1) * time.Millisecond, StoreP50: 90 * time.Microsecond, StoreP99: 2 * time.Millisecond})
	}
	marks := map[string]time.Time{"warm-up ends": t0.Add(30 * time.Second), "load stops": t0.Add(180 * time.Second)}
	for _, c := range []struct {
		fig    *Figure
		series int
		points int
	}{
		{ResourceChart("a <b> & c", samples, marks), 5, 20},
		{LatencyChart("a <b> & c", samples, marks), 7, 19}, // the first sample only opens the first interval
	} {
		svg := c.fig.SVG()
		polylines, points, texts := 0, 0, []string{}
		dec := xml.NewDecoder(bytes.NewReader(svg))
		inText := false
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("not well-formed XML: %v", err)
			}
			switch e := tok.(type) {
			case xml.StartElement:
				inText = e.Name.Local == "text"
				if e.Name.Local == "polyline" {
					polylines++
					for _, a := range e.Attr {
						if a.Name.Local == "points" {
							if n := len(strings.Fields(a.Value)); points == 0 {
								points = n
							} else if n != points {
								t.Errorf("polylines with %d and %d points", points, n)
							}
						}
					}
				}
			case xml.CharData:
				if inText {
					texts = append(texts, string(e))
				}
			case xml.EndElement:
				inText = false
			}
		}
		if polylines != c.series || points != c.points {
			t.Errorf("%q: %d polylines of %d points, want %d of %d", c.fig.Title, polylines, points, c.series, c.points)
		}
		all := strings.Join(texts, "|")
		for _, want := range []string{"a <b> & c", "warm-up ends", "load stops", "minutes"} {
			if !strings.Contains(all, want) {
				t.Errorf("%q: no text %q in %q", c.fig.Title, want, all)
			}
		}
	}
}

func TestAxes(t *testing.T) {
	for _, c := range []struct{ hi, top, step float64 }{{37, 40, 10}, {30.3, 35, 5}, {0.9, 0.9, 0.1}, {61, 65, 5}, {250, 250, 50}} {
		a := linearAxis(0, c.hi)
		if a.hi < c.hi || math.Abs(a.hi-c.top) > 1e-9 || math.Abs(a.ticks[1]-c.step) > 1e-9 || len(a.ticks) < 5 || len(a.ticks) > 14 {
			t.Errorf("linear axis to %v: top %v, ticks %v; want top %v in steps of %v", c.hi, a.hi, a.ticks, c.top, c.step)
		}
	}
	l := logAxis([]float64{0, 0.09, 3, 250})
	if l.lo != 0.01 || l.hi != 1000 || len(l.ticks) != 6 {
		t.Errorf("log axis over 0.09–250: %v–%v ticks %v; want 0.01–1000, 6 decades", l.lo, l.hi, l.ticks)
	}
	if l.frac(0) != 0 || math.Abs(l.frac(1)-0.4) > 1e-9 {
		t.Errorf("log axis: frac(0) %v, frac(1) %v; want 0 and 0.4", l.frac(0), l.frac(1))
	}
}
