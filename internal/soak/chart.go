package soak

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
)

// Figure is an SVG image of panels stacked over one time axis. It is
// drawn by hand with the standard library: a few polylines, axes and a
// legend need no plotting package.
type Figure struct {
	Title   string
	XLabel  string
	Panels  []Panel
	Markers []Marker // vertical lines across every panel (the end of the warm-up, the end of the load)
}

// Panel is one plot: series on a left axis and, optionally, on a right one.
type Panel struct {
	Left, Right string // axis labels
	LeftLog     bool   // a logarithmic left axis (latencies, where a p99 spike would flatten the p50)
	Series      []Series
}

// Series is one line.
type Series struct {
	Name   string
	Color  string
	Right  bool // on the right axis
	Dashed bool
	Points []Point
}

// Point is X (on the shared time axis) and Y.
type Point struct{ X, Y float64 }

// Marker is a labelled vertical line at X.
type Marker struct {
	X     float64
	Label string
}

const (
	figWidth    = 960
	panelHeight = 300
	marginLeft  = 80
	marginRight = 80
	titleHeight = 40
	panelGap    = 70 // room for the x ticks and the legend under each panel
)

// SVG renders f.
func (f *Figure) SVG() []byte {
	var b bytes.Buffer
	height := titleHeight + len(f.Panels)*(panelHeight+panelGap) + 20
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		figWidth, height, figWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", figWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" text-anchor="middle">%s</text>`+"\n", figWidth/2, esc(f.Title))
	xmax := 0.0
	for _, p := range f.Panels {
		for _, s := range p.Series {
			for _, pt := range s.Points {
				xmax = max(xmax, pt.X)
			}
		}
	}
	xa := linearAxis(0, xmax)
	for i, p := range f.Panels {
		top := float64(titleHeight + i*(panelHeight+panelGap))
		f.panel(&b, p, xa, top)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func (f *Figure) panel(b *bytes.Buffer, p Panel, xa axis, top float64) {
	left, right := float64(marginLeft), float64(figWidth-marginRight)
	bottom := top + panelHeight
	px := func(x float64) float64 { return left + (right-left)*xa.frac(x) }

	var lo, hi, rlo, rhi []float64
	hasRight := false
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if s.Right {
				hasRight = true
				rlo, rhi = append(rlo, pt.Y), append(rhi, pt.Y)
			} else {
				lo, hi = append(lo, pt.Y), append(hi, pt.Y)
			}
		}
	}
	la := linearAxis(0, maxOf(hi))
	if p.LeftLog {
		la = logAxis(lo)
	}
	ra := linearAxis(0, maxOf(rhi))
	py := func(a axis, y float64) float64 { return bottom - (bottom-top)*a.frac(y) }

	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", left, top, right-left, bottom-top)
	for _, t := range la.ticks {
		y := py(la, t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, right, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, label10(t))
	}
	if hasRight {
		for _, t := range ra.ticks {
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", right+6, py(ra, t)+4, label10(t))
		}
		fmt.Fprintf(b, `<text transform="translate(%.1f,%.1f) rotate(90)" text-anchor="middle">%s</text>`+"\n", right+55, (top+bottom)/2, esc(p.Right))
	}
	fmt.Fprintf(b, `<text transform="translate(%.1f,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", left-55, (top+bottom)/2, esc(p.Left))
	for _, t := range xa.ticks {
		x := px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x, top, x, bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, bottom+16, label10(t))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (left+right)/2, bottom+32, esc(f.XLabel))
	for _, m := range f.Markers {
		x := px(m.X)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="2,3"/>`+"\n", x, top, x, bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#666" font-size="10">%s</text>`+"\n", x+3, top+12, esc(m.Label))
	}
	lx := left
	for _, s := range p.Series {
		a := la
		if s.Right {
			a = ra
		}
		var pts bytes.Buffer
		for _, pt := range s.Points {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(pt.X), py(a, pt.Y))
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6,3"`
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`+"\n", s.Color, dash, bytes.TrimSpace(pts.Bytes()))
		side := ""
		if hasRight {
			side = " (left)"
			if s.Right {
				side = " (right)"
			}
		}
		ly := bottom + 52
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly-4, lx+20, ly-4, s.Color, dash)
		name := s.Name + side
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+24, ly, esc(name))
		lx += 34 + 6.5*float64(len(name))
	}
}

// axis maps values to [0, 1] and carries its tick values.
type axis struct {
	lo, hi float64
	log    bool
	ticks  []float64
}

func (a axis) frac(v float64) float64 {
	if a.log {
		if v <= a.lo {
			return 0
		}
		return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	if a.hi == a.lo {
		return 0
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// linearAxis spans [lo, a round number ≥ hi] in steps of 1, 2 or 5 × 10ⁿ,
// five to fourteen ticks: of the steps for about 13, 8 and 5 intervals
// the one that leaves the least of the plot empty (the fewest ticks on a
// tie).
func linearAxis(lo, hi float64) axis {
	if hi <= lo {
		hi = lo + 1
	}
	var best axis
	for _, n := range []float64{5, 8, 13} {
		step := niceStep((hi - lo) / n)
		a := axis{lo: lo, hi: lo + math.Ceil((hi-lo)/step-1e-9)*step}
		for k := 0.0; lo+k*step <= a.hi+step/2; k++ {
			a.ticks = append(a.ticks, lo+k*step)
		}
		if best.ticks == nil || a.hi < best.hi-1e-9*step {
			best = a
		}
	}
	return best
}

// logAxis spans the decades that hold the positive values in vs.
func logAxis(vs []float64) axis {
	lo, hi := math.Inf(1), 0.0
	for _, v := range vs {
		if v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1
	}
	a := axis{lo: math.Pow(10, math.Floor(math.Log10(lo))), hi: math.Pow(10, math.Ceil(math.Log10(hi))), log: true}
	if a.hi <= a.lo {
		a.hi = a.lo * 10
	}
	for t := a.lo; t <= a.hi*1.001; t *= 10 {
		a.ticks = append(a.ticks, t)
	}
	return a
}

// niceStep is the smallest 1, 2 or 5 × 10ⁿ at least raw.
func niceStep(raw float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func maxOf(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}

func label10(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
