// Package dataplane runs the workers that bind a transport endpoint (a
// cloned /dev/fuse fd, an io_uring queue, a virtqueue) to the protocol
// engine. This package holds what every door shares: the pinned Worker and
// the CPU plan; each door's run loop lives in a subpackage
// (dataplane/fusedev, …).
//
// # Workers and threads
//
// A Worker is one goroutine locked to one OS thread (runtime.LockOSThread,
// never undone) whose CPU affinity is set to one CPU. Because the lock is
// never released, the thread exits together with the goroutine: the
// affinity mask never leaks to a thread the Go scheduler reuses for other
// goroutines.
//
// # CPU plan
//
// The default is one worker per CPU the process may run on
// (sched_getaffinity, so taskset and cpusets are honoured), placed on
// distinct physical cores first (sysfs topology; klauspost/cpuid/v2 for the
// threads-per-core figure when sysfs is not readable).
//
// dataplane imports the engine (fuse), the endpoint packages (splice, ring,
// mem, vhostuser) and internal/sys; never perf or cmd.
package dataplane
