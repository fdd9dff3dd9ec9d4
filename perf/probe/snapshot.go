package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// The histogram layout, shared with bpf/fuse.c (hist_slot): log-linear
// buckets of nanoseconds. Each power of two [2^e, 2^(e+1)) is split into
// histSub equal sub-buckets, so a bucket is at most 1/histSub (6.25 %) of
// its lower bound wide, and a quantile read from it is within that of the
// exact value; below 2·histSub ns every nanosecond has its own bucket. The
// last bucket also takes everything from 2^histMaxExp ns (~137 s) up.
const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histMaxExp  = 37
	histSlots   = (histMaxExp - histSubBits + 1) * histSub
	maxOps      = 64
	maxSyscalls = 512
)

// Hist is a log-linear latency histogram: Hist[i] counts samples that took
// SlotBounds(i) nanoseconds.
type Hist [histSlots]uint64

// slotOf is the bucket of v ns (bpf/fuse.c hist_slot, in Go).
func slotOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1
	if e >= histMaxExp {
		return histSlots - 1
	}
	return (e-histSubBits+1)*histSub + int((v>>(e-histSubBits))&(histSub-1))
}

// SlotBounds is bucket i's range [lo, hi) in nanoseconds. The last bucket's
// hi is its nominal bound; it also holds everything above.
func SlotBounds(i int) (lo, hi time.Duration) {
	if i < histSub {
		return time.Duration(i), time.Duration(i + 1)
	}
	e := i/histSub + histSubBits - 1
	sub := uint64(i % histSub)
	shift := e - histSubBits
	return time.Duration((histSub + sub) << shift), time.Duration((histSub + sub + 1) << shift)
}

// Total is the number of samples.
func (h *Hist) Total() uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile (0 < q ≤ 1): the bucket holding the
// sample of rank ⌈q·total⌉, interpolated linearly inside it. It returns
// the bucket's bounds too, so a reader sees how exact the estimate is;
// all zero with no samples.
func (h *Hist) Quantile(q float64) (v, lo, hi time.Duration) {
	total := h.Total()
	if total == 0 {
		return 0, 0, 0
	}
	rank := max(1, uint64(math.Ceil(q*float64(total))))
	var seen uint64
	for i, c := range h {
		if c == 0 {
			continue
		}
		if seen+c >= rank {
			lo, hi = SlotBounds(i)
			// The k-th of c samples spread evenly over [lo, hi) sits at
			// the middle of its 1/c share.
			frac := (float64(rank-seen) - 0.5) / float64(c)
			return lo + time.Duration(frac*float64(hi-lo)), lo, hi
		}
		seen += c
	}
	panic("unreachable: rank ≤ total")
}

// Add counts one sample of d (for tests and for merging).
func (h *Hist) Add(d time.Duration) {
	h[slotOf(uint64(max(d, 0)))]++
}

// HistBucket is one non-empty bucket in JSON: samples in [lo_ns, hi_ns).
type HistBucket struct {
	Lo    int64  `json:"lo_ns"`
	Hi    int64  `json:"hi_ns"`
	Count uint64 `json:"count"`
}

