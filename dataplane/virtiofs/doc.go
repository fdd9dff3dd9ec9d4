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
// (optionally busy-polling the ring first, Options.BusyPoll), then pops
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
// By default requests run to completion on the queue's worker, one at a
// time (as C virtiofsd does with its default --thread-pool-size=0), so a
// request that blocks for long blocks its queue: with POSIX locks served
// (fuse.Options.Locks), a SETLKW waiting for a lock whose holder's unlock
// arrives on the same queue would wait for ever. Options.Helpers gives each
// queue that many helper goroutines: the worker still pops every chain,
// serves short requests inline, and hands requests that may block (SETLKW,
// FSYNC, FALLOCATE, COPY_FILE_RANGE, SYNCFS) and READ/WRITE of
// 64 KiB or more to a helper, each with its own slot (chain, engine
// Request, buffers). Helpers queue their completions; the worker pushes and
// publishes them (the ring keeps one owner). While any request is on a
// helper the worker passes no memory quiescent point and keeps the ring on
// its current table, so no view a helper holds can be unmapped; a memory
// update waits for those requests (or leaves the old regions mapped after
// vhostuser's grace timeout). Stopping a queue waits for its helpers: a
// SETLKW that is never granted delays GET_VRING_BASE (the engine has no
// way yet for a transport to interrupt a request).
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
