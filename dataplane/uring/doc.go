// Package uring serves FUSE over io_uring (Linux 6.14+, protocol 7.42+,
// the fuse module's enable_uring parameter on): each queue is an io_uring
// of 128-byte SQEs carrying IORING_OP_URING_CMD to /dev/fuse, owned by one
// pinned worker. The kernel delivers a request by completing an entry's
// REGISTER or COMMIT_AND_FETCH command with the request in the entry's
// buffers; the worker serves it with fuse.Server and commits the reply with
// the next COMMIT_AND_FETCH, which also re-arms the entry — one system call
// per batch of requests instead of a read and a write per request.
//
// The kernel keeps one queue per possible CPU and queues a request on the
// queue of the CPU that issued it; a worker per queue is pinned to that
// CPU, so a request is served on the CPU that made it.
//
// Buffers: every entry is one anonymous mmap (entryMem) holding the
// request header area the kernel fills and the payload buffer, laid out so
// that the engine's reply buffer ends in the payload buffer: READ data and
// READDIR records are written by the engine straight into the memory the
// kernel copies to the caller, and WRITE data is handed to the filesystem
// as an fs.Source over the payload buffer. Only the fixed header, the
// per-op argument struct and names are copied. An entry's memory belongs to
// the kernel from the moment its command is submitted until its CQE is
// reaped, and to the worker in between.
//
// FORGET, INTERRUPT and notifications still travel on /dev/fuse, so the
// /dev/fuse transport (dataplane/fusedev) keeps reading the device and
// starts this package's queues once INIT has agreed OVER_IO_URING.
//
// Kernel limit (6.18): a signal that reaches a caller after its request
// was queued for the ring but before the kernel copied it into a ring
// entry produces no INTERRUPT (fs/fuse/dev_uring.c sets FR_SENT without the
// FR_INTERRUPTED re-check the /dev/fuse read path makes). A lock wait so
// signalled goes on until the lock is granted, the daemon stops or the
// filesystem is unmounted; the /dev/fuse door has no such window.
package uring
