package soak

import (
	"slices"
	"time"
)

// Chart colours: one per quantity, the same in every figure.
const (
	colRSS, colAnon, colHeap = "#1f77b4", "#17becf", "#8c564b"
	colGoroutines, colFDs    = "#d62728", "#ff7f0e"
	colReqP50, colReqP99     = "#2ca02c", "#98df8a"
	colStoreP50, colStoreP99 = "#9467bd", "#c5b0d5"
	colLoad, colRate, colErr = "#7f7f7f", "#1f77b4", "#d62728"
)

// minutes is the time axis: minutes since the first sample.
func minutes(samples []Sample, at time.Time) float64 {
	return at.Sub(samples[0].At).Minutes()
}

// series plots y over samples[from:], against minutes since samples[0].
func series(samples []Sample, from int, name, color string, right bool, y func(Sample) float64) Series {
	s := Series{Name: name, Color: color, Right: right}
	for _, smp := range samples[from:] {
		s.Points = append(s.Points, Point{minutes(samples, smp.At), y(smp)})
	}
	return s
}

// ResourceChart is the server's memory, goroutines and open files over
// time. The markers are times (the end of the warm-up, the end of the
// load), drawn as labelled lines.
func ResourceChart(title string, samples []Sample, marks map[string]time.Time) *Figure {
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	ss := []Series{
		series(samples, 0, "RSS", colRSS, false, func(s Sample) float64 { return mb(s.RSS) }),
		series(samples, 0, "RssAnon (heap, stacks)", colAnon, false, func(s Sample) float64 { return mb(s.RSSAnon) }),
	}
	if slices.ContainsFunc(samples, func(s Sample) bool { return s.HeapInuse > 0 }) { // (runs recorded before it was sampled lack it)
		heap := series(samples, 0, "Go heap in use", colHeap, false, func(s Sample) float64 { return mb(s.HeapInuse) })
		heap.Dashed = true
		ss = append(ss, heap)
	}
	ss = append(ss,
		series(samples, 0, "goroutines", colGoroutines, true, func(s Sample) float64 { return float64(s.Goroutines) }),
		series(samples, 0, "open files", colFDs, true, func(s Sample) float64 { return float64(s.FDs) }))
	return &Figure{Title: title, XLabel: "minutes", Markers: markers(samples, marks), Panels: []Panel{{
		Left: "MiB", Right: "count", Series: ss,
	}}}
}

// LatencyChart is request latency (as the load saw it) and store latency
// (as the server timed it) per interval, with the machine's load average
// to read a spike against; and the throughput and errors per interval.
func LatencyChart(title string, samples []Sample, marks map[string]time.Time) *Figure {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	// The first sample only opens the first interval: it has no figures.
	from := min(1, len(samples))
	perSecond := func(n func(Sample) int) func(Sample) float64 {
		return func(s Sample) float64 {
			if s.Interval <= 0 {
				return 0
			}
			return float64(n(s)) / s.Interval.Seconds()
		}
	}
	req := series(samples, from, "requests/s", colRate, false, perSecond(func(s Sample) int { return s.Requests }))
	errs := series(samples, from, "errors/s (5xx, no answer)", colErr, false, perSecond(func(s Sample) int { return s.Errors }))
	load := series(samples, from, "load average (1 min)", colLoad, true, func(s Sample) float64 { return s.Load1 })
	load.Dashed = true
	lat := func(name, color string, dashed bool, d func(Sample) time.Duration) Series {
		s := series(samples, from, name, color, false, func(s Sample) float64 { return ms(d(s)) })
		s.Dashed = dashed
		return s
	}
	return &Figure{Title: title, XLabel: "minutes", Markers: markers(samples, marks), Panels: []Panel{
		{Left: "ms (log)", LeftLog: true, Right: "load average", Series: []Series{
			lat("request p50", colReqP50, false, func(s Sample) time.Duration { return s.ReqP50 }),
			lat("request p99", colReqP99, false, func(s Sample) time.Duration { return s.ReqP99 }),
			lat("store p50", colStoreP50, true, func(s Sample) time.Duration { return s.StoreP50 }),
			lat("store p99", colStoreP99, true, func(s Sample) time.Duration { return s.StoreP99 }),
			load,
		}},
		{Left: "per second", Series: []Series{req, errs}},
	}}
}

func markers(samples []Sample, marks map[string]time.Time) []Marker {
	var out []Marker
	for name, at := range marks {
		if len(samples) > 0 {
			out = append(out, Marker{X: minutes(samples, at), Label: name})
		}
	}
	return out
}
