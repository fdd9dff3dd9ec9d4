package main

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/vmtest"
	"github.com/fastfsd/fastfsd/perf/bench"
)

func fioLine(reads uint64) string {
	return `{"jobs":[{"jobname":"j","error":0,"job options":{"bs":"4k","ioengine":"psync"},"read":{"iops":1,"total_ios":` +
		strconv.FormatUint(reads, 10) + `},"write":{"total_ios":0}}]}`
}

// TestCPUMeter pins how fastfs-run charges a back-end's CPU to a guest
// job's timed phase: the reading at the first FASTFS-TIMED line after
// the job's FASTFS-JOB line (fio's file layout comes before it) is
// subtracted from the one at its FASTFS-FIO line, for the PID vmtest
// gives that row's share;
// rows served by no host process of their own (virtio-9p, fastfsd-9p)
// are never read; a result without a start marker, or whose back-end
// could not be read, gets no figure rather than a wrong one.
func TestCPUMeter(t *testing.T) {
	shares, targets, err := compareSet(t.TempDir(), "/bin/fastfsd", "/bin/gofuse", 1)
	if err != nil {
		t.Fatal(err)
	}
	m := newCPUMeter(shares, targets)
	for _, l := range []string{"fastfsd", "c-virtiofsd", "go-fuse"} {
		if _, ok := m.tagOf[l]; !ok {
			t.Errorf("row %s is not measured", l)
		}
	}
	for _, l := range []string{"virtio-9p", "fastfsd-9p"} {
		if _, ok := m.tagOf[l]; ok {
			t.Errorf("row %s is measured, but its server is no host process of its own", l)
		}
	}
	pids := map[string]int{"fastfs": 100, "cvfs": 200, "gofuse": 300}
	cpu := map[int]time.Duration{100: time.Second, 200: 5 * time.Second}
	var reads []int
	m.read = func(pid int) (time.Duration, error) {
		reads = append(reads, pid)
		if pid == 300 {
			return 0, errors.New("gone")
		}
		return cpu[pid], nil
	}
	fio := func(name string, ops uint64) vmtest.FIO {
		return vmtest.FIO{Name: name, JSON: []byte(fioLine(ops))}
	}
	var fios []vmtest.FIO
	// step is one job: fio lays out its files (layout CPU, not the
	// job's), both job threads report FASTFS-TIMED, the job runs.
	step := func(name string, ops uint64, layout, during map[int]time.Duration) {
		m.line("[  12.3] FASTFS-JOB name="+name, pids)
		for p, d := range layout {
			cpu[p] += d
		}
		m.line("FASTFS-TIMED name="+name, pids)
		for p, d := range during {
			cpu[p] += d / 2
		}
		m.line("FASTFS-TIMED name="+name, pids) // the second job thread's
		for p, d := range during {
			cpu[p] += d - d/2
		}
		m.line("FASTFS-FIO name="+name+" "+fioLine(ops), pids)
		fios = append(fios, fio(name, ops))
	}
	step("fastfsd/randread", 1000, map[int]time.Duration{100: 7 * time.Second}, map[int]time.Duration{100: 30 * time.Millisecond, 200: time.Second})
	step("c-virtiofsd/randread", 1000, map[int]time.Duration{200: 3 * time.Second}, map[int]time.Duration{200: 50 * time.Millisecond, 100: time.Second})
	step("virtio-9p/randread", 1000, nil, nil)
	step("go-fuse/randread", 1000, nil, nil)
	// A child of the back-end exited during the job, taking its CPU time.
	step("c-virtiofsd/seqread", 10, nil, map[int]time.Duration{200: -time.Second})
	// A FASTFS-TIMED line with no FASTFS-JOB before it starts nothing.
	m.line("FASTFS-TIMED name=fastfsd/seqread", pids)
	m.line("FASTFS-FIO name=fastfsd/seqread "+fioLine(10), pids)
	fios = append(fios, fio("fastfsd/seqread", 10))
	// A result line without its start marker (an older fio.sh).
	m.line("FASTFS-FIO name=fastfsd/stat "+fioLine(10), pids)
	fios = append(fios, fio("fastfsd/stat", 10))
	for _, p := range reads {
		if p != 100 && p != 200 && p != 300 {
			t.Errorf("read PID %d", p)
		}
	}
	var tb bench.GuestTable
	if err := m.fill(&tb, fios); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		row, job string
		want     time.Duration // 0: no figure
	}{
		{"fastfsd", "randread", 30 * time.Microsecond},
		{"c-virtiofsd", "randread", 50 * time.Microsecond},
		{"virtio-9p", "randread", 0},
		{"go-fuse", "randread", 0},
		{"fastfsd", "stat", 0},
		{"c-virtiofsd", "seqread", 0},
		{"fastfsd", "seqread", 0},
	} {
		d, ok := tb.MedianCPUPerOp(c.row, c.job)
		if ok != (c.want != 0) || d != c.want {
			t.Errorf("%s/%s: CPU/op %v (measured %v), want %v", c.row, c.job, d, ok, c.want)
		}
	}
	if len(m.errs) != 5 { // go-fuse start and end, the shrunk tree, the two without markers
		t.Errorf("errors %q: want 5", m.errs)
	}

	// A reading with no report (or a report with no reading) is an
	// error, not a figure moved to another round.
	m.got["fastfsd/randread"] = append(m.got["fastfsd/randread"], time.Second)
	if err := m.fill(&bench.GuestTable{}, fios); err == nil {
		t.Error("fill took 2 readings for 1 fastfsd/randread report")
	}
	m.got["fastfsd/randread"] = nil
	if err := m.fill(&bench.GuestTable{}, fios); err == nil {
		t.Error("fill took a fastfsd/randread report with no reading")
	}
}
