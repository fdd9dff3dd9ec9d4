package probe

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestHistQuantile(t *testing.T) {
	var h Hist
	for i := 0; i < 90; i++ {
		h.Add(1500 * time.Nanosecond) // bucket [1024, 2048)
	}
	for i := 0; i < 10; i++ {
		h.Add(100 * time.Microsecond) // bucket [65536, 131072)
	}
	if got := h.Total(); got != 100 {
		t.Fatalf("Total = %d, want 100", got)
	}
	for _, tc := range []struct {
		q      float64
		lo, hi time.Duration
	}{
		{0.5, 1024, 2048},
		{0.9, 1024, 2048},
		{0.95, 65536, 131072},
		{0.99, 65536, 131072},
	} {
		if got := h.Quantile(tc.q); got < tc.lo || got > tc.hi {
			t.Errorf("Quantile(%v) = %v, want in [%v, %v]", tc.q, got, tc.lo, tc.hi)
		}
	}
	var empty Hist
	if empty.Quantile(0.5) != 0 {
		t.Error("Quantile of an empty histogram must be 0")
	}
	var buf bytes.Buffer
	h.WriteASCII(&buf)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// Buckets 10 through 16 inclusive: 7 lines, the first full, the last 10/90 of it.
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
	if got.P50 <= 0 || got.P50 > 10*time.Millisecond || got.Max < got.P50 {
		t.Fatalf("implausible getppid latency: p50 %v max %v", got.P50, got.Max)
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
