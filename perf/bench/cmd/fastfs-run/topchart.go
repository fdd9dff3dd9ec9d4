package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"time"
)

// topSample is one scrape of the daemon's --metrics: per-op request counts
// and service-time sums (seconds), cumulative since the daemon started.
type topSample struct {
	at    time.Time
	count map[string]float64
	sum   map[string]float64
}

// sampleOf turns a parsed scrape into a topSample.
func sampleOf(at time.Time, ops []opStat) topSample {
	s := topSample{at: at, count: map[string]float64{}, sum: map[string]float64{}}
	for _, o := range ops {
		s.count[o.op] = float64(o.count)
		s.sum[o.op] = o.sum
	}
	return s
}

// topSeries is what `fastfsd top --metrics` shows each refresh, kept for
// the whole run: for each interval between two scrapes, each op's request
// rate and mean service time in that interval.
type topSeries struct {
	t0    time.Time
	ops   []string             // busiest first
	at    []float64            // seconds since t0, one per interval (its end)
	rate  map[string][]float64 // requests/s
	meanS map[string][]float64 // mean service time, seconds (NaN: no request)
}

// seriesOf computes the per-interval rates of the maxOps busiest ops.
func seriesOf(samples []topSample, maxOps int) topSeries {
	ts := topSeries{rate: map[string][]float64{}, meanS: map[string][]float64{}}
	if len(samples) < 2 {
		return ts
	}
	ts.t0 = samples[0].at
	last := samples[len(samples)-1]
	for op, n := range last.count {
		if n-samples[0].count[op] > 0 {
			ts.ops = append(ts.ops, op)
		}
	}
	total := func(op string) float64 { return last.count[op] - samples[0].count[op] }
	sort.Slice(ts.ops, func(a, b int) bool {
		if total(ts.ops[a]) != total(ts.ops[b]) {
			return total(ts.ops[a]) > total(ts.ops[b])
		}
		return ts.ops[a] < ts.ops[b]
	})
	if len(ts.ops) > maxOps {
		ts.ops = ts.ops[:maxOps]
	}
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		dt := b.at.Sub(a.at).Seconds()
		if dt <= 0 {
			continue
		}
		ts.at = append(ts.at, b.at.Sub(ts.t0).Seconds())
		for _, op := range ts.ops {
			n := b.count[op] - a.count[op]
			ts.rate[op] = append(ts.rate[op], math.Max(n, 0)/dt)
			m := math.NaN()
			if n > 0 {
				m = (b.sum[op] - a.sum[op]) / n
			}
			ts.meanS[op] = append(ts.meanS[op], m)
		}
	}
	return ts
}

// writeTopSVG draws the series as two line charts, one above the other:
// requests/s per op, and mean service time per op (log scale), against
// seconds into the run.
func writeTopSVG(w io.Writer, ts topSeries, title string) error {
	const left, width, panelH, gap, top = 70, 640, 220, 60, 40
	height := top + 2*panelH + gap + 30 + 16*len(ts.ops)
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", left+width+30, height)
	p(`<text x="10" y="18" font-size="13">%s</text>`+"\n", html.EscapeString(title))
	if len(ts.at) == 0 || len(ts.ops) == 0 {
		p(`<text x="10" y="40">no requests were scraped from --metrics during the run</text>` + "\n</svg>\n")
		return nil
	}
	tMax := ts.at[len(ts.at)-1]
	x := func(t float64) float64 { return left + t/math.Max(tMax, 1e-9)*width }
	// Panel 1: requests/s, linear from 0.
	rMax := 1.0
	for _, op := range ts.ops {
		for _, r := range ts.rate[op] {
			rMax = math.Max(rMax, r)
		}
	}
	y1 := func(r float64) float64 { return top + panelH - r/rMax*panelH }
	// Panel 2: mean service time, log10 from 1 µs to the largest seen.
	lo, hi := math.Log10(1e-6), math.Log10(1e-6)
	for _, op := range ts.ops {
		for _, m := range ts.meanS[op] {
			if !math.IsNaN(m) && m > 0 {
				hi = math.Max(hi, math.Log10(m))
			}
		}
	}
	hi = math.Ceil(hi + 1e-9)
	top2 := top + panelH + gap
	y2 := func(m float64) float64 {
		v := math.Max(lo, math.Min(hi, math.Log10(math.Max(m, 1e-9))))
		return float64(top2+panelH) - (v-lo)/(hi-lo)*panelH
	}
	axes := func(y0 int, label string) {
		p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0, width, panelH)
		p(`<text x="%d" y="%d">%s</text>`+"\n", left, y0-6, html.EscapeString(label))
	}
	axes(top, fmt.Sprintf("requests/s per operation (each %.0f s interval; max %.0f/s)", ts.at[0], rMax))
	axes(top2, "mean service time per operation in the daemon (log scale)")
	for _, f := range []float64{0, 0.5, 1} {
		p(`<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-4, y1(f*rMax)+4, f*rMax)
	}
	for e := lo; e <= hi+1e-9; e++ {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, y2(math.Pow(10, e)), left+width, y2(math.Pow(10, e)), left-4, y2(math.Pow(10, e))+4, time.Duration(math.Pow(10, e)*1e9))
	}
	for _, y0 := range []int{top + panelH, top2 + panelH} {
		p(`<text x="%d" y="%d">0 s</text><text x="%d" y="%d" text-anchor="end">%.0f s into the run</text>`+"\n", left, y0+14, left+width, y0+14, tMax)
	}
	for i, op := range ts.ops {
		c := palette[i%len(palette)]
		var r1, r2 []byte
		// The latency line breaks where the op had no request (no mean).
		flush := func() {
			if len(r2) > 0 {
				p(`<polyline fill="none" stroke="%s" points="%s"/>`+"\n", c, r2)
				r2 = r2[:0]
			}
		}
		for j, t := range ts.at {
			r1 = fmt.Appendf(r1, "%.1f,%.1f ", x(t), y1(ts.rate[op][j]))
			if m := ts.meanS[op][j]; !math.IsNaN(m) {
				r2 = fmt.Appendf(r2, "%.1f,%.1f ", x(t), y2(m))
			} else {
				flush()
			}
		}
		p(`<polyline fill="none" stroke="%s" points="%s"/>`+"\n", c, r1)
		flush()
		ly := top2 + panelH + 30 + 16*i
		p(`<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", left, ly-9, c, left+14, ly, html.EscapeString(op))
	}
	p("</svg>\n")
	return nil
}

// palette colours the ops, busiest first.
var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}
