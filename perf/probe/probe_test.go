package probe

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestHistLayout: every value lands in the bucket whose bounds hold it,
// buckets tile the line without gaps, and none is wider than 1/16 of its
// lower bound (so any estimate inside it is within 6.25 %).
func TestHistLayout(t *testing.T) {
	prevHi := time.Duration(0)
	for i := range histSlots {
		lo, hi := SlotBounds(i)
		if lo != prevHi || hi <= lo {
			t.Fatalf("bucket %d = [%d, %d), previous ended at %d", i, lo, hi, prevHi)
		}
		if lo >= 2*histSub && float64(hi-lo)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d = [%d, %d) is wider than 1/%d of its lower bound", i, lo, hi, histSub)
		}
		prevHi = hi
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := uint64(rng.Int64N(int64(prevHi)))
		if rng.IntN(4) == 0 {
			v = uint64(rng.IntN(1000))
		}
		lo, hi := SlotBounds(slotOf(v))
		if uint64(lo) > v || v >= uint64(hi) {
			t.Fatalf("%d ns in bucket %d = [%d, %d)", v, slotOf(v), lo, hi)
		}
	}
	if slotOf(1<<62) != histSlots-1 {
		t.Fatal("a huge value does not land in the last bucket")
	}
}

// TestHistPercentiles feeds raw samples drawn from several latency shapes
// into a Hist and checks p50/p90/p99 against the exact values computed
// from the sorted samples: within 10 %, and the exact value inside the
// reported bucket bounds.
func TestHistPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := map[string]func() time.Duration{
		// A FUSE round trip: ~20 µs median, long tail.
		"lognormal": func() time.Duration { return time.Duration(20000 * math.Exp(0.8*rng.NormFloat64())) },
		// Cache hits and misses: 90 % near 3 µs, 10 % near 400 µs.
		"bimodal": func() time.Duration {
			if rng.IntN(10) == 0 {
				return time.Duration(400000 + rng.IntN(100000))
			}
			return time.Duration(3000 + rng.IntN(500))
		},
		"uniform 1-100µs": func() time.Duration { return time.Duration(1000 + rng.IntN(99000)) },
		"exponential":     func() time.Duration { return time.Duration(50000 * rng.ExpFloat64()) },
		"tiny (ns)":       func() time.Duration { return time.Duration(rng.IntN(40)) },
	}
	for name, draw := range shapes {
		for _, n := range []int{10, 100, 10000} {
			var h Hist
			samples := make([]time.Duration, n)
			for i := range samples {
				samples[i] = draw()
				h.Add(samples[i])
			}
			slices.Sort(samples)
			if h.Total() != uint64(n) {
				t.Fatalf("%s: Total %d, want %d", name, h.Total(), n)
			}
			for _, q := range []float64{0.5, 0.9, 0.99} {
				exact := samples[int(math.Ceil(q*float64(n)))-1]
				got, lo, hi := h.Quantile(q)
				if exact < lo || exact >= hi {
					t.Errorf("%s n=%d p%g: exact %v outside the reported bucket [%v, %v)", name, n, q*100, exact, lo, hi)
				}
				// Within 10 %, or within the 1 ns resolution for tiny values.
				if diff := math.Abs(float64(got - exact)); diff > 0.10*float64(exact) && diff > 1 {
					t.Errorf("%s n=%d p%g: estimate %v, exact %v (%.1f %% off)", name, n, q*100, got, exact, 100*diff/float64(exact))
				}
			}
		}
	}
	var empty Hist
	if v, lo, hi := empty.Quantile(0.5); v != 0 || lo != 0 || hi != 0 {
		t.Error("Quantile of an empty histogram must be 0")
	}
}

