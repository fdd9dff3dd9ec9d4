package bench

import (
	"fmt"
	"html"
	"io"
	"math"
)

// palette colours subjects in order; the baseline is first.
var palette = []string{"#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"}

// WriteSVG draws a grouped bar chart of every job's ratio to the baseline on
// a log scale (so 0.01 and 100 are equally far from 1), one group per job.
func (r *Result) WriteSVG(w io.Writer) error {
	const (
		left, top, width = 170, 50, 560
	)
	n := len(r.Subjects)
	groupH := n*14 + 12
	height := top + len(r.Rows)*groupH + 40
	lo, hi := math.Log10(0.001), math.Log10(10.0)
	x := func(ratio float64) float64 {
		if ratio <= 0 {
			ratio = 0.001
		}
		v := math.Max(lo, math.Min(hi, math.Log10(ratio)))
		return left + (v-lo)/(hi-lo)*width
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", left+width+40, height)
	p(`<text x="10" y="18" font-size="14">fastfs benchmark: ratio to %s (median of rounds, log scale), %s</text>`+"\n", html.EscapeString(r.Baseline), r.Date.Format("2006-01-02 15:04 UTC"))
	for _, t := range []float64{0.001, 0.01, 0.1, 1, 10} {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%gx</text>`+"\n", x(t), top-8, x(t), height-30, x(t), top-12, t)
	}
	for i, s := range r.Subjects {
		p(`<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", left+i*130, height-18, palette[i%len(palette)], left+i*130+14, height-9, html.EscapeString(s))
	}
	for gi, row := range r.Rows {
		y0 := top + gi*groupH
		p(`<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-6, y0+groupH/2, html.EscapeString(row.Job))
		for si, s := range r.Subjects {
			ratio, ok := row.Ratio[s]
			y := y0 + si*14
			if !ok && row.Err[s] == notRun {
				p(`<text x="%d" y="%d" fill="#888">not run</text>`+"\n", left+4, y+10)
				continue
			}
			if !ok {
				p(`<text x="%d" y="%d" fill="#d62728">error</text>`+"\n", left+4, y+10)
				continue
			}
			p(`<rect x="%d" y="%d" width="%.1f" height="11" fill="%s"/><text x="%.1f" y="%d">%.3gx (%s %s)</text>`+"\n",
				left, y, x(ratio)-left, palette[si%len(palette)], x(ratio)+4, y+10, ratio, fmtFig(row.Median[s]), row.Unit)
		}
	}
	p("</svg>\n")
	return nil
}
