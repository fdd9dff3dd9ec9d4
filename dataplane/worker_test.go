package dataplane

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

func TestWorkerPinnedAndThreadExits(t *testing.T) {
	topo, err := ReadTopology()
	if err != nil {
		t.Fatal(err)
	}
	cpu := topo.Allowed[len(topo.Allowed)-1].ID
	var before unix.CPUSet
	unix.SchedGetaffinity(0, &before)

	var tid int
	var got unix.CPUSet
	w := Start(cpu, func() error {
		tid = unix.Gettid()
		if err := unix.SchedGetaffinity(0, &got); err != nil {
			return err
		}
		time.Sleep(time.Millisecond) // may be rescheduled: must stay on the same thread
		if unix.Gettid() != tid {
			return errors.New("worker moved to another thread")
		}
		return nil
	})
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	if got.Count() != 1 || !got.IsSet(cpu) {
		t.Fatalf("worker affinity has %d CPUs (set %v), want only CPU %d", got.Count(), got.IsSet(cpu), cpu)
	}
	// The locked thread must die with the goroutine so its mask never
	// leaks to other goroutines. The one exception is the process's main
	// thread, which the runtime wedges (parks for ever) instead of exiting.
	if tid == os.Getpid() {
		t.Logf("worker ran on the main thread, which the runtime parks instead of exiting")
		return
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker thread %d still alive after its function returned", tid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWorkerBadCPU(t *testing.T) {
	ran := false
	w := Start(4095, func() error { ran = true; return nil })
	if err := w.Wait(); err == nil || ran {
		t.Fatalf("pinning to CPU 4095: err %v, ran %v; want an error and fn not run", err, ran)
	}
}

func TestWorkerError(t *testing.T) {
	want := errors.New("boom")
	if err := Start(-1, func() error { return want }).Wait(); err != want {
		t.Fatalf("Wait = %v, want %v", err, want)
	}
}

func TestPlan(t *testing.T) {
	// Two cores with two threads each, numbered as Linux does on x86
	// (siblings are N apart).
	topo := Topology{Allowed: []CPU{{ID: 0, Core: 0}, {ID: 1, Core: 1}, {ID: 2, Core: 0}, {ID: 3, Core: 1}}}
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{0, []int{0, 1, 2, 3}},
		{2, []int{0, 1}},
		{3, []int{0, 1, 2}},
		{6, []int{0, 1, 2, 3, 0, 1}},
	} {
		got := topo.Plan(tc.n)
		if len(got) != len(tc.want) {
			t.Errorf("Plan(%d) = %v, want %v", tc.n, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Plan(%d) = %v, want %v", tc.n, got, tc.want)
				break
			}
		}
	}
	// Adjacent siblings (0,1 on core 0): spread first.
	topo = Topology{Allowed: []CPU{{ID: 0, Core: 0}, {ID: 1, Core: 0}, {ID: 2, Core: 1}, {ID: 3, Core: 1}}}
	if got := topo.Plan(2); got[0] != 0 || got[1] != 2 {
		t.Errorf("Plan(2) with adjacent siblings = %v, want [0 2]", got)
	}
	if (Topology{}).Plan(3) != nil {
		t.Errorf("Plan on no CPUs not nil")
	}
	// A hybrid part: CPUs 0-3 are two performance cores with two threads
	// each, 4-7 four single-threaded efficiency cores. One worker per
	// physical core first, performance cores before efficiency cores;
	// SMT siblings last.
	topo = Topology{Allowed: []CPU{{ID: 0, Core: 0}, {ID: 1, Core: 0}, {ID: 2, Core: 1}, {ID: 3, Core: 1},
		{ID: 4, Core: 8, Efficiency: true}, {ID: 5, Core: 9, Efficiency: true}, {ID: 6, Core: 10, Efficiency: true}, {ID: 7, Core: 11, Efficiency: true}}}
	if got, want := topo.Plan(0), []int{0, 2, 4, 5, 6, 7, 1, 3}; !slices.Equal(got, want) {
		t.Errorf("hybrid Plan(0) = %v, want %v (performance cores, then efficiency cores, then siblings)", got, want)
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0-2,5,8-9")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{0, 1, 2, 5, 8, 9} {
		if !got[c] {
			t.Errorf("CPU %d missing from %v", c, got)
		}
	}
	if len(got) != 6 {
		t.Errorf("parsed %v, want 6 CPUs", got)
	}
	for _, bad := range []string{"x", "3-1", "1-y"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) accepted", bad)
		}
	}
}

// TestCacheLinePad pins that the padding between per-worker counters and
// ring indices (x/sys/cpu.CacheLinePad, sized per architecture at compile
// time) covers this machine's cache line as cpuid reports it.
func TestCacheLinePad(t *testing.T) {
	topo, err := ReadTopology()
	if err != nil {
		t.Fatal(err)
	}
	if topo.CacheLine == 0 {
		t.Skip("cpuid reports no cache-line size here")
	}
	if pad := int(unsafe.Sizeof(cpu.CacheLinePad{})); pad < topo.CacheLine {
		t.Fatalf("cpu.CacheLinePad is %d bytes, the cache line %d: counters would share lines", pad, topo.CacheLine)
	}
}

func TestReadTopology(t *testing.T) {
	topo, err := ReadTopology()
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	unix.SchedGetaffinity(0, &set)
	if len(topo.Allowed) != set.Count() {
		t.Fatalf("Allowed has %d CPUs, affinity mask %d", len(topo.Allowed), set.Count())
	}
	t.Logf("%q, %d threads/core, allowed %v", topo.Brand, topo.ThreadsPerCore, topo.Allowed)
}

// TestWorkersReserveP: GOMAXPROCS grows by one for each worker running
// past the most that ever ran at once, and never shrinks: 3 workers on
// top of those before add up to 3 Ps, ending them gives none back,
// running 3 again adds none, running 4 adds one.
func TestWorkersReserveP(t *testing.T) {
	if procsFixed {
		t.Skip("GOMAXPROCS is set in the environment, so workers leave it alone: nothing to check")
	}
	run := func(n int) (during int) {
		release := make(chan struct{})
		started := make(chan struct{})
		var ws []*Worker
		for range n {
			ws = append(ws, Start(-1, func() error {
				started <- struct{}{}
				<-release
				return nil
			}))
			<-started
		}
		during = runtime.GOMAXPROCS(0)
		close(release)
		for _, w := range ws {
			if err := w.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		return during
	}
	procs.mu.Lock()
	running, reserved := procs.running, procs.reserved
	procs.mu.Unlock()
	if running != 0 {
		t.Skipf("%d workers of other tests still run", running)
	}
	before := runtime.GOMAXPROCS(0)
	if got, want := run(reserved+3), before+3; got != want {
		t.Errorf("GOMAXPROCS with %d workers running is %d, want %d (%d before, %d reserved already)", reserved+3, got, want, before, reserved)
	}
	if got := runtime.GOMAXPROCS(0); got != before+3 {
		t.Errorf("GOMAXPROCS after the workers ended is %d, want %d: a worker's end gives nothing back", got, before+3)
	}
	if got := run(reserved + 3); got != before+3 {
		t.Errorf("GOMAXPROCS with the same number of workers again is %d, want %d unchanged", got, before+3)
	}
	if got := run(reserved + 4); got != before+4 {
		t.Errorf("GOMAXPROCS with one worker more than ever is %d, want %d", got, before+4)
	}
}
