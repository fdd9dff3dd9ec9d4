package dataplane

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/cpuid/v2"
	"golang.org/x/sys/unix"
)

// CPU is one logical CPU the process may run on.
type CPU struct {
	ID      int // logical CPU number (as in taskset, /proc/cpuinfo)
	Core    int // physical core id within its package, or ID if unknown
	Package int // physical package (socket) id, or 0 if unknown
	// Efficiency marks an efficiency core of a hybrid CPU (Intel's
	// "atom" cores, listed in /sys/devices/cpu_atom/cpus); false on
	// performance cores and on CPUs of one kind.
	Efficiency bool
}

// Topology is what the worker plan is made from.
type Topology struct {
	Brand          string // CPU brand string (cpuid)
	ThreadsPerCore int    // hardware threads per core (cpuid; 1 if unknown)
	Hybrid         bool   // cpuid: the part has cores of more than one kind
	CacheLine      int    // cache-line size in bytes (cpuid; 0 if unknown)
	Allowed        []CPU  // CPUs in the process's affinity mask, by ID
}

// ReadTopology returns the CPU brand, threads per core, hybrid flag and
// cache-line size from cpuid, and the CPUs the calling thread may run on
// (sched_getaffinity) with their core and package from
// /sys/devices/system/cpu and, on a hybrid part, which are efficiency
// cores (/sys/devices/cpu_atom/cpus, the kernel's PMU for them).
func ReadTopology() (Topology, error) {
	t := Topology{Brand: cpuid.CPU.BrandName, ThreadsPerCore: max(cpuid.CPU.ThreadsPerCore, 1),
		Hybrid: cpuid.CPU.Supports(cpuid.HYBRID_CPU), CacheLine: cpuid.CPU.CacheLine}
	var small map[int]bool
	if t.Hybrid {
		if b, err := os.ReadFile("/sys/devices/cpu_atom/cpus"); err == nil {
			small, _ = parseCPUList(strings.TrimSpace(string(b)))
		}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return t, fmt.Errorf("dataplane: sched_getaffinity: %w", err)
	}
	for id := 0; id < len(set)*64; id++ {
		if !set.IsSet(id) {
			continue
		}
		c := CPU{ID: id, Core: id}
		if v, ok := readSysInt(id, "core_id"); ok {
			c.Core = v
		}
		if v, ok := readSysInt(id, "physical_package_id"); ok {
			c.Package = v
		}
		c.Efficiency = small[id]
		t.Allowed = append(t.Allowed, c)
	}
	if len(t.Allowed) == 0 {
		return t, fmt.Errorf("dataplane: the process may run on no CPU (empty affinity mask)")
	}
	return t, nil
}

func readSysInt(cpu int, name string) (int, bool) {
	b, err := os.ReadFile("/sys/devices/system/cpu/cpu" + strconv.Itoa(cpu) + "/topology/" + name)
	if err != nil {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return v, err == nil
}

// parseCPUList parses the kernel's CPU list format ("0-3,8,10-11").
func parseCPUList(s string) (map[int]bool, error) {
	out := map[int]bool{}
	if s == "" {
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("dataplane: CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("dataplane: CPU list %q: bad range %q", s, f)
			}
		}
		for i := a; i <= b && i-a < 1<<16; i++ {
			out[i] = true
		}
	}
	return out, nil
}

// Plan returns the CPUs to pin n workers to: n <= 0 means one per allowed
// CPU. One hardware thread of every physical core comes before any SMT
// sibling, and among those a hybrid part's performance cores before its
// efficiency cores; when n exceeds the allowed CPUs the plan wraps
// around, so several workers share a CPU.
func (t Topology) Plan(n int) []int {
	if len(t.Allowed) == 0 {
		return nil
	}
	if n <= 0 {
		n = len(t.Allowed)
	}
	// Order: by the rank of the CPU among its core's siblings, then by ID.
	type key struct{ pkg, core int }
	rank := make(map[key]int)
	cpus := make([]CPU, len(t.Allowed))
	copy(cpus, t.Allowed)
	sort.Slice(cpus, func(i, j int) bool { return cpus[i].ID < cpus[j].ID })
	ranks := make([]int, len(cpus))
	for i, c := range cpus {
		k := key{c.Package, c.Core}
		ranks[i] = rank[k]
		rank[k]++
	}
	idx := make([]int, len(cpus))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if ra, rb := ranks[idx[a]], ranks[idx[b]]; ra != rb {
			return ra < rb
		}
		return !cpus[idx[a]].Efficiency && cpus[idx[b]].Efficiency
	})
	plan := make([]int, n)
	for i := range plan {
		plan[i] = cpus[idx[i%len(idx)]].ID
	}
	return plan
}
