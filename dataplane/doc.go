// Package dataplane runs the workers that bind a transport endpoint (a
// cloned /dev/fuse fd, an io_uring queue, a virtqueue) to the protocol
// engine. This package holds what every door shares: the pinned Worker,
// the CPU plan, LockWaits (how a door's lock-wait slots are shared among
// uids) and WaitCopies (a door's bounded copies of waits too large for a
// helper's own); each door's run loop lives in a subpackage
// (dataplane/fusedev, …).
//
// # Workers and threads
//
// A Worker is one goroutine locked to one OS thread (runtime.LockOSThread,
// never undone) whose CPU affinity is set to one CPU. Because the lock is
// never released, the thread exits together with the goroutine: the
// affinity mask never leaks to a thread the Go scheduler reuses for other
// goroutines. Workers add one P to GOMAXPROCS for each worker of the
// most that ever ran at once (unless the environment sets GOMAXPROCS),
// never given back: a worker blocked in its read keeps its P,
// and without a P of its own per worker the runtime would have to take
// one back from a blocked worker, polling every 20 µs, whenever anything
// else runs (worker.go says what that cost). A worker's goroutine never
// passes through the Go scheduler by itself (it blocks in system calls
// and carries on), which the runtime's monitor takes for a goroutine
// running too long: every loop calls a SchedPoint before it may block
// (and virtio-fs, whose ring need never run dry, between requests too),
// which passes through the scheduler at most once per 5 ms (schedpoint.go
// says what the monitor did to each request without it).
//
// # CPU plan
//
// The default is one worker per CPU the process may run on
// (sched_getaffinity, so taskset and cpusets are honoured), placed on
// distinct physical cores first, by the core and package ids in
// /sys/devices/system/cpu/cpuN/topology (a CPU whose ids cannot be read
// counts as a core of its own), SMT siblings last. On a part cpuid
// (klauspost/cpuid/v2) calls hybrid, performance cores come before the
// efficiency cores the kernel lists in /sys/devices/cpu_atom/cpus. cpuid's
// cache-line size is checked against x/sys/cpu.CacheLinePad, the
// compile-time padding between per-worker counters and ring indices
// (TestCacheLinePad). fusedev pins a worker per planned CPU; uring pins
// queue i's worker to CPU i (the CPU that kernel queue serves) where the
// mask allows; virtiofs pins its queue workers to the CPUs it is given
// (fastfsd virtiofs pins by the plan unless --cpus none).
//
// dataplane imports the engine (fuse), the endpoint packages (splice, ring,
// mem, vhostuser) and internal/sys; never perf or cmd.
package dataplane
