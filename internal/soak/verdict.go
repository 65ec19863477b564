package soak

import (
	"fmt"
	"slices"
	"time"
)

// Bounds say what "flat" means. The judged quantity is the rise of the
// least-squares line through the samples after the warm-up, over that
// window: a leak shows as a steady slope, while the garbage collector's
// saw-tooth and a burst of connections average out.
type Bounds struct {
	Warmup time.Duration // samples in the first Warmup of the run are not judged (heap and pools growing to their working size)

	// The fitted rise of RssAnon may be at most RSSGrowth bytes plus
	// RSSGrowthFraction of the window's median RssAnon. RssAnon, not all
	// of RSS: the file-backed part is bbolt's memory-mapped database,
	// which grows with the data the load stores, by design.
	RSSGrowth         int64
	RSSGrowthFraction float64

	GoroutineGrowth float64 // the most the fitted line of goroutines may rise
	FDGrowth        float64 // the most the fitted line of open files may rise
}

// Verdict is what [Judge] found.
type Verdict struct {
	Window  time.Duration // judged: from the end of the warm-up to the last sample
	Samples int           // in the window

	RSSStart, RSSEnd, RSSMax    int64 // all of RSS over the whole run (first, last, largest reading)
	AnonStart, AnonEnd, AnonMax int64 // RssAnon likewise
	AnonMedian                  int64 // RssAnon, median over the window

	AnonGrowth      float64 // fitted rise of RssAnon over the window, bytes
	RSSGrowth       float64 // fitted rise of all of RSS over the window, bytes (reported, not judged)
	HeapGrowth      float64 // fitted rise of the Go heap in use, bytes (reported, not judged: it swings with each GC cycle)
	GoroutineGrowth float64
	FDGrowth        float64

	GoroutinesMin, GoroutinesMax int
	FDsMin, FDsMax               int

	Problems []string
}

// OK reports whether every bound held.
func (v *Verdict) OK() bool { return len(v.Problems) == 0 }

func (v *Verdict) String() string {
	return fmt.Sprintf("window %v (%d samples): RSS %s → %s (max %s, fitted rise %s); RssAnon %s → %s (max %s, median %s, fitted rise %s); "+
		"Go heap in use fitted rise %s; goroutines %d–%d (fitted rise %.1f); open files %d–%d (fitted rise %.1f)",
		v.Window.Round(time.Second), v.Samples, mib(float64(v.RSSStart)), mib(float64(v.RSSEnd)), mib(float64(v.RSSMax)), mib(v.RSSGrowth),
		mib(float64(v.AnonStart)), mib(float64(v.AnonEnd)), mib(float64(v.AnonMax)), mib(float64(v.AnonMedian)), mib(v.AnonGrowth), mib(v.HeapGrowth),
		v.GoroutinesMin, v.GoroutinesMax, v.GoroutineGrowth, v.FDsMin, v.FDsMax, v.FDGrowth)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// Judge fits a line through each resource over the samples after the
// warm-up and checks its rise against b. Samples must be in time order
// and cover the load only (not the idle time after it).
func Judge(samples []Sample, b Bounds) Verdict {
	var v Verdict
	if len(samples) == 0 {
		v.Problems = append(v.Problems, "no samples")
		return v
	}
	first, last := samples[0], samples[len(samples)-1]
	v.RSSStart, v.RSSEnd, v.AnonStart, v.AnonEnd = first.RSS, last.RSS, first.RSSAnon, last.RSSAnon
	v.GoroutinesMin, v.FDsMin = first.Goroutines, first.FDs
	for _, s := range samples {
		v.RSSMax, v.AnonMax = max(v.RSSMax, s.RSS), max(v.AnonMax, s.RSSAnon)
		v.GoroutinesMin, v.GoroutinesMax = min(v.GoroutinesMin, s.Goroutines), max(v.GoroutinesMax, s.Goroutines)
		v.FDsMin, v.FDsMax = min(v.FDsMin, s.FDs), max(v.FDsMax, s.FDs)
	}
	from := first.At.Add(b.Warmup)
	var w []Sample
	for _, s := range samples {
		if !s.At.Before(from) {
			w = append(w, s)
		}
	}
	v.Samples = len(w)
	if len(w) < 5 {
		v.Problems = append(v.Problems, fmt.Sprintf("only %d samples after the warm-up: too few to fit a line", len(w)))
		return v
	}
	v.Window = w[len(w)-1].At.Sub(w[0].At)
	rise := func(y func(Sample) float64) float64 {
		xs, ys := make([]float64, len(w)), make([]float64, len(w))
		for i, s := range w {
			xs[i], ys[i] = s.At.Sub(w[0].At).Seconds(), y(s)
		}
		return Slope(xs, ys) * v.Window.Seconds()
	}
	anon := make([]int64, len(w))
	for i, s := range w {
		anon[i] = s.RSSAnon
	}
	slices.Sort(anon)
	v.AnonMedian = anon[len(anon)/2]
	v.AnonGrowth = rise(func(s Sample) float64 { return float64(s.RSSAnon) })
	v.RSSGrowth = rise(func(s Sample) float64 { return float64(s.RSS) })
	v.HeapGrowth = rise(func(s Sample) float64 { return float64(s.HeapInuse) })
	v.GoroutineGrowth = rise(func(s Sample) float64 { return float64(s.Goroutines) })
	v.FDGrowth = rise(func(s Sample) float64 { return float64(s.FDs) })

	if limit := float64(b.RSSGrowth) + b.RSSGrowthFraction*float64(v.AnonMedian); v.AnonGrowth > limit {
		v.Problems = append(v.Problems, fmt.Sprintf("RssAnon rose %s over %v (bound %s): memory is growing",
			mib(v.AnonGrowth), v.Window.Round(time.Second), mib(limit)))
	}
	if v.GoroutineGrowth > b.GoroutineGrowth {
		v.Problems = append(v.Problems, fmt.Sprintf("goroutines rose %.1f over %v (bound %.0f): goroutines are leaking",
			v.GoroutineGrowth, v.Window.Round(time.Second), b.GoroutineGrowth))
	}
	if v.FDGrowth > b.FDGrowth {
		v.Problems = append(v.Problems, fmt.Sprintf("open files rose %.1f over %v (bound %.0f): files or connections are leaking",
			v.FDGrowth, v.Window.Round(time.Second), b.FDGrowth))
	}
	return v
}

// Slope is the least-squares slope of ys over xs (0 if xs has no spread).
func Slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// Returned reports whether the server's goroutines and open files are back
// within slack of the baseline taken before the load, once it stopped: a
// connection, timer or file the load left behind shows here even when the
// slope during the load was flat.
func Returned(baseline, after Sample, slack int) error {
	if after.Goroutines > baseline.Goroutines+slack || after.FDs > baseline.FDs+slack {
		return fmt.Errorf("after the load: %d goroutines and %d open files, baseline %d and %d (slack %d)",
			after.Goroutines, after.FDs, baseline.Goroutines, baseline.FDs, slack)
	}
	return nil
}
