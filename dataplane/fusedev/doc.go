// Package fusedev serves a FUSE connection on /dev/fuse: it mounts
// (mount(2) as root, fusermount3 otherwise), runs pinned workers that read
// requests and write replies, and unmounts.
//
// # Workers and fds
//
// Serve answers INIT on the mount's own fd, then starts one worker per CPU
// (dataplane.Worker: locked OS thread, pinned). Worker 0 keeps the mount's
// fd; every other worker gets its own fd cloned with FUSE_DEV_IOC_CLONE, so
// each waits on its own queue. A reply is always written to the fd its
// request was read from (the kernel keeps one processing list per fd).
// Each worker owns one fuse.Request and its buffers, sized at start for
// the max_write the engine offers: the receive buffer holds
// max(8192, 80+MaxWrite) bytes (the kernel's rule), and steady-state
// serving allocates nothing.
//
// # Data paths
//
// read/writev (ServeOptions.Splice = SpliceOff): a request is read(2)
// into the worker's buffer; the reply, READ data included, leaves with one
// write(2).
//
// splice (SpliceOn, and SpliceAuto, when INIT agreed FUSE_SPLICE_READ/
// WRITE): a request is spliced into a pipe and its header and arguments
// read from it; WRITE payloads stay in the pipe and reach the file with
// splice (fs.Source.WriteTo). READ data of 32 KiB or more is spliced file →
// pipe and the reply leaves with splice (the fs.Sink the engine passes to
// the filesystem); smaller READs are copied behind the out header and leave
// with one write, since there two extra system calls cost more than the
// copy. Without CAP_SYS_RESOURCE a pipe holds at most pipe-max-size (1 MiB)
// and max_write is shrunk to fit a whole request in one. See splicepath.go.
//
// Measured with fio on a tmpfs source, passthrough off, the two paths
// alternated on one loaded 2-CPU VM (load average 16–20, so ±50 % noise):
// 1 MiB O_DIRECT reads 1.34–1.46 GB/s spliced vs 0.21–0.71 GB/s
// read/writev, 1 MiB O_DIRECT writes 0.78–1.04 vs 0.51–0.55 GB/s (a later
// pair of runs: reads 0.14/1.89 vs 0.62/0.72, writes 0.15/0.47 vs
// 0.28/0.35); 4 KiB random reads, 2 jobs, every read served (cache=never):
// 35k–64k IOPS spliced vs 56k–113k read/writev. Splice wins on large
// payloads and loses on small requests (one more system call each). So
// SpliceAuto splices only when passthrough is off: with passthrough on,
// file data bypasses the server and it sees mostly small requests.
//
// # FUSE passthrough
//
// Conn.OpenBacking and Conn.CloseBacking wrap FUSE_DEV_IOC_BACKING_OPEN and
// _CLOSE for the engine: with FUSE_PASSTHROUGH agreed, an OPEN reply carries
// a backing id and the kernel does that file's I/O itself. An id is closed
// once the reply carrying it has been written.
//
// # Notifications
//
// Conn.NotifyInvalInode, NotifyInvalEntry, NotifyDelete, NotifyStore,
// NotifyRetrieve, NotifyPoll, NotifyResend, NotifyIncEpoch and NotifyPrune
// write the kernel's FUSE_NOTIFY_* messages to the mount's fd, from any
// goroutine (notify.go states the deadlock rule). They serve every door of
// the mount, FUSE over io_uring included. NotifyRetrieve waits for the
// kernel's NOTIFY_REPLY, which arrives as a request on whichever worker or
// ring reads it; the engine (fuse.Server.BeginRetrieve) hands its data to
// the waiting caller.
//
// # Ending
//
// Reads returning ENODEV (the filesystem was unmounted, from outside or by
// Unmount) end a worker cleanly; Serve returns nil when all have ended.
// Unmount uses umount2, and on EBUSY a lazy detach plus an abort through
// fusectl, so Serve always returns. The caller unmounts before exiting so
// that no dead mount ("transport endpoint is not connected") is left.
// ENOENT on a reply means the kernel no longer has the request: a
// FUSE_NOTIFY_RESEND (Conn.NotifyResend) gave it a new unique and sent it
// again, or the connection was aborted. (A caller killed by a fatal
// signal does not cause it: the kernel waits out a request the server
// has read.) The worker then calls fuse.Server.NotDelivered, which gives
// back to the filesystem the lookups and open handles the reply carried:
// the kernel will never FORGET or RELEASE them. A reply the kernel refuses
// otherwise (EINVAL) is given back the same way before the EIO that
// replaces it.
//
// # Serving and using a mount in one process
//
// A Go process that serves a mount must not open regular files in it with
// os.Open (or anything built on it): os.Open registers the file with the
// runtime's netpoller, whose epoll_ctl makes the kernel send FUSE_POLL
// while the calling thread keeps its P; a stop-the-world GC starting then
// waits for that thread, and the workers that would answer wait for the
// world. Use syscall/unix Open and Read, or another process (as fastfsd
// mount does: it never touches its own mount). Directories are safe.
//
// # Concurrency
//
// Conn's methods are safe for concurrent use; Serve runs once per Conn.
// fusedev imports fuse, dataplane, splice and internal/sys.
package fusedev
