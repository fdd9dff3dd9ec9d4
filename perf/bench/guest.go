package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// GuestFigure is one fio job's result from inside a guest: its figure and
// completion-latency percentiles.
type GuestFigure struct {
	Job     string        `json:"job"`
	Unit    string        `json:"unit"`
	Value   float64       `json:"value"`
	LatP50  time.Duration `json:"lat_p50_ns"`
	LatP99  time.Duration `json:"lat_p99_ns"`
	LatMean time.Duration `json:"lat_mean_ns"`
	Direct  bool          `json:"direct"`
	// Ops is what fio counted: read plus write total_ios (for the
	// filecreate and filestat engines one I/O is one file).
	Ops uint64 `json:"ops"`
	// BackendCPU is the host back-end's CPU time (utime+stime of its
	// whole process tree) over this job, when CPUMeasured; a back-end
	// that is not a separate host process (QEMU's virtio-9p, a server
	// inside the guest) is not measured.
	BackendCPU  time.Duration `json:"backend_cpu_ns"`
	CPUMeasured bool          `json:"backend_cpu_measured"`
	Creates     bool          `json:"-"`
	Original    string        `json:"-"`
}

type fioDir struct {
	BwBytes float64 `json:"bw_bytes"`
	IOPS    float64 `json:"iops"`
	TotalIO uint64  `json:"total_ios"`
	ClatNs  struct {
		Mean       float64            `json:"mean"`
		Percentile map[string]float64 `json:"percentile"`
	} `json:"clat_ns"`
	LatNs struct {
		Mean float64 `json:"mean"`
	} `json:"lat_ns"`
}

type fioFull struct {
	Jobs []struct {
		JobName string         `json:"jobname"`
		Error   int            `json:"error"`
		Options map[string]any `json:"job options"`
		Read    fioDir         `json:"read"`
		Write   fioDir         `json:"write"`
	} `json:"jobs"`
}

// ParseGuestFIO turns one fio JSON report into a figure. Jobs that move
// 1 MiB blocks report MiB/s, file create/stat jobs files/s, the rest IOPS.
func ParseGuestFIO(job string, raw []byte) (GuestFigure, error) {
	var r fioFull
	if err := json.Unmarshal(raw, &r); err != nil {
		return GuestFigure{}, fmt.Errorf("fio %s: %w", job, err)
	}
	if len(r.Jobs) == 0 {
		return GuestFigure{}, fmt.Errorf("fio %s: no jobs", job)
	}
	j := r.Jobs[0]
	if j.Error != 0 {
		return GuestFigure{}, fmt.Errorf("fio %s: error %d", job, j.Error)
	}
	d := j.Read
	if j.Write.TotalIO > j.Read.TotalIO {
		d = j.Write
	}
	g := GuestFigure{Job: job, Unit: "IOPS", Value: d.IOPS,
		LatMean: time.Duration(d.ClatNs.Mean),
		LatP50:  time.Duration(d.ClatNs.Percentile["50.000000"]),
		LatP99:  time.Duration(d.ClatNs.Percentile["99.000000"]),
		Ops:     j.Read.TotalIO + j.Write.TotalIO}
	if bs, _ := j.Options["bs"].(string); bs == "1M" {
		g.Unit, g.Value = "MiB/s", d.BwBytes/(1<<20)
	}
	if eng, _ := j.Options["ioengine"].(string); eng == "filecreate" || eng == "filestat" {
		g.Unit = "files/s"
	}
	if v, _ := j.Options["direct"].(string); v == "1" {
		g.Direct = true
	}
	return g, nil
}

// GuestTable is figures per backend from one guest boot. A job run in
// several rounds keeps every sample; Figures holds the median one.
type GuestTable struct {
	Baseline string                              `json:"baseline"`
	Backends []string                            `json:"backends"`
	Figures  map[string]map[string]GuestFigure   `json:"figures"` // backend → job → median figure
	Samples  map[string]map[string][]GuestFigure `json:"samples"` // backend → job → every round's figure
}

// CPUPerOp is the back-end's CPU time per operation of the job; ok is
// false when it was not measured or fio counted no operations.
func (g GuestFigure) CPUPerOp() (d time.Duration, ok bool) {
	if !g.CPUMeasured || g.Ops == 0 {
		return 0, false
	}
	return g.BackendCPU / time.Duration(g.Ops), true
}

// Add records a FASTFS-FIO line named "backend/job".
func (t *GuestTable) Add(name string, raw []byte) error {
	return t.add(name, raw, 0, false)
}

// AddWithCPU records a FASTFS-FIO line named "backend/job" and the
// back-end's CPU time measured over that job.
func (t *GuestTable) AddWithCPU(name string, raw []byte, cpu time.Duration) error {
	return t.add(name, raw, cpu, true)
}

