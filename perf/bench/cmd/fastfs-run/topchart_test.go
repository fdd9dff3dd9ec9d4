package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestTopSeriesAndSVG(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	var samples []topSample
	for i := 0; i <= 4; i++ {
		// LOOKUP: 100 requests a second, 10 µs each; READ: 10 a second
		// from the second interval on, 1 ms each.
		reads := uint64(max(i-1, 0) * 10)
		samples = append(samples, sampleOf(t0.Add(time.Duration(i)*time.Second), []opStat{
			{op: "LOOKUP", count: uint64(100 * i), sum: float64(100*i) * 10e-6},
			{op: "READ", count: reads, sum: float64(reads) * 1e-3},
			{op: "INIT", count: 1, sum: 1e-6}, // no change: left out
		}))
	}
	ts := seriesOf(samples, 8)
	if got := strings.Join(ts.ops, ","); got != "LOOKUP,READ" {
		t.Fatalf("ops = %s, want LOOKUP,READ (busiest first, idle ops left out)", got)
	}
	if len(ts.at) != 4 || ts.at[3] != 4 {
		t.Fatalf("interval ends = %v, want 1..4 s", ts.at)
	}
	for j, r := range ts.rate["LOOKUP"] {
		if math.Abs(r-100) > 1e-9 {
			t.Errorf("LOOKUP rate[%d] = %v, want 100/s", j, r)
		}
		if m := ts.meanS["LOOKUP"][j]; math.Abs(m-10e-6) > 1e-12 {
			t.Errorf("LOOKUP mean[%d] = %v, want 10µs", j, m)
		}
	}
	if r := ts.rate["READ"]; r[0] != 0 || r[1] != 10 || !math.IsNaN(ts.meanS["READ"][0]) {
		t.Errorf("READ rate %v mean %v: want 0 then 10/s, no mean while idle", r, ts.meanS["READ"])
	}
	var b bytes.Buffer
	if err := writeTopSVG(&b, ts, "test"); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&b)
	polylines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 4 {
		t.Errorf("%d polylines, want 4 (rate and latency for each of 2 ops)", polylines)
	}
	var empty bytes.Buffer
	writeTopSVG(&empty, seriesOf(samples[:1], 8), "empty")
	if !strings.Contains(empty.String(), "no requests") {
		t.Errorf("a run with one scrape should say there is nothing to draw: %s", empty.String())
	}
}
