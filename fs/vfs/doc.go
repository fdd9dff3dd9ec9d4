// Package vfs serves several fs.FileSystems under one root: a read-only
// pseudo directory whose entries are the mounted shares, each the root of
// one backend. Shares are mounted and unmounted while the session runs
// (VFS.Mount, VFS.Unmount); the VFS is itself an fs.FileSystem, served
// like any other over /dev/fuse, virtio-fs or 9P.
//
//	v := vfs.New(vfs.Options{})
//	a, _ := passthrough.New("/srv/a", passthrough.Options{})
//	v.Mount("a", a)          // appears as <mountpoint>/a
//	fastfs.Mount(ctx, v, "/mnt", nil)
//	v.Mount("b", otherFS)    // added under the running session
//	v.Unmount(ctx, "a")      // gone: its inodes answer ESTALE
//
// # Inode space
//
// A client-visible inode ID is split in three fields:
//
//	bits 63..56  slot        1..255 (0: the pseudo root, whose only ID is 1)
//	bits 55..40  generation  of the slot: bumped each time a share takes it
//	bits 39..0   the backend's own inode ID (its RootInode is the share's root)
//
// so two backends' IDs never collide, and an ID from a share that was
// unmounted is never confused with one of a later share in the same slot:
// it answers ESTALE (the kernel then looks the path up again). A backend
// ID of 2^40 or more cannot be represented: the VFS forgets it at once and
// answers EOVERFLOW. Attribute inode numbers (st_ino, d_ino) are the
// backend's with the slot in the top 8 bits, so that tools which pair
// (st_dev, st_ino) to find hard links never pair files of two shares (a
// host inode number of 2^56 or more loses its top bits).
//
// File handles are the backend's own, unchanged: every request that
// carries a handle also names its inode, and the inode picks the backend.
// A handle of one backend sent with another's inode reaches the wrong
// backend, which refuses a handle it does not know (EBADF), as it would
// any forged handle.
//
// # Lookups and forgets
//
// A lookup of a share's name in the pseudo root returns the share's root
// and is counted by the VFS (a backend's root is never looked up nor
// forgotten); every other entry a backend returns raises that backend's
// count, and FORGET goes to the backend whose slot and generation the ID
// names, or is dropped if that share is gone. ShareInfo.Lookups reports
// the count the client holds per share.
//
// ".." of a share's root is the pseudo root. A rename, link or
// copy_file_range between two shares fails with EXDEV (the kernel falls
// back to a copy for copy_file_range; mv copies); the pseudo root is
// read-only (EPERM for anything that would change it).
//
// # Capabilities
//
// The kernel remembers ENOSYS for many operations (OPEN, FLUSH, FSYNC, the
// xattr calls, FALLOCATE, …) and stops sending them for the whole mount, so
// one backend that lacks an operation must not switch it off for the
// others: an ENOSYS from a backend is answered as the kernel would have
// done after remembering it (Flush, Fsync, FsyncDir, SyncFs and Access
// succeed; Open and OpenDir succeed with handle 0; a rename with flags
// answers EINVAL; locks ENOLCK; SEEK_DATA and SEEK_HOLE see the whole
// file as data, as generic_file_llseek does; anything else EOPNOTSUPP).
// STATFS goes to the backend of the inode it names; SYNCFS (sent for the
// root) to every share.
//
// # Mounting and unmounting
//
// Mount validates the name (not empty, not "." or "..", no '/' or NUL, at
// most 255 bytes), calls the backend's Init if the session has started,
// and publishes it. Unmount removes the name at once (a new share may take
// it), refuses every later request on the share's inodes with ESTALE, waits
// for the requests already inside the backend to return, then calls its
// Destroy and, if it has one, its Close method: the VFS owns a backend
// from a successful Mount on. A request blocked inside a backend for long
// (a lock wait) delays only that; Unmount returns when its context ends,
// and the backend is destroyed when the last request leaves.
//
// # Cost
//
// A routed request costs two atomic additions on its share's slot (enter
// and leave) and allocates nothing; READDIR and READDIRPLUS take a pooled
// wrapper around the transport's DirSink.
//
// # Import rules
//
// vfs imports fs only: no transport, no engine, no x/sys/unix.
package vfs
