// Package splice owns pipes used to move data between file descriptors
// without a copy through user memory: splice(2), vmsplice(2) and tee(2)
// with their retry rules written down once, a Pipe type that knows its
// capacity and how many bytes it holds, and a Pool of pipes of one size.
//
// # Retry rules
//
// EINTR is retried in place: no call here has a side effect before it
// returns EINTR (the kernel moved nothing), and the Go runtime's own
// signals (preemption, profiling) must not surface as errors. EAGAIN is
// never spun on: pipes here are non-blocking (O_NONBLOCK), so EAGAIN from a
// pipe means it was full or empty against the caller's accounting, a bug
// the caller must see. A blocking fd on the other side (a /dev/fuse fd
// waiting for a request) blocks in the kernel as usual.
//
// # Ownership and concurrency
//
// A Pipe is owned by one goroutine at a time (a worker); it has no locks.
// Its Len is exact only if every byte moves through its methods. A Pool is
// safe for concurrent use.
//
// splice imports only golang.org/x/sys/unix; it knows nothing of FUSE.
package splice
