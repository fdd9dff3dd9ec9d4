package bench

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
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
