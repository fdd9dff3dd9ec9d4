// Package nodefs is a tree of nodes served as an fs.FileSystem: the author
// writes a Go type per kind of file or directory, embeds Inode in it, and
// gives it the methods of the capabilities it has (NodeLookuper,
// NodeReader, NodeMkdirer, …). The Tree does the bookkeeping
// fs.FileSystem leaves to a filesystem: it gives each node its inode ID
// when a client first sees it, counts the client's lookups and forgets,
// keeps open handles, fills in IDs, generations and cache timeouts, and
// answers every request a node has no method for.
//
//	type file struct{ nodefs.Inode }          // a Read method makes it readable
//	type dir struct{ nodefs.Inode }           // a Lookup method makes it a directory
//	m, err := fastfs.Mount(ctx, nodefs.New(&dir{}, nil), "/mnt", nil)
//
// File and Dir are ready-made read-only nodes (fixed contents, fixed
// entries); examples/hellofs is a Dir holding one File. fs/memfs is a
// complete read-write filesystem built on the package.
//
// # Inode IDs and lookups
//
// A node gets its ID the first time a reply names it (LOOKUP, MKDIR,
// CREATE, READDIRPLUS, …, or a plain READDIR's d_ino), from a 64-bit
// counter: IDs are never reused, so a client holding a stale ID gets ESTALE
// and never another node, and every entry carries the same Generation. The
// ID is also the node's st_ino (the Tree overwrites Attr.Ino), so hard
// links show one inode number. A node the client has looked up and not yet
// forgotten stays reachable by its ID even after the author has unlinked
// it: open-but-unlinked files keep working. When its lookup count falls
// to zero the Tree drops it from its table, and the Go garbage collector
// does the rest once the author drops it too; if it is named again it
// comes back under the same ID. The root is ID 1 and never forgotten.
//
// One Tree may be served over several doors at once (examples/memfs
// serves one over FUSE, virtio-fs and 9P): lookup counts add up across
// clients, and each client forgets only what it was given. A client that
// goes away without forgetting (a FUSE mount torn down, a guest that
// reboots) leaves its counts behind: those nodes stay reachable by ID,
// and in memory, for the Tree's life.
//
// # What a node without a method gets
//
//   - Getattr: a directory (mode 0555) if it has Lookup, else an empty
//     read-only file (0444).
//   - Lookup: ENOENT (or a negative entry, with Options.NegativeTimeout).
//   - Open, Opendir: success with a nil FileHandle; Release, Flush, Fsync,
//     SyncFs: success (nothing to do).
//   - Read, Write: EINVAL (read(2)'s "not suitable for reading");
//     Readlink: EINVAL (not a symlink); Readdir: an empty directory.
//   - Setattr, Mkdir, Mknod, Create, Symlink, Link, Unlink, Rmdir, Rename:
//     EPERM.
//   - Xattrs: getxattr and removexattr ENODATA, listxattr empty, setxattr
//     EOPNOTSUPP — per node, so one node without xattrs does not turn them
//     off for the whole mount (as ENOSYS would).
//   - Fallocate: EOPNOTSUPP. Statfs: the root's, else an empty filesystem.
//   - ENOSYS only where the client then falls back to something correct
//     and remembers it: Lseek (the file is all data), CopyFileRange (read
//     and write), Statx (GETATTR), Access (the client checks the mode
//     bits), Tmpfile (without NodeTmpfiler: EOPNOTSUPP to the caller), GetLk/SetLk (a FUSE
//     client keeps locks itself unless fuse.Options.Locks is set).
//
// # Permissions
//
// The Tree checks no permissions: every door checks them from the
// attributes the nodes report before the request reaches the tree —
// fastfs.Mount always mounts with default_permissions, a virtio-fs guest
// always mounts so, and the 9P server checks for untrusted connections
// (package p9, perm.go). A node only carries out what it is asked, as the
// caller in ctx (owner of what it creates).
//
// # Concurrency and allocation
//
// Tree's methods may be called from any number of goroutines; a node's
// methods are called concurrently too, for the same node, and do their
// own locking. Lookup counting, ID assignment and Forget are serialized
// by the Tree's lock, so a FORGET racing a LOOKUP of the same node never
// drops a node the client still holds. Serving GETATTR, LOOKUP of a node
// the client already holds, and READ allocates nothing in the Tree
// (TestAllocs drives them through the fuse engine); READDIR allocates one
// DirList per request.
//
// Byte slices a node is handed (names, targets, xattr values) are valid
// only during the call, as in package fs.
//
// nodefs imports fs and nothing of a transport.
package nodefs
