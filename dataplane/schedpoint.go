package dataplane

import (
	"runtime"
	"time"
)

// SchedPoint lets a worker's goroutine pass through the Go scheduler at
// most once per SchedPointEvery. A worker calls BeforeBlock where it may
// block in a system call (its read of /dev/fuse, io_uring_enter waiting
// for a CQE, the ppoll on its kick eventfd), and a worker that may serve
// on for longer than that without blocking (virtio-fs, whose ring need
// never run dry) calls it between requests as well.
//
// Why: the runtime's monitor thread (sysmon) treats a goroutine that has
// run on one P for 10 ms without passing through the scheduler (the P's
// schedtick unchanged) as one to preempt, and when that goroutine is in a
// system call, where preemption cannot reach it, it takes the P away
// instead. A worker never passes through the scheduler by itself: it
// blocks in system calls and carries on. Once its P has been taken it
// comes back on an idle P whose record still shows the tick sysmon saw
// there last, long ago, so sysmon takes that P too at the worker's next
// system call, and so on for every request; each take resets sysmon's
// back-off to its shortest sleep (20 µs) and each return from a system
// call finds the P gone and wakes sysmon from its deep sleep. Measured on
// the 2-CPU VM (fastfs-backendbench, fastfsd's virtio-fs, one GETATTR in
// flight, sent 100 µs after the previous completion, as a guest that
// thinks between requests): sysmon woke about 9,800 times a second and
// used 97 ms of CPU a second against the worker's 106 ms. With the worker
// passing through the scheduler every 5 ms, sysmon used 1.3 ms a second.
// Per GETATTR the back-end spent 42.0 µs of CPU before and 20.4 µs after,
// the C virtiofsd 10.9 µs (5 alternated rounds of the three in one run;
// docs/backend-bench.md has the other request kinds).
//
// The pass is a runtime.Gosched of a goroutine locked to its thread: the
// thread hands its P on, another thread finds the goroutine and hands a P
// back to this thread (two wake-ups; tens of µs on the VM), so it is done
// at most once per SchedPointEvery, after the worker has sent what it
// owes, before a call that may block. virtio-fs passes only when its ring
// is dry; /dev/fuse and io_uring cannot know before their read whether a
// request waits, so one may wait for the pass (at most one pass in 5 ms).
// The thread is the same after the pass: the runtime runs a locked
// goroutine only on its own thread (fsuid and affinity stay). A worker
// that never blocks is preempted by the runtime as any goroutine is.
//
// A busy worker needs the passes as much: the long system calls of its
// requests (a 1 MiB preadv into guest memory: ~230 µs here) are where the
// monitor finds it. fastfsd's virtio-fs serving 1 MiB READs at 8 in
// flight, its ring never dry, passed nowhere, and the monitor thread used
// 8–10 % of a CPU beside the worker's 100 % (virtiofs busyPass).
//
// The zero value is ready to use; a SchedPoint belongs to one worker.
type SchedPoint struct {
	last time.Time // the end of the last pass (monotonic reading)
}

// SchedPointEvery is how often a worker passes through the scheduler at
// most: well inside the 10 ms after which sysmon takes a P whose goroutine
// did not.
const SchedPointEvery = 5 * time.Millisecond

// BeforeBlock passes through the scheduler if it is due and returns
// whether it did. Call it on the worker's goroutine only, with nothing the
// worker owes a client left unsent: the pass takes tens of µs.
func (s *SchedPoint) BeforeBlock() bool {
	if !s.Due() {
		return false
	}
	s.Pass()
	return true
}

// Due says whether SchedPointEvery has gone by since the last pass, for a
// worker that must send what it owes before it passes (uring: its replies
// go out with the call that waits).
func (s *SchedPoint) Due() bool { return time.Since(s.last) >= SchedPointEvery }

// Pass passes through the scheduler now.
func (s *SchedPoint) Pass() {
	runtime.Gosched()
	s.last = time.Now()
}
