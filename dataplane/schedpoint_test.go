package dataplane

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadSwitches is every thread's context switches (voluntary and not)
// in this process, by tid.
func threadSwitches(t *testing.T) map[int]int64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatalf("read /proc/self/task: %v", err)
	}
	out := make(map[int]int64, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // the thread exited
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				out[tid] += n
			} else if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				out[tid] += n
			}
		}
	}
	return out
}

// wakeLoop runs a worker that blocks in read(2) of a timerfd firing every
// 100 µs for d, calling sp.BeforeBlock before each read unless sp is nil,
// and returns the worker's wake-ups and the context switches every other
// thread of the process made meanwhile.
func wakeLoop(t *testing.T, sp *SchedPoint, d time.Duration) (wakes, others int64) {
	t.Helper()
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatalf("timerfd_create: %v", err)
	}
	defer unix.Close(tfd)
	tick := unix.NsecToTimespec((100 * time.Microsecond).Nanoseconds())
	if err := unix.TimerfdSettime(tfd, 0, &unix.ItimerSpec{Interval: tick, Value: tick}, nil); err != nil {
		t.Fatalf("timerfd_settime: %v", err)
	}
	tidc := make(chan int, 1)
	var before map[int]int64
	start := make(chan struct{})
	w := Start(-1, func() error {
		tidc <- unix.Gettid()
		<-start
		var b [8]byte
		for end := time.Now().Add(d); time.Now().Before(end); {
			if sp != nil {
				sp.BeforeBlock()
			}
			if _, err := unix.Read(tfd, b[:]); err != nil && err != unix.EINTR {
				return err
			}
			wakes++
		}
		return nil
	})
	tid := <-tidc
	before = threadSwitches(t)
	close(start)
	if err := w.Wait(); err != nil {
		t.Fatalf("worker: read timerfd: %v", err)
	}
	after := threadSwitches(t) // the worker's thread has exited: not in after
	for id, n := range after {
		if id != tid {
			others += n - before[id]
		}
	}
	return wakes, others
}

// TestSchedPointQuietsSysmon: a worker woken every 100 µs from a blocking
// system call, passing through the scheduler before each block as
// workers do, leaves the rest of the process nearly still. Without the
// passes the runtime's monitor thread takes the worker's P at every
// block and wakes about twice per wake-up of the worker (the "without"
// figure is logged; SchedPoint's comment says why); with them the other
// threads switch fewer times than half the worker's wake-ups (in the
// order of the 2 thread switches of each 5 ms pass, 400 a second).
func TestSchedPointQuietsSysmon(t *testing.T) {
	if procsFixed {
		t.Skip("GOMAXPROCS is set in the environment: workers get no P of their own, and with every P held by a blocked worker the runtime takes one back whatever the worker does")
	}
	const d = 400 * time.Millisecond
	wakes0, others0 := wakeLoop(t, nil, d)
	t.Logf("without passes: %d wake-ups of the worker, %d context switches of the other threads", wakes0, others0)
	var sp SchedPoint
	wakes, others := wakeLoop(t, &sp, d)
	t.Logf("with passes every %v: %d wake-ups of the worker, %d context switches of the other threads", SchedPointEvery, wakes, others)
	if wakes < 100 {
		t.Fatalf("the worker woke only %d times in %v: the timerfd did not fire every 100 µs", wakes, d)
	}
	if others*2 > wakes {
		t.Errorf("the other threads switched %d times for %d wake-ups of a worker that passes through the scheduler every %v: the runtime's monitor is busy with it (want fewer than half)", others, wakes, SchedPointEvery)
	}
}

func TestSchedPointDue(t *testing.T) {
	var sp SchedPoint
	if !sp.BeforeBlock() {
		t.Fatal("a new SchedPoint did not pass at its first BeforeBlock")
	}
	if sp.Due() || sp.BeforeBlock() {
		t.Fatal("a SchedPoint passed again right after a pass")
	}
	sp.last = time.Now().Add(-SchedPointEvery)
	if !sp.Due() {
		t.Fatalf("a SchedPoint whose last pass was %v ago is not due", SchedPointEvery)
	}
}
