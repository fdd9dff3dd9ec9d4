// Package passthrough exports a host directory as an fs.FileSystem, the way
// virtiofsd and libfuse's passthrough_hp do.
//
// # Inodes and handles
//
// Each inode the client knows is held as an O_PATH|O_NOFOLLOW file
// descriptor, keyed by the host's (st_dev, st_ino) so that two names of one
// file (hard links) are one inode. Inode IDs come from a 64-bit counter and
// are never reused; Entry.Generation is fixed per FS instance, so an ID a
// client remembers from an earlier daemon cannot alias a new inode. An inode
// lives while its lookup count (raised by every Entry returned, lowered by
// Forget) is above zero or a request or open handle still uses it; its fd
// is closed only after both are gone, so a Forget racing a request never
// makes that request use a closed (or reused) fd. The root is fs.RootInode
// and is never forgotten.
//
// With Options.FileHandles (prefer, mandatory; virtiofsd's
// --inode-file-handles) an inode is also held as a file handle
// (name_to_handle_at: made at LOOKUP under mandatory, and under prefer only
// when the cache first closes the inode's fd, so that an inode forgotten
// while cached never costs one) and its O_PATH fd is open only while the inode is in
// a bounded cache (Options.FdCache, AutoFdCache by default; CLOCK replacement once it is full) or in use
// by a request or an open handle; a request that finds it closed reopens
// it with open_by_handle_at, through an O_RDONLY fd of the inode's mount
// (one per mount under the export). So the fds the FS holds do not grow
// with the inodes the client remembers. An inode whose fd is closed no
// longer pins its host inode, whose (st_dev, st_ino) the host may give to
// a new file once it is deleted: a lookup that finds such an inode under
// its key compares the name's file handle with the inode's, and a
// different one is a new inode (the old ID answers ESTALE until the
// client forgets it). A directory reopened from its
// handle must still be the root or beneath it (the same check that guards
// "..": a walk up "..", or, when the root is its mount's root as in the
// namespace sandbox, the kernel's own check of one ".." against the mount):
// EACCES if the host moved it out of the export. A
// non-directory is the inode the client looked up, wherever its names are
// now, as a pinned O_PATH fd would be; one the host deleted is ESTALE.
// A goroutine started by New (stopped by Close) closes, every 5 s, the
// cached fds of unused regular files the host deleted, which the client
// may remember for long (it forgets an inode only when its dcache lets
// go of the name) and which would keep the file's blocks allocated.
// Inodes on a filesystem that cannot make handles keep their fd (prefer)
// or fail the lookup (mandatory). open_by_handle_at needs
// CAP_DAC_READ_SEARCH; prefer falls back to an fd per inode without it.
//
// Handles are fds opened for I/O by reopening the inode's O_PATH fd through
// /proc/self/fd (opened once at New), as virtiofsd does. Read and Write go
// from a handle's fd straight to the transport's Sink and Source (preadv
// into guest memory, splice), never through a Go buffer.
//
// With Options.Passthrough, every open of a regular file hands the client
// the same backing file (OpenOut.PassthroughFd): from Linux 6.12, which
// registers an O_PATH fd, the inode's own O_PATH fd (nothing is opened);
// before, a file opened read-only once per inode and closed with the
// inode's last passthrough handle. The kernel refuses (EIO on open) a
// second, different backing file for an inode that is open in passthrough
// mode. That file only names the inode: for each client open the kernel
// opens a backing file of its own on its path, with that open's flags (so
// a write open writes, a read-only open cannot) and the daemon's
// credentials. O_PATH or read-only, it breaks no host read lease and holds
// no write access. The transport must likewise register one backing id
// per inode (package fuse does).
//
// # Open budget per uid
//
// A handle holds a host fd until Release, so one user opening files
// without end would use up the process's RLIMIT_NOFILE, and every other
// user's open would fail with EMFILE. OpenBudget (Options.MaxOpenPerUid,
// AutoMaxOpenPerUid by default) bounds, per caller uid, the handles,
// lock-owner fds and waiting locks' fds the FS holds for it: past the
// budget that caller's open fails with EMFILE and a lock that needs a new
// owner fd or a POSIX lock wait with ENOLCK, and nobody else notices. uid 0 is not counted. The uid is fs.Context.Uid: on
// a FUSE mount the host kernel's, on virtio-fs the guest's claim (there
// the budget is fairness among the guest's users, not a boundary).
//
// # Security model: containment
//
// The client is not trusted (a VM guest may send any request). Every access
// is relative to an inode fd with an *at call and a single-component name:
// a name containing '/' or NUL is EINVAL, one longer than 255 bytes
// ENAMETOOLONG, "." and ".." are handled explicitly (".." of the root is the
// root; ".." elsewhere is accepted only if it is still beneath the root).
// Names are resolved with openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS) and
// O_NOFOLLOW, so no symlink on the host is ever followed by the daemon: a
// symlink is an inode like any other whose target the client reads with
// Readlink and resolves itself, within its own view. A symlink swapped in
// between a lookup and an open is therefore harmless. Reopening an inode
// through /proc/self/fd is refused for symlinks (ELOOP) and for special
// files (EBADF: opening a FIFO or device would block or reach a device).
//
// A client's root can make setuid executables in the exported directory,
// as with virtiofsd; if host processes may execute what is in it, mount
// the host directory nosuid. Device nodes are refused (Mknod of a
// character or block device is EPERM, but for the 0:0 whiteout) unless
// Options.AllowDevices: a node a client made would let host processes
// that may open it reach the host device it names. With AllowDevices,
// mount the host directory nodev if host processes may open what is in
// it.
//
// # Security model: identity and permissions
//
// Requests that create an inode (Create, Mknod, Mkdir, Symlink, Tmpfile)
// run with the caller's fsuid and fsgid (ctx.Uid, ctx.Gid) on a locked OS
// thread, so the new inode belongs to the caller and setgid directories
// work as the host kernel does them. All other requests run as the daemon.
// Link keeps the daemon's identity: it creates no inode, and linkat through
// an fd needs CAP_DAC_READ_SEARCH, which an fsuid switch drops.
//
// Permission checks are the client kernel's job: the /dev/fuse transport
// mounts with default_permissions and virtio-fs guests mount with it too.
// Only the client knows the caller's supplementary groups (they are not in
// the request), so checking again here — or running every request under
// the caller's fsuid — would wrongly refuse access granted through a
// supplementary group. For the same reason the creating requests of a
// non-root caller keep CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH while they
// run under the caller's fsuid: the switch decides ownership, not
// permission. CAP_FSETID and CAP_FOWNER stay dropped, so the host treats
// the new inode's setgid bit as the caller's; the thread's supplementary
// groups are then none but the one the client sent with the request
// (fs.Context.SuppGid, FUSE_CREATE_SUPP_GROUP: the parent's group when the
// caller is in it), never the daemon's. A root caller keeps every
// capability, whatever its group. After every switch the thread gets the
// daemon's exact fsuid, fsgid, groups and capabilities back.
//
// The one open the client did not check is Create of a name that exists
// after all (it appeared after the client's lookup): that file is opened
// with the host checking the caller's fsuid and fsgid without
// CAP_DAC_OVERRIDE, so CREATE never opens a file the caller could not have
// opened. A client without such checks (a 9P server serving untrusted
// users) must check before it calls in. Access answers ACCESS from the
// mode bits, the caller's uid and gid, and root's rules.
//
// The identity switch needs CAP_SETUID/CAP_SETGID (New probes for them);
// a daemon without them creates everything as itself.
//
// # Security labels
//
// A creating request may carry the label the client's LSM chose for the
// new inode (fs.Context.SecLabelName and SecLabel, FUSE_SECURITY_CTX).
// Create, Tmpfile, Mkdir, Mknod and Symlink store it as that xattr on the
// inode they made, as the daemon, once the caller's identity is undone
// (virtiofsd's way; it does not use the host's /proc/thread-self/attr/
// fscreate, which only an SELinux host has and which would apply the
// client's label under the host's policy): the inode exists unlabelled
// for the moment between the two calls. If the label cannot be stored the
// new name is removed and the request fails with the host's errno. A
// label mapped into user.* (fs/xattrmap's default) is not stored on
// symlinks and special files, which cannot hold user.* xattrs. Create of
// a file that already exists does not relabel it.
//
// # umask
//
// The client kernel has already applied the caller's umask to the mode of
// every creating request. The FS never changes the process umask (it is
// process-wide: widening it would make every socket and file the daemon
// creates elsewhere world-writable); New notes it (from /proc/self/status)
// and an inode created with mode bits the umask removed gets them back
// with one chmod, as its owner could. The common case (mode & umask == 0,
// e.g. 0644 under 022) costs nothing. Do not change the umask after New.
//
// # suid and sgid (HANDLE_KILLPRIV_V2)
//
// The daemon runs with CAP_FSETID, so the host kernel does not clear suid
// and sgid on its writes. When asked (fs.WriteKillSuidGid, fs.SetKillSuidGid,
// fs.OpenKillSuidGid) the FS clears S_ISUID, and S_ISGID if the file is
// group-executable or the caller's group is not the file's, before the
// write or truncate (see killSuidGid). chown clears them on the
// host regardless of capabilities. Writes through a FUSE passthrough file
// never reach the daemon: the client's kernel then sends a SETATTR that
// changes nothing before the write, which the fuse engine turns into
// fs.SetKillSuidGid (see fuse's setattr).
//
// # Locks
//
// POSIX record locks are open file description (OFD) locks on one fd per
// (inode, lock owner), as virtiofsd does: locks of different owners
// conflict, locks of one owner merge, and they conflict with the host's own
// record locks. Flush of an owner drops that fd, and with it the owner's
// locks (close(2) drops a process's locks). The owners that locked through
// a handle and were not flushed through it — the client's OFD locks, whose
// owner is its open file — are dropped at Release: the client's kernel
// keeps no record of a FUSE file's locks and sends no unlock at close.
// GetLk reports the pid the holding owner last locked with (0 for a lock
// held by a host process). A waiting SetLk blocks in the host's own wait,
// F_OFD_SETLKW on a dup of the owner's fd or flock(2) without LOCK_NB, on
// the calling thread (no inode lock held meanwhile), so the host kernel
// queues it with every other waiter. An interrupt wakes it: the waiting
// thread is sent sys.WakeSignal with tgkill, which is installed without
// SA_RESTART, so the call returns and SetLk answers EINTR (blockingCall).
// The call holds its thread for as long as the lock is held elsewhere, so
// a transport makes it only off its workers (fs.FileSystem.SetLk).
// flock(2) locks are taken on the handle's fd.
//
// # Concurrency
//
// Every method may be called from any goroutine at once. The inode and
// handle tables are sharded; GetAttr, Read and Write take only a shard's
// read lock and an atomic reference, and allocate nothing; Lookup of a known
// inode takes one shard mutex and allocates nothing.
//
// # Host requirements
//
// Linux 5.6 or later (openat2; New checks), procfs at /proc, and for
// passthrough the kernel's FUSE passthrough (6.9+). chmod of an inode
// without a handle uses fchmodat2 (6.6+) and falls back to the /proc magic
// link. Without file handles every inode the client holds is an open fd:
// Go raises the soft RLIMIT_NOFILE to the hard limit at start, which then
// bounds how many inodes a client can keep looked up. File handles need
// name_to_handle_at and open_by_handle_at (allowed by any seccomp filter
// in front of this package) and CAP_DAC_READ_SEARCH.
//
// Imports: fs, internal/sys and golang.org/x/sys/unix; never a transport.
package passthrough
