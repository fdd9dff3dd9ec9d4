// Package virtiofs is the virtio-fs device behind a vhost-user back-end: it
// implements vhostuser.Device and serves an fs.FileSystem through the FUSE
// engine (fuse.Server) over the device's virtqueues.
//
// # Queues and workers
//
// Queue 0 is the hiprio queue (FORGET), queues 1..N carry requests
// (virtio spec 5.11; no notification queue: QEMU and Linux do not implement
// VIRTIO_FS_F_NOTIFICATION). Each started queue has one worker: a goroutine
// locked to its own OS thread (dataplane.Start), pinned to a CPU when
// Options.CPUs says so. The worker owns its ring.Queue, its mem.Reader, its
// fuse.Request and every buffer below; nothing is shared with other workers
// on the request path and nothing is allocated per request.
//
// A worker sleeps in poll(2) on its kick eventfd and a private stop eventfd
// (optionally polling the dry ring first, without asking for a kick: for
// a fixed window, Options.BusyPoll, or one sized to the guest's pace,
// Options.AdaptivePoll), then pops
// every available chain and runs each request to completion: decode, call
// the filesystem, write the reply, push the used element and publish it,
// signalling the call eventfd only when ring.Queue.Publish says the driver
// asked for it (EVENT_IDX).
//
// # Data path
//
// The device-readable part of a chain is fuse_in_header + arguments; for
// WRITE the payload follows. Header and arguments are copied into the
// worker's buffer (a few hundred bytes): guest memory is shared with a
// hostile guest, and names or lengths must not change between validation
// and use. The WRITE payload is never copied: it is an fs.Source whose
// WriteTo pwritev's straight from the guest's descriptors. The reply header
// and arguments are copied to the device-writable part; READ data is an
// fs.Sink whose ReadFrom preadv's from the file straight into the guest's
// writable descriptors after the 16-byte out header.
//
// Requests run to completion on the queue's worker, except those that may
// block (fuse.Blocking: lock waits, FSYNC, FSYNCDIR, FALLOCATE,
// COPY_FILE_RANGE, SYNCFS): every queue has Options.BlockingHelpers small
// slots, each with a helper goroutine, that serve them off the worker —
// a SETLKW whose unlock arrives on the same queue would otherwise wait for
// ever. A slot holds 1 KiB of request; a wait longer than that (a lock
// wait, or an OPEN/CREATE/truncating SETATTR breaking a host lease, with
// request extensions) takes a copy from the queue's dataplane.WaitCopies,
// at most one per blocking slot, and never waits on the worker. With every blocking slot busy, such a request goes to a free
// Options.Helpers slot; failing that a lock wait is refused with ENOLCK
// (it may never end) and anything else is served inline (it ends on its
// own). Options.Helpers (--thread-pool-size) also takes READ/WRITE of
// 64 KiB or more, so several run at once on one queue. Each offloaded
// request has its own slot (chain, engine Request, buffers). Helpers queue
// their completions; the worker pushes and publishes them (the ring keeps
// one owner). A blocking slot holds no view of guest memory: the worker
// copies its request in at hand-off (into the slot's 1 KiB, or a wait's
// larger copy from dataplane.WaitCopies) and its reply out at
// completion, translating the reply buffers again with the table it holds
// then (used length 0 if they left guest memory), so a lock wait never
// holds up a memory update and is not interrupted by one. While a request
// is on an Options.Helpers slot the worker passes no memory quiescent
// point and keeps the ring on its current table, so no view that helper
// holds can be unmapped; a memory update waits for those requests,
// interrupting them (a lock wait there answers EINTR) after about a second.
// Stopping a queue interrupts what its helpers serve at once, so a lock
// wait that would never be granted does not delay GET_VRING_BASE: the
// guest's lock call sees EINTR.
//
// # Memory and stopping
//
// A worker enters its mem.Reader once per batch and exits it before it
// sleeps, so guest memory updates (ADD/REM_MEM_REG) never wait for an idle
// queue. StopQueue sets a flag the worker checks between requests, wakes it,
// and waits for it to return: when it returns no request is in flight, and
// ring.Queue.Base is the answer to GET_VRING_BASE. Reset (device reset,
// disconnect) starts a fresh FUSE session so a rebooted guest can send INIT
// again; if the old session never sent DESTROY, the filesystem's Destroy is
// called then (fs/passthrough supports being reused after Destroy).
//
// A front-end may truncate the file behind guest memory after sharing it;
// workers and helpers run with debug.SetPanicOnFault so the SIGBUS that
// follows fails one request (its buffers are gone) or breaks one queue
// (its ring is gone) instead of killing the daemon (fault.go).
//
// # Imports
//
// virtiofs imports vhostuser, ring, mem, fuse, fuse/abi, fs and dataplane.
package virtiofs
