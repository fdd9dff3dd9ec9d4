package probe

import (
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

const (
	histSlots   = 64
	maxOps      = 64
	maxSyscalls = 512
)

// Hist is a log2 latency histogram: Hist[i] counts samples that took
// [2^i, 2^(i+1)) nanoseconds (Hist[0] also counts 0 ns).
type Hist [histSlots]uint64

// Total is the number of samples.
func (h *Hist) Total() uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile (0 < q ≤ 1), interpolating linearly
// inside the log2 bucket that holds it; 0 with no samples.
func (h *Hist) Quantile(q float64) time.Duration {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, c := range h {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo := float64(uint64(1) << i)
			if i == 0 {
				lo = 0
			}
			hi := float64(uint64(1) << (i + 1))
			frac := (rank - seen) / float64(c)
			return time.Duration(lo + frac*(hi-lo))
		}
		seen += float64(c)
	}
	return time.Duration(1 << 62) // unreachable: rank ≤ total
}

// Add counts one sample of d (for tests and for merging).
func (h *Hist) Add(d time.Duration) {
	v := uint64(d)
	i := 0
	if v > 0 {
		i = bits.Len64(v) - 1
	}
	h[i]++
}

// Stats is what the probe measured for one FUSE opcode or one syscall.
type Stats struct {
	Code   uint32        `json:"code"`
	Name   string        `json:"name"`
	Count  uint64        `json:"count"`
	Errors uint64        `json:"errors"`
	Mean   time.Duration `json:"mean_ns"`
	P50    time.Duration `json:"p50_ns"`
	P90    time.Duration `json:"p90_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
	Hist   Hist          `json:"hist_log2_ns"`
}

// quantile is the histogram's estimate, never above the exact maximum the
// probe recorded (interpolation inside the last bucket can overshoot it).
func (r *Stats) quantile(q float64) time.Duration {
	v := r.Hist.Quantile(q)
	if r.Max > 0 && v > r.Max {
		return r.Max
	}
	return v
}

// Snapshot is the probe's maps read at one moment.
type Snapshot struct {
	Mode     Mode    `json:"mode"`
	Fuse     []Stats `json:"fuse"`
	Syscalls []Stats `json:"syscalls,omitempty"`
}

// Snapshot reads the maps. Counts keep growing while the probe runs; take
// two snapshots and Sub them for an interval.
func (p *Probe) Snapshot() (*Snapshot, error) {
	s := &Snapshot{Mode: p.mode}
	var err error
	if s.Fuse, err = readStats(p.coll.Maps["fuse_hist"], p.coll.Maps["fuse_stats"], maxOps, OpName); err != nil {
		return nil, err
	}
	if p.coll.Programs["sys_enter_rtp"] != nil {
		if s.Syscalls, err = readStats(p.coll.Maps["sys_hist"], p.coll.Maps["sys_stats"], maxSyscalls, SyscallName); err != nil {
			return nil, err
		}
		if s.Syscalls == nil {
			s.Syscalls = []Stats{} // timed, nothing seen: print "no samples"
		}
	}
	return s, nil
}

func readStats(hist, stats *ebpf.Map, n int, name func(uint32) string) ([]Stats, error) {
	var out []Stats
	var st fuseprobeOpStats
	for i := uint32(0); i < uint32(n); i++ {
		if err := stats.Lookup(i, &st); err != nil {
			return nil, fmt.Errorf("probe: read %s[%d]: %w", stats, i, err)
		}
		if st.Count == 0 {
			continue
		}
		r := Stats{Code: i, Name: name(i), Count: st.Count, Errors: st.Errors,
			Mean: time.Duration(st.SumNs / st.Count), Max: time.Duration(st.MaxNs)}
		for slot := uint32(0); slot < histSlots; slot++ {
			if err := hist.Lookup(i*histSlots+slot, &r.Hist[slot]); err != nil {
				return nil, fmt.Errorf("probe: read %s[%d]: %w", hist, i*histSlots+slot, err)
			}
		}
		r.P50, r.P90, r.P99 = r.quantile(0.50), r.quantile(0.90), r.quantile(0.99)
		out = append(out, r)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Count > out[b].Count })
	return out, nil
}

// WriteText prints a table of every opcode and syscall seen, then a
// bpftrace-style ASCII histogram for each.
func (s *Snapshot) WriteText(w io.Writer) {
	section := func(title string, rows []Stats) {
		if len(rows) == 0 {
			fmt.Fprintf(w, "%s: no samples\n", title)
			return
		}
		fmt.Fprintf(w, "%s\n%-20s %10s %8s %10s %10s %10s %10s %10s\n", title, "", "count", "errors", "mean", "p50", "p90", "p99", "max")
		for _, r := range rows {
			fmt.Fprintf(w, "%-20s %10d %8d %10s %10s %10s %10s %10s\n", r.Name, r.Count, r.Errors,
				fmtDur(r.Mean), fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max))
		}
		for _, r := range rows {
			fmt.Fprintf(w, "\n@%s (ns):\n", r.Name)
			r.Hist.WriteASCII(w)
		}
		fmt.Fprintln(w)
	}
	section(fmt.Sprintf("FUSE request round trips (kernel, %s mode)", s.Mode), s.Fuse)
	if s.Syscalls != nil {
		section("daemon system calls", s.Syscalls)
	}
}

// WriteASCII draws h like bpftrace's hist(): one line per bucket from the
// first to the last non-empty one, with a bar scaled to the largest.
func (h *Hist) WriteASCII(w io.Writer) {
	first, last := -1, -1
	var peak uint64
	for i, c := range h {
		if c != 0 {
			if first < 0 {
				first = i
			}
			last = i
			peak = max(peak, c)
		}
	}
	if first < 0 {
		return
	}
	const width = 52
	for i := first; i <= last; i++ {
		lo, hi := uint64(1)<<i, uint64(1)<<(i+1)
		if i == 0 {
			lo = 0
		}
		bar := int(h[i] * width / peak)
		fmt.Fprintf(w, "[%s, %s)%*s %8d |%-*s|\n", fmtPow(lo), fmtPow(hi),
			max(0, 14-len(fmtPow(lo))-len(fmtPow(hi))), "", h[i], width, strings.Repeat("@", bar))
	}
}

func fmtPow(v uint64) string {
	switch {
	case v >= 1<<30 && v%(1<<30) == 0:
		return fmt.Sprintf("%dG", v>>30)
	case v >= 1<<20 && v%(1<<20) == 0:
		return fmt.Sprintf("%dM", v>>20)
	case v >= 1<<10 && v%(1<<10) == 0:
		return fmt.Sprintf("%dK", v>>10)
	}
	return fmt.Sprint(v)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d >= time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	}
	return fmt.Sprintf("%dns", int64(d))
}

// Sub returns s minus an earlier snapshot of the same probe: the samples
// taken in between. Max and the quantiles are of s's whole life for max and
// of the interval for the quantiles.
func (s *Snapshot) Sub(earlier *Snapshot) *Snapshot {
	sub := func(now, then []Stats) []Stats {
		prev := map[uint32]*Stats{}
		for i := range then {
			prev[then[i].Code] = &then[i]
		}
		var out []Stats
		for _, r := range now {
			if p := prev[r.Code]; p != nil {
				sum := uint64(r.Mean)*r.Count - uint64(p.Mean)*p.Count
				r.Count -= p.Count
				r.Errors -= p.Errors
				for i := range r.Hist {
					r.Hist[i] -= p.Hist[i]
				}
				if r.Count == 0 {
					continue
				}
				r.Mean = time.Duration(sum / r.Count)
				r.P50, r.P90, r.P99 = r.quantile(0.50), r.quantile(0.90), r.quantile(0.99)
			}
			out = append(out, r)
		}
		return out
	}
	return &Snapshot{Mode: s.Mode, Fuse: sub(s.Fuse, earlier.Fuse), Syscalls: sub(s.Syscalls, earlier.Syscalls)}
}
