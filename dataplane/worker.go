package dataplane

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Worker is a goroutine locked to its own OS thread, pinned to one CPU,
// running one function to completion.
type Worker struct {
	cpu  int
	done chan struct{}
	err  error // written once before done is closed
}

// Start runs fn in a new worker pinned to cpu (cpu < 0: not pinned, but
// still on a thread of its own).
//
// Postconditions inside fn (what fn may rely on):
//   - the calling goroutine is locked to one OS thread for all of fn, and no
//     other goroutine runs on that thread;
//   - that thread's affinity mask is exactly {cpu} (if cpu >= 0);
//   - thread-local kernel state fn sets (affinity, signal masks, unshare,
//     setns, fsuid) stays with that thread and is discarded with it.
//
// Postconditions after fn returns: the thread exits (the lock is never
// released, so the Go runtime terminates the thread instead of reusing
// it; the one exception is the process's main thread, which the runtime
// parks for ever instead, so it still never runs another goroutine), then
// Wait returns fn's error. If pinning fails fn is not run and
// Wait returns the error.
func Start(cpu int, fn func() error) *Worker {
	w := &Worker{cpu: cpu, done: make(chan struct{})}
	go w.run(fn)
	return w
}

func (w *Worker) run(fn func() error) {
	runtime.LockOSThread()
	// No UnlockOSThread, on purpose: see Start.
	defer close(w.done)
	reserveP()
	defer releaseP()
	if w.cpu >= 0 {
		var set unix.CPUSet
		set.Set(w.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			w.err = fmt.Errorf("dataplane: pin worker to CPU %d: %w; check the CPUs allowed by taskset or the cgroup cpuset", w.cpu, err)
			return
		}
	}
	w.err = fn()
}

// CPU returns the CPU the worker is pinned to, or -1.
func (w *Worker) CPU() int { return w.cpu }

// Done is closed when the worker's function has returned.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Wait blocks until the worker's function returns and returns its error.
func (w *Worker) Wait() error {
	<-w.done
	return w.err
}

// reserveP and releaseP keep one P (GOMAXPROCS) per running worker, as
// a high-water mark: when more workers run than ever before in the
// process, GOMAXPROCS goes up by one; a worker's end gives nothing back.
// So GOMAXPROCS is at most its value before the first worker plus the
// most workers that ever ran at once, and starting and stopping workers
// (a front-end enabling and disabling rings in a loop) changes it no more
// than once per new high: each change stops the world (about 0.2 ms on
// the 2-CPU VM). An idle P costs nothing. The change is relative to
// GOMAXPROCS at the time, so a caller that restores a value it read
// earlier (testing.AllocsPerRun sets 1 and restores) while a worker
// first starts can undo one reservation; nothing in the daemon sets
// GOMAXPROCS. Any call of runtime.GOMAXPROCS also ends the runtime's own
// updates of its default (since Go 1.25: from the CPU affinity and the
// cgroup's CPU limit): from the first worker on, a change of either is
// not followed.
//
// Why: a worker spends most of its life blocked in a system call (a read
// of /dev/fuse, io_uring_enter, an eventfd read), and a goroutine blocked
// in a system call keeps its P. With one worker per CPU and GOMAXPROCS
// equal to the CPUs, every P is held so while the daemon waits for
// requests: anything else that must run (a worker back from its read
// whose P was lent out, a lock-wait helper, the runtime's own work) needs
// the runtime's monitor thread to take a P from a blocked worker, which
// it checks for every 20 µs while the process is busy (a wake-up, and on
// a small VM a context switch, each time), and a worker whose read
// returns to find no idle P parks until one is handed to it. With a P of
// its own per worker there is always an idle P: the monitor leaves the
// blocked workers alone and sleeps. Measured on the 2-CPU VM, fastfsd
// mount with its 2 workers and GOMAXPROCS=4 set by hand (what this
// reservation gives there), against the default, at load 6-9 from other
// work: CREATE's kernel round trip p50 18-26 µs against 27-46 µs over 4
// alternated rounds of 3,000 creates, LOOKUP's 9-10 against 10-15 µs;
// over 5,000 creates and unlinks the serving process made 404 futex
// calls against 3,710 and 44,652 context switches against 56,899. On
// the idle machine (load under 2) the round trips did not move: CREATE
// p50 30.6-41.1 µs with the reservation, 29.4-37.3 µs without it
// (GOMAXPROCS=2 set), LOOKUP 12.0-16.3 against 11.8-15.5 µs, 3
// alternated rounds: it is the busy machine it helps. An idle P costs
// nothing; at most CPUs+workers threads run Go code, and
// the workers among them are pinned, one per CPU.
//
// A GOMAXPROCS set in the environment is the user's choice (and the
// test suite's single-P pass): then nothing is changed.
var procs struct {
	mu sync.Mutex
	// running is the workers running; reserved the Ps added so far, the
	// most that ever ran at once.
	running, reserved int
}

// procsFixed: GOMAXPROCS was set in the environment.
var procsFixed = os.Getenv("GOMAXPROCS") != ""

func reserveP() {
	if procsFixed {
		return
	}
	procs.mu.Lock()
	defer procs.mu.Unlock()
	procs.running++
	if procs.running > procs.reserved {
		procs.reserved++
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
}

func releaseP() {
	if procsFixed {
		return
	}
	procs.mu.Lock()
	defer procs.mu.Unlock()
	procs.running--
}