func (t *GuestTable) add(name string, raw []byte, cpu time.Duration, measured bool) error {
	backend, job, ok := strings.Cut(name, "/")
	if !ok {
		return fmt.Errorf("fio result name %q: want backend/job", name)
	}
	g, err := ParseGuestFIO(job, raw)
	if err != nil {
		return err
	}
	g.BackendCPU, g.CPUMeasured = cpu, measured
	if t.Figures == nil {
		t.Figures = map[string]map[string]GuestFigure{}
	}
	if t.Figures[backend] == nil {
		t.Figures[backend] = map[string]GuestFigure{}
		found := false
		for _, b := range t.Backends {
			found = found || b == backend
		}
		if !found {
			t.Backends = append(t.Backends, backend)
		}
	}
	if t.Samples == nil {
		t.Samples = map[string]map[string][]GuestFigure{}
	}
	if t.Samples[backend] == nil {
		t.Samples[backend] = map[string][]GuestFigure{}
	}
	all := append(t.Samples[backend][job], g)
	t.Samples[backend][job] = all
	// The median round (the lower middle one of an even count).
	sorted := append([]GuestFigure(nil), all...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Value < sorted[j].Value })
	t.Figures[backend][job] = sorted[(len(sorted)-1)/2]
	return nil
}

// WriteText prints one row per job: each backend's figure and, for all but
// the baseline, its ratio to the baseline in the same boot.
func (t *GuestTable) WriteText(w io.Writer) {
	names := t.jobs()
	fmt.Fprintf(w, "%-10s %-8s %-8s", "job", "unit", "I/O")
	for _, b := range t.Backends {
		fmt.Fprintf(w, " %24s", b)
	}
	fmt.Fprintln(w)
	anyMixed := false
	for _, j := range names {
		unit, io := "", t.ioMode(j)
		for _, b := range t.Backends {
			if g, ok := t.Figures[b][j]; ok {
				unit = g.Unit
			}
		}
		mixed := io == ioMixed
		anyMixed = anyMixed || mixed
		fmt.Fprintf(w, "%-10s %-8s %-8s", j, unit, io)
		base, hasBase := t.Figures[t.Baseline][j]
		for _, b := range t.Backends {
			g, ok := t.Figures[b][j]
			fig := ""
			if ok {
				fig = fmtFig(g.Value)
				if mixed && !g.Direct {
					fig += "(b)"
				}
			}
			switch {
			case !ok:
				fmt.Fprintf(w, " %24s", "-")
			case b == t.Baseline || !hasBase || base.Value == 0:
				fmt.Fprintf(w, " %24s", fig)
			default:
				fmt.Fprintf(w, " %15s (%5.2fx)", fig, g.Value/base.Value)
			}
		}
		fmt.Fprintln(w)
	}
	if anyMixed {
		fmt.Fprintf(w, "MIXED: in these rows the figures marked (b) ran buffered (their mount refused O_DIRECT) and the others O_DIRECT: not comparable\n")
	}
	if t.Baseline != "" {
		fmt.Fprintf(w, "(x) = ratio to %s in the same boot; medians of %d alternated round(s); under TCG compare ratios only, never absolute speeds\n", t.Baseline, t.rounds())
	}
}