func TestHistJSONAndASCII(t *testing.T) {
	var h Hist
	for range 90 {
		h.Add(1500 * time.Nanosecond) // [1024, 2048)
	}
	for range 10 {
		h.Add(100 * time.Microsecond) // [65536, 131072)
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"lo_ns":1472,"hi_ns":1536,"count":90},{"lo_ns":98304,"hi_ns":102400,"count":10}]`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var back Hist
	if err := json.Unmarshal(b, &back); err != nil || back != h {
		t.Errorf("JSON round trip: %v", err)
	}
	if err := json.Unmarshal([]byte(`[{"lo_ns":1000,"hi_ns":1100,"count":1}]`), &back); err == nil {
		t.Error("a bucket of another layout was accepted")
	}
	var buf bytes.Buffer
	h.WriteASCII(&buf)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// Powers of two 10 through 16 inclusive: 7 lines, the first full.
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "[1K, 2K)") || !strings.Contains(lines[0], strings.Repeat("@", 52)) {
		t.Fatalf("unexpected histogram:\n%s", buf.String())
	}
}

func TestSnapshotSub(t *testing.T) {
	mk := func(n uint64, mean time.Duration) *Snapshot {
		r := Stats{Code: 3, Name: "GETATTR", Count: n, Mean: mean}
		for i := uint64(0); i < n; i++ {
			r.Hist.Add(mean)
		}
		return &Snapshot{Fuse: []Stats{r}}
	}
	d := mk(30, 2000).Sub(mk(10, 2000))
	if len(d.Fuse) != 1 || d.Fuse[0].Count != 20 || d.Fuse[0].Mean != 2000 {
		t.Fatalf("Sub = %+v", d.Fuse)
	}
}

// TestSyscallProbe times this test process's own system calls and checks
// the probe counted at least the getppid calls it made.
func TestSyscallProbe(t *testing.T) {
	testutil.RequireRoot(t)
	p, err := Attach(Options{Mode: ModeOff, Pid: os.Getpid()})
	if err != nil {
		if testutil.Strict() {
			t.Fatalf("Attach: %v", err)
		}
		t.Skipf("BPF not usable here: %v", err)
	}
	defer p.Close()
	const n = 5000
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	s, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var got *Stats
	for i := range s.Syscalls {
		if s.Syscalls[i].Code == unix.SYS_GETPPID {
			got = &s.Syscalls[i]
		}
	}
	if got == nil || got.Count < n {
		t.Fatalf("getppid: probe counted %+v, want ≥ %d calls", got, n)
	}
	if got.P50.Value <= 0 || got.P50.Value > 10*time.Millisecond || got.Max < got.P50.Value {
		t.Fatalf("implausible getppid latency: p50 %v max %v", got.P50.Value, got.Max)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}

// TestPin checks that pinning makes the maps visible to bpftool's name
// lookups and that Close removes them.
func TestPin(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := os.Stat("/sys/fs/bpf"); err != nil {
		t.Skip("no /sys/fs/bpf")
	}
	var sfs unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &sfs) != nil || sfs.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
			t.Skipf("bpffs not mounted and cannot be: %v", err)
		}
	}
	dir := "/sys/fs/bpf/fastfsd-test"
	p, err := Attach(Options{Mode: ModeOff, Pid: os.Getpid(), PinDir: dir})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if _, err := os.Stat(dir + "/sys_stats"); err != nil {
		t.Errorf("map not pinned: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("pin dir left behind after Close: %v", err)
	}
}

// TestAttach9PNeedsClient: where the kernel has no 9P client loaded, the
// 9P mode refuses with ErrNotSupported and says what is missing.
func TestAttach9PNeedsClient(t *testing.T) {
	testutil.RequireRoot(t)
	if tracepointExists("9p", "9p_client_req") {
		t.Skip("this kernel has the 9p tracepoints; the guest test (perf/bench TestGuestProbe9P) covers attaching")
	}
	p, err := Attach(Options{Mode: Mode9P})
	if err == nil {
		p.Close()
		t.Fatal("Attach(Mode9P) succeeded without the 9p tracepoints")
	}
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "9p:9p_client_req") {
		t.Fatalf("Attach(Mode9P) = %v, want ErrNotSupported naming 9p:9p_client_req", err)
	}
}
