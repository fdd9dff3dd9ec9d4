package dataplane

import (
	"fmt"
	"runtime"

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
