// Package fuse is the FUSE protocol engine: it decodes one request from a
// byte view, validates it, calls the fs.FileSystem, and encodes the reply
// into a transport-provided buffer. It serves every door that speaks FUSE:
// /dev/fuse (read/write, splice, io_uring) and virtio-fs.
//
// # Imports
//
// fuse imports only fuse/abi, fs and the standard library. It knows nothing
// of file descriptors beyond the ints a filesystem passes to a Sink or
// Source, nor of rings, guest memory, sockets or golang.org/x/sys/unix.
// Interfaces it needs from a transport (BackingFiles, DAX) are declared
// here, where they are used.
//
// # Concurrency
//
// A Server serves one connection and is safe for concurrent use by many
// workers. Each worker owns one Request (Server.NewRequest), reuses it for
// every request it serves, and never shares it. INIT and DESTROY are
// serialised inside the engine; Agreed may be called from any goroutine.
// INTERRUPT reaches a request running on another worker through a small
// registry that only requests which may block for long (SETLKW, FSYNC,
// FSYNCDIR, SYNCFS, FALLOCATE, COPY_FILE_RANGE) enter: the hot path takes no
// lock.
//
// # Buffer ownership
//
// Request.In (and Src) belong to the transport and must stay valid until
// Handle returns. The engine reads every header and argument field once
// into its own memory before validating and using it, so a peer that
// changes In concurrently cannot make the engine read out of bounds; but
// names, xattr values and WRITE payloads reach the filesystem as views into
// In, validated in place. A transport whose In is memory a peer may still
// write (guest memory) must therefore copy the header and arguments out
// first, as dataplane/virtiofs does, or a name could gain a '/' after it
// was checked. Request.Out
// belongs to the worker; Handle writes the reply to Out[:n]. With Dst set,
// READ data goes to Dst and the reply header's len counts Request.DataLen
// more bytes that the transport sends after Out[:n].
//
// # Validation
//
// The header length must equal len(In) (+ Src.Len()); argument structs must
// have the size the negotiated minor implies; names must be NUL-terminated
// inside the request, non-empty, without '/', not "." or "..", and at most
// 255 bytes (ENAMETOOLONG); counts (BATCH_FORGET, REMOVEMAPPING) must match
// the length; WRITE's size must match its payload and max_write. A bad
// request gets EINVAL (EIO where the kernel's own state is inconsistent),
// never a panic; a request without a readable header gets no reply. A
// panic in the filesystem becomes EIO and the engine keeps serving, and an
// errno outside [1, 511] from the filesystem becomes EIO.
//
// # POLL, and serving a mount from the same process
//
// POLL goes to the filesystem's fs.Poller if it has one; otherwise it is
// answered ENOSYS, which the kernel remembers (it then reports the
// default poll mask). The first POLL comes from the first epoll_ctl on a
// file of the mount — which package os does for every file it opens,
// through a raw system call that keeps its P. A process that serves its
// own mount and opens files in it with package os can therefore deadlock
// (a GC waits for that P while the server goroutine waits for the GC):
// trigger the first POLL with a blocking epoll_ctl first, as the tests'
// defusePoll does.
//
// # NOTIFY_REPLY
//
// The kernel answers a FUSE_NOTIFY_RETRIEVE (sent by the transport, e.g.
// fusedev.Conn.NotifyRetrieve) with a NOTIFY_REPLY request carrying the
// cached data, on whichever worker or ring reads it. BeginRetrieve
// registers the caller's buffer under the notify_unique to send; Handle
// copies the reply into it and closes the Retrieval's Done channel; a
// reply nobody waits for is logged and dropped. NOTIFY_REPLY has no reply.
//
// # Allocation
//
// Everything a request needs (decoded header, fs.Context, out structs,
// sinks) lives in the Request: GETATTR, LOOKUP, READ and WRITE allocate
// nothing (TestAllocs).
package fuse