// MedianCPUPerOp is the median over rounds of backend's CPU time per
// operation of job, each round's own ratio (not the CPU of the round
// whose figure is the median); ok is false if no round was measured.
func (t *GuestTable) MedianCPUPerOp(backend, job string) (time.Duration, bool) {
	var v []time.Duration
	for _, g := range t.Samples[backend][job] {
		if d, ok := g.CPUPerOp(); ok {
			v = append(v, d)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[(len(v)-1)/2], true
}

// WriteCPU prints, for every job and backend, the back-end's host CPU
// time per operation (µs/op, median over rounds), with the ratio to
// baseline's when baseline ("" for none) has a figure for that job.
// A backend that was not measured prints "—".
func (t *GuestTable) WriteCPU(w io.Writer, baseline string) {
	fmt.Fprintf(w, "%-10s %-10s", "job", "unit")
	for _, b := range t.Backends {
		fmt.Fprintf(w, " %24s", b)
	}
	fmt.Fprintln(w)
	for _, j := range t.jobs() {
		fmt.Fprintf(w, "%-10s %-10s", j, "µs/op") // fmt widths count runes
		base, hasBase := t.MedianCPUPerOp(baseline, j)
		for _, b := range t.Backends {
			d, ok := t.MedianCPUPerOp(b, j)
			fig := fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond))
			switch {
			case !ok:
				fmt.Fprintf(w, " %24s", "—")
			case b == baseline || !hasBase || base == 0:
				fmt.Fprintf(w, " %24s", fig)
			default:
				fmt.Fprintf(w, " %15s (%5.2fx)", fig, float64(d)/float64(base))
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, `back-end CPU = utime+stime of the back-end's whole host process tree (every
  thread of it and of its children: fastfsd's sandboxed child, the C virtiofsd's
  sandbox child) over fio's timed phase: read from /proc when fio's exec_prerun
  line (after it laid out its files) and fio.sh's line after fio exited reach the
  host, divided by the job's operations (fio's read+write total_ios; create and
  stat: one per file, which is tens of FUSE requests with no client caching).
  File layout is not included; fio's exit is, and whatever the back-end spends
  between requests (polling, hand-offs, being woken). /proc counts 10 ms ticks.
  Median over %d round(s) of each round's own figure. — = not measured:
  virtio-9p's server is QEMU itself (its CPU cannot be told from the vCPUs'),
  fastfsd-9p runs inside the guest.
`, t.rounds())
	if baseline != "" {
		fmt.Fprintf(w, "(x) = ratio to %s's CPU per operation in the same boot (below 1: less CPU)\n", baseline)
	}
}

// jobs lists the jobs in the table: the suite's order, then any other
// in name order.
func (t *GuestTable) jobs() []string {
	jobs := map[string]bool{}
	for _, m := range t.Figures {
		for j := range m {
			jobs[j] = true
		}
	}
	var names []string
	for _, j := range []string{"seqread", "seqwrite", "randread", "create", "stat"} {
		if jobs[j] {
			names = append(names, j)
			delete(jobs, j)
		}
	}
	var rest []string
	for j := range jobs {
		rest = append(rest, j)
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// I/O modes of a row, as WriteText prints them.
const (
	ioDirect   = "O_DIRECT"
	ioBuffered = "buffered"
	ioMixed    = "MIXED"
	ioNone     = "-" // file create/stat: no data moved
)

// ioMode says how job's data moved for every backend that ran it: all
// O_DIRECT, all buffered, or MIXED (fio.sh falls back to buffered I/O
// on a mount that refuses O_DIRECT, so one subject can run buffered
// while the others run direct; such a row compares nothing).
func (t *GuestTable) ioMode(job string) string {
	direct, buffered := 0, 0
	for _, b := range t.Backends {
		g, ok := t.Figures[b][job]
		switch {
		case !ok:
		case g.Unit == "files/s":
			return ioNone
		case g.Direct:
			direct++
		default:
			buffered++
		}
		// Every round counts: a mount that took O_DIRECT in one round
		// and refused it in another mixes within one median.
		for _, s := range t.Samples[b][job] {
			if s.Direct != g.Direct {
				return ioMixed
			}
		}
	}
	switch {
	case direct > 0 && buffered > 0:
		return ioMixed
	case direct > 0:
		return ioDirect
	}
	return ioBuffered
}

// rounds is the most samples any figure has.
func (t *GuestTable) rounds() int {
	n := 0
	for _, m := range t.Samples {
		for _, v := range m {
			n = max(n, len(v))
		}
	}
	return n
}

// WriteLatency prints each backend's completion latency (fio clat) per job.
func (t *GuestTable) WriteLatency(w io.Writer) {
	fmt.Fprintf(w, "%-10s %-14s %10s %10s %10s\n", "job", "backend", "mean", "p50", "p99")
	for _, b := range t.Backends {
		var jobs []string
		for j := range t.Figures[b] {
			jobs = append(jobs, j)
		}
		sort.Strings(jobs)
		for _, j := range jobs {
			g := t.Figures[b][j]
			if g.LatMean == 0 {
				continue
			}
			fmt.Fprintf(w, "%-10s %-14s %10s %10s %10s\n", j, b, g.LatMean.Round(time.Microsecond), g.LatP50.Round(time.Microsecond), g.LatP99.Round(time.Microsecond))
		}
	}
}

// Result converts the table to a Result (baseline first), for the same
// text, JSON and SVG output as the host benchmark.
func (t *GuestTable) Result() *Result {
	r := &Result{Date: time.Now().UTC(), Baseline: t.Baseline}
	r.Subjects = append(r.Subjects, t.Baseline)
	for _, b := range t.Backends {
		if b != t.Baseline {
			r.Subjects = append(r.Subjects, b)
		}
	}
	jobs := map[string]string{}
	for _, m := range t.Figures {
		for j, g := range m {
			jobs[j] = g.Unit
		}
	}
	for _, j := range []string{"seqread", "seqwrite", "randread", "create", "stat"} {
		unit, ok := jobs[j]
		if !ok {
			continue
		}
		// The row's name says how its data moved, as the host suite's
		// names do: seqread-direct, seqread-buffered or seqread-MIXED.
		name := j
		switch mode := t.ioMode(j); mode {
		case ioDirect:
			name += "-direct"
		case ioBuffered:
			name += "-buffered"
		case ioMixed:
			name += "-MIXED"
		}
		row := Row{Job: name, Unit: unit, Samples: map[string][]float64{}, Median: map[string]float64{}, Ratio: map[string]float64{}}
		for _, b := range r.Subjects {
			if g, ok := t.Figures[b][j]; ok {
				for _, x := range t.Samples[b][j] {
					row.Samples[b] = append(row.Samples[b], x.Value)
				}
				row.Median[b] = g.Value
			}
		}
		if base := row.Median[t.Baseline]; base > 0 {
			for b, v := range row.Median {
				row.Ratio[b] = v / base
			}
		}
		r.Rows = append(r.Rows, row)
	}
	return r
}
