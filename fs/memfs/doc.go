// Package memfs is an in-memory filesystem built on fs/nodefs: regular
// files (sparse, in 4 KiB pages), directories, symlinks, FIFOs, sockets and
// device nodes, hard links, O_TMPFILE, extended attributes (user, trusted
// and security namespaces), POSIX record, OFD and flock locks (with
// blocking waits that an interrupt ends), fallocate, SEEK_DATA/SEEK_HOLE,
// and relatime access times. Where Linux filesystems differ, it answers as
// tmpfs does (no FALLOC_FL_ZERO_RANGE, files up to 2^63-1 bytes).
//
// It passes fastfs's conformance suite (internal/posixtest) through
// /dev/fuse (TestPosixFUSE) and, served by examples/memfs, through
// virtio-fs and 9P in a guest (internal/vmtest TestGuestMemfsPosix; over
// 9P without what 9P2000.L has no message for).
//
//	fsys := memfs.New(nil)
//	m, err := fastfs.Mount(ctx, fsys, "/mnt", nil)
//
// # Permissions
//
// memfs checks no permissions: it relies on the door to check them from
// the mode, owner and group it reports, before a request reaches it —
// fastfs.Mount mounts with default_permissions, a virtio-fs guest always
// mounts so, and the 9P server checks for untrusted connections (see
// package p9). Served by a door that does not check (a FUSE mount without
// default_permissions), every caller may do anything. What memfs does
// itself is what the kernel leaves to a filesystem: new nodes belong to
// the caller (the directory's group, and set-group-ID for a directory, in
// a set-group-ID directory); writes, truncates and opens with O_TRUNC
// clear set-user-ID and set-group-ID when the client asks
// (HANDLE_KILLPRIV_V2); chown clears them as Linux does.
//
// # Locks
//
// Over FUSE the client's kernel keeps locks itself unless the mount is
// served with fuse.Options.Locks; then, and always over 9P, memfs keeps
// them: a POSIX lock goes at its owner's close (Flush), an OFD or flock
// lock when the open it was taken through is released.
//
// # Limits
//
// Options.MaxBytes caps the file data (ENOSPC past it); a node's xattrs at most 1 MiB in all (ENOSPC), one open
// remembers at most 256 lock owners (ENOLCK). The data of a file with no
// name left is freed when its last open ends.
//
// # Concurrency
//
// One lock (FS.ns) guards the namespace, taken shared by lookups and
// listings and exclusively by every change of a directory's entries; each
// node's own mutex guards its attributes, data, xattrs and locks. GETATTR
// and READ take only the node's mutex and allocate nothing.
//
// memfs imports fs and fs/nodefs, nothing of a transport.
package memfs