// MarshalJSON writes the non-empty buckets, in order, with their bounds.
func (h *Hist) MarshalJSON() ([]byte, error) {
	out := []HistBucket{}
	for i, c := range h {
		if c != 0 {
			lo, hi := SlotBounds(i)
			out = append(out, HistBucket{int64(lo), int64(hi), c})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON wrote; a bucket whose bounds are
// not one of this layout's is an error.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var in []HistBucket
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*h = Hist{}
	for _, bk := range in {
		i := slotOf(uint64(max(bk.Lo, 0)))
		if lo, hi := SlotBounds(i); int64(lo) != bk.Lo || int64(hi) != bk.Hi {
			return fmt.Errorf("probe: histogram bucket [%d, %d) ns is not in this layout (%d sub-buckets per power of two)", bk.Lo, bk.Hi, histSub)
		}
		h[i] += bk.Count
	}
	return nil
}

// Percentile is one quantile estimate with the bounds of the histogram
// bucket it came from: the exact value lies in [Lo, Hi).
type Percentile struct {
	Value time.Duration `json:"ns"`
	Lo    time.Duration `json:"lo_ns"`
	Hi    time.Duration `json:"hi_ns"`
}

// Stats is what the probe measured for one FUSE opcode or one syscall.
// The JSON form is documented in docs/probe.md.
type Stats struct {
	Code   uint32        `json:"code"`
	Name   string        `json:"name"`
	Count  uint64        `json:"count"`
	Errors uint64        `json:"errors"`
	Mean   time.Duration `json:"mean_ns"`
	P50    Percentile    `json:"p50"`
	P90    Percentile    `json:"p90"`
	P99    Percentile    `json:"p99"`
	Max    time.Duration `json:"max_ns"`
	Hist   Hist          `json:"hist"`
}

// quantile is the histogram's estimate, never above the exact maximum the
// probe recorded (interpolation inside the last bucket can overshoot it).
func (r *Stats) quantile(q float64) Percentile {
	v, lo, hi := r.Hist.Quantile(q)
	if r.Max > 0 && v > r.Max {
		v = r.Max
	}
	return Percentile{v, lo, hi}
}

// setPercentiles computes P50, P90 and P99 from Hist.
func (r *Stats) setPercentiles() {
	r.P50, r.P90, r.P99 = r.quantile(0.50), r.quantile(0.90), r.quantile(0.99)
}

// Snapshot is the probe's maps read at one moment.
type Snapshot struct {
	Mode     Mode    `json:"mode"`
	Fuse     []Stats `json:"fuse"`
	P9       []Stats `json:"p9,omitempty"` // 9P requests by T-message (Mode9P)
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
	if p.coll.Programs["p9_req_rtp"] != nil {
		if s.P9, err = readStats(p.coll.Maps["p9_hist"], p.coll.Maps["p9_stats"], maxOps, P9Name); err != nil {
			return nil, err
		}
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
		r.setPercentiles()
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
		fmt.Fprintf(w, "%s\n%-16s %9s %7s %9s %-27s %-27s %-27s %9s\n", title, "", "count", "errors", "mean", "p50 [bucket)", "p90 [bucket)", "p99 [bucket)", "max")
		for _, r := range rows {
			fmt.Fprintf(w, "%-16s %9d %7d %9s %-27s %-27s %-27s %9s\n", r.Name, r.Count, r.Errors,
				FormatDuration(r.Mean), fmtPct(r.P50), fmtPct(r.P90), fmtPct(r.P99), FormatDuration(r.Max))
		}
		for _, r := range rows {
			fmt.Fprintf(w, "\n@%s (ns):\n", r.Name)
			r.Hist.WriteASCII(w)
		}
		fmt.Fprintln(w)
	}
	if s.Mode == Mode9P {
		section("9P request round trips (kernel v9fs client, 9p tracepoints)", s.P9)
	} else {
		section(fmt.Sprintf("FUSE request round trips (kernel, %s mode)", s.Mode), s.Fuse)
	}
	if s.Syscalls != nil {
		section("daemon system calls", s.Syscalls)
	}
}

// WriteASCII draws h like bpftrace's hist(): one line per power of two
// (its sub-buckets summed) from the first to the last non-empty one, with
// a bar scaled to the largest.
func (h *Hist) WriteASCII(w io.Writer) {
	var pow [64]uint64 // pow[e] counts [2^e, 2^(e+1)); pow[0] also 0 ns
	for i, c := range h {
		lo, _ := SlotBounds(i)
		e := 0
		if lo > 0 {
			e = bits.Len64(uint64(lo)) - 1
		}
		pow[e] += c
	}
	first, last := -1, -1
	var peak uint64
	for i, c := range pow {
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
		bar := int(pow[i] * width / peak)
		fmt.Fprintf(w, "[%s, %s)%*s %8d |%-*s|\n", fmtPow(lo), fmtPow(hi),
			max(0, 14-len(fmtPow(lo))-len(fmtPow(hi))), "", pow[i], width, strings.Repeat("@", bar))
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

// fmtPct prints a percentile and the bucket it came from: "12.3µs [12.0µs,12.8µs)".
func fmtPct(p Percentile) string {
	return fmt.Sprintf("%s [%s,%s)", FormatDuration(p.Value), FormatDuration(p.Lo), FormatDuration(p.Hi))
}

// FormatDuration prints d in the largest unit it reaches (s, ms, µs,
// ns): "1.23s", "4.56ms", "7.8µs", "90ns". fastfsd top uses it too.
func FormatDuration(d time.Duration) string {
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
				r.setPercentiles()
			}
			out = append(out, r)
		}
		return out
	}
	return &Snapshot{Mode: s.Mode, Fuse: sub(s.Fuse, earlier.Fuse), P9: sub(s.P9, earlier.P9), Syscalls: sub(s.Syscalls, earlier.Syscalls)}
}
