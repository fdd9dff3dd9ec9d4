package bench

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fioJSON is a one-job fio report as the guest prints it.
func fioJSON(bs, engine string, direct bool, value float64) []byte {
	d := "0"
	if direct {
		d = "1"
	}
	return fmt.Appendf(nil, `{"jobs":[{"jobname":"j","error":0,"job options":{"bs":%q,"ioengine":%q,"direct":%q},"read":{"bw_bytes":%g,"iops":%g,"total_ios":100},"write":{"total_ios":0}}]}`,
		bs, engine, d, value*(1<<20), value)
}

// TestGuestTableIOMode pins that a row whose subjects moved data
// differently (one mount refused O_DIRECT, so fio.sh ran it buffered) is
// shown as MIXED with the buffered figures marked, never under one label,
// and that the medians and ratios are those of the rounds given.
func TestGuestTableIOMode(t *testing.T) {
	var tb GuestTable
	add := func(name string, raw []byte) {
		t.Helper()
		if err := tb.Add(name, raw); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []float64{100, 300, 200} { // median 200
		add("virtio-9p/seqread", fioJSON("1M", "psync", true, v))
		add("fastfsd/seqread", fioJSON("1M", "psync", true, 2*v))
		add("virtio-9p/randread", fioJSON("4k", "psync", true, v))
		add("fastfsd/randread", fioJSON("4k", "psync", false, 3*v))
		add("virtio-9p/create", fioJSON("4k", "filecreate", false, v))
		add("fastfsd/create", fioJSON("4k", "filecreate", false, v/2))
	}
	// One round of one subject buffered makes its row MIXED too.
	add("virtio-9p/seqwrite", fioJSON("1M", "psync", true, 10))
	add("virtio-9p/seqwrite", fioJSON("1M", "psync", false, 10))
	add("fastfsd/seqwrite", fioJSON("1M", "psync", true, 10))
	tb.Baseline = "virtio-9p"

	for job, want := range map[string]string{"seqread": ioDirect, "randread": ioMixed, "create": ioNone, "seqwrite": ioMixed} {
		if got := tb.ioMode(job); got != want {
			t.Errorf("ioMode(%s) = %s, want %s", job, got, want)
		}
	}
	var out bytes.Buffer
	tb.WriteText(&out)
	rows := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = l
		}
	}
	if r := rows["seqread"]; !strings.Contains(r, "O_DIRECT") || !strings.Contains(r, "400.0 ( 2.00x)") || strings.Contains(r, "(b)") {
		t.Errorf("seqread row %q: want O_DIRECT, fastfsd's median 400.0 at 2.00x, nothing marked buffered", r)
	}
	if r := rows["randread"]; !strings.Contains(r, ioMixed) || !strings.Contains(r, "600.0(b) ( 3.00x)") {
		t.Errorf("randread row %q: want MIXED with fastfsd's buffered median marked (b)", r)
	}
	if !strings.Contains(out.String(), "MIXED: in these rows") {
		t.Errorf("no MIXED footnote in:\n%s", out.String())
	}
	if r := rows["create"]; !strings.Contains(r, "files/s") || !strings.Contains(r, "100.0 ( 0.50x)") {
		t.Errorf("create row %q: want files/s and fastfsd at 0.50x", r)
	}

	res := tb.Result()
	var names []string
	for _, r := range res.Rows {
		names = append(names, r.Job)
	}
	if got, want := strings.Join(names, ","), "seqread-direct,seqwrite-MIXED,randread-MIXED,create"; got != want {
		t.Errorf("Result rows %s, want %s", got, want)
	}
	if r := res.Rows[0]; r.Median["fastfsd"] != 400 || r.Ratio["fastfsd"] != 2 || len(r.Samples["fastfsd"]) != 3 {
		t.Errorf("seqread: median %v ratio %v samples %v, want 400, 2 and 3 samples", r.Median["fastfsd"], r.Ratio["fastfsd"], r.Samples["fastfsd"])
	}
}

// fioOps is a one-job fio report with the given read and write total_ios.
func fioOps(bs, engine string, reads, writes uint64) []byte {
	return fmt.Appendf(nil, `{"jobs":[{"jobname":"j","error":0,"job options":{"bs":%q,"ioengine":%q,"direct":"1"},"read":{"iops":1000,"total_ios":%d},"write":{"iops":1000,"total_ios":%d}}]}`,
		bs, engine, reads, writes)
}

// TestGuestTableCPU pins the back-end CPU table: CPU time over a job
// divided by fio's read+write total_ios, the median over rounds of each
// round's own ratio (not the CPU of the round whose fio figure is the
// median), the ratio to the baseline, and "—" (never 0) for a subject
// that was not measured.
func TestGuestTableCPU(t *testing.T) {
	var tb GuestTable
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// randread: fastfsd 1000 ops per round; CPU 30, 10, 20 ms → 30, 10,
	// 20 µs/op, median 20. c-virtiofsd: 40 µs/op every round.
	for _, ms := range []time.Duration{30, 10, 20} {
		must(tb.AddWithCPU("fastfsd/randread", fioOps("4k", "psync", 1000, 0), ms*time.Millisecond))
		must(tb.AddWithCPU("c-virtiofsd/randread", fioOps("4k", "psync", 1000, 0), 40*time.Millisecond))
		must(tb.Add("virtio-9p/randread", fioOps("4k", "psync", 1000, 0)))
	}
	// seqwrite counts writes; a mixed job would count both.
	must(tb.AddWithCPU("fastfsd/seqwrite", fioOps("1M", "psync", 100, 400), 5*time.Millisecond))
	must(tb.AddWithCPU("c-virtiofsd/seqwrite", fioOps("1M", "psync", 0, 500), 20*time.Millisecond))
	// create: one I/O per file (fio's filecreate engine).
	must(tb.AddWithCPU("fastfsd/create", fioOps("4k", "filecreate", 0, 2000), 100*time.Millisecond))

	if g := tb.Samples["fastfsd"]["seqwrite"][0]; g.Ops != 500 {
		t.Errorf("seqwrite ops = %d, want read+write total_ios 500", g.Ops)
	}
	if d, ok := tb.MedianCPUPerOp("fastfsd", "randread"); !ok || d != 20*time.Microsecond {
		t.Errorf("fastfsd randread CPU/op = %v %v, want the median 20µs", d, ok)
	}
	if _, ok := tb.MedianCPUPerOp("virtio-9p", "randread"); ok {
		t.Error("virtio-9p has a CPU figure though none was measured")
	}
	var out bytes.Buffer
	tb.WriteCPU(&out, "c-virtiofsd")
	rows := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = l
		}
	}
	for job, want := range map[string][]string{
		"randread": {"20.0 ( 0.50x)", "40.0", "—"},
		"seqwrite": {"10.0 ( 0.25x)", "40.0", "—"},
		"create":   {"50.0", "—"},
	} {
		r := rows[job]
		if !strings.Contains(r, "µs/op") {
			t.Errorf("%s row %q: no µs/op unit", job, r)
		}
		for _, w := range want {
			if !strings.Contains(r, w) {
				t.Errorf("%s row %q: want %q", job, r, w)
			}
		}
	}
	if f := strings.Fields(rows["create"]); len(f) != 2+len(tb.Backends) || f[3] != "—" || f[4] != "—" {
		t.Errorf("create row %q: want fastfsd's 50.0 and — for the two subjects without a figure", rows["create"])
	}
	if !strings.Contains(out.String(), "utime+stime") || !strings.Contains(out.String(), "layout is not included") {
		t.Errorf("legend does not say what the CPU covers:\n%s", out.String())
	}
}
