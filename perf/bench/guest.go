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
	Job      string        `json:"job"`
	Unit     string        `json:"unit"`
	Value    float64       `json:"value"`
	LatP50   time.Duration `json:"lat_p50_ns"`
	LatP99   time.Duration `json:"lat_p99_ns"`
	LatMean  time.Duration `json:"lat_mean_ns"`
	Direct   bool          `json:"direct"`
	Creates  bool          `json:"-"`
	Original string        `json:"-"`
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
		LatP99:  time.Duration(d.ClatNs.Percentile["99.000000"])}
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

// Add records a FASTFS-FIO line named "backend/job".
func (t *GuestTable) Add(name string, raw []byte) error {
	backend, job, ok := strings.Cut(name, "/")
	if !ok {
		return fmt.Errorf("fio result name %q: want backend/job", name)
	}
	g, err := ParseGuestFIO(job, raw)
	if err != nil {
		return err
	}
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
	jobs := map[string]bool{}
	for _, m := range t.Figures {
		for j := range m {
			jobs[j] = true
		}
	}
	order := []string{"seqread", "seqwrite", "randread", "create", "stat"}
	var names []string
	for _, j := range order {
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
	names = append(names, rest...)
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
