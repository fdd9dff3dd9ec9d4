package fs

// Sink is where Read puts the bytes it returns. Its implementation belongs to
// the transport, which moves data straight from a file descriptor to the
// client: virtio-fs preadv's into the guest's writable descriptors, /dev/fuse
// splices file → pipe → device, 9P reads into its reply buffer.
//
// Calls append in order; a Read may call Append and ReadFrom any number of
// times and in any mix, up to Cap bytes in all.
type Sink interface {
	// Cap is the most bytes the reply may still take.
	Cap() int
	// Len is the number of bytes appended so far.
	Len() int
	// Append copies p to the reply and returns how much fit (min(len(p), Cap())).
	Append(p []byte) int
	// ReadFrom appends up to n bytes read from fd at offset off without a
	// copy through the Go heap, and returns the count (short or 0 at end
	// of file). fd must stay open until the method returns.
	ReadFrom(fd int, off int64, n int) (int, Errno)
}

// Source is the payload of a Write. Its implementation belongs to the
// transport: the bytes may sit in the receive buffer, in a pipe (spliced from
// /dev/fuse) or in guest memory, and may be consumed once.
type Source interface {
	// Len is the payload's size in bytes.
	Len() int
	// CopyTo copies the payload to p and returns the count (min(Len, len(p))).
	CopyTo(p []byte) int
	// WriteTo writes the whole payload to fd at offset off (pwritev from
	// guest memory, splice from the pipe) and returns the count written.
	WriteTo(fd int, off int64) (int, Errno)
}

// DirSink receives the entries of a ReadDir.
type DirSink interface {
	// Add adds e (and, for READDIRPLUS, its entry) and reports whether it
	// fit. When it returns false the entry was not added: the filesystem
	// stops, and for READDIRPLUS must not count a lookup for it.
	Add(e DirEntry, plus *Entry) bool
	// Plus reports whether the client wants entries with attributes
	// (READDIRPLUS). The filesystem then fills plus for every entry but "."
	// and "..", raising the lookup count of each entry Add accepted.
	Plus() bool
}

// FileSystem is what a filesystem implements. Embed Base to answer ENOSYS
// for what you leave out. See the package comment for ownership and
// concurrency rules; the comments here say what each method must do beyond
// its POSIX counterpart.
type FileSystem interface {
	// Init is called once before any other method, with what the client
	// and transport agreed on.
	Init(ctx *Context, info *InitInfo) Errno
	// Destroy is called once when the client goes away; no method is called
	// after it.
	Destroy()

	// Lookup finds name in directory parent. On success it raises the
	// lookup count of out.Ino; ENOENT or a negative entry (out.Ino == 0)
	// otherwise.
	Lookup(ctx *Context, parent Inode, name []byte, out *Entry) Errno
	// Forget lowers ino's lookup count by n; at zero the ID may be reused.
	Forget(ino Inode, n uint64)

	GetAttr(ctx *Context, ino Inode, fh Handle, hasHandle bool, out *AttrOut) Errno
	SetAttr(ctx *Context, ino Inode, in *SetAttrIn, out *AttrOut) Errno
	// Readlink copies the link target into buf and returns its length
	// (ENAMETOOLONG if it does not fit).
	Readlink(ctx *Context, ino Inode, buf []byte) (int, Errno)

	Symlink(ctx *Context, parent Inode, name, target []byte, out *Entry) Errno
	Mknod(ctx *Context, parent Inode, name []byte, mode, rdev uint32, out *Entry) Errno
	Mkdir(ctx *Context, parent Inode, name []byte, mode uint32, out *Entry) Errno
	Unlink(ctx *Context, parent Inode, name []byte) Errno
	Rmdir(ctx *Context, parent Inode, name []byte) Errno
	// Rename takes renameat2 flags (RENAME_NOREPLACE, RENAME_EXCHANGE,
	// RENAME_WHITEOUT).
	Rename(ctx *Context, parent Inode, name []byte, newParent Inode, newName []byte, flags uint32) Errno
	Link(ctx *Context, ino Inode, newParent Inode, newName []byte, out *Entry) Errno

	// Open takes open(2) flags in flags and Open* request bits in
	// openFlags.
	Open(ctx *Context, ino Inode, flags, openFlags uint32, out *OpenOut) Errno
	// Create creates and opens name; flags are open(2) flags.
	Create(ctx *Context, parent Inode, name []byte, mode, flags uint32, out *Entry, open *OpenOut) Errno
	// Tmpfile creates an unnamed file in parent, as O_TMPFILE does.
	Tmpfile(ctx *Context, parent Inode, mode, flags uint32, out *Entry, open *OpenOut) Errno
	// Read appends up to size bytes at off to dst.
	Read(ctx *Context, ino Inode, fh Handle, off int64, size uint32, dst Sink) Errno
	// Write writes src at off and returns the count; flags holds
	// WriteKillSuidGid when the filesystem must clear suid/sgid.
	Write(ctx *Context, ino Inode, fh Handle, off int64, src Source, flags uint32) (uint32, Errno)
	Flush(ctx *Context, ino Inode, fh Handle, lockOwner uint64) Errno
	Fsync(ctx *Context, ino Inode, fh Handle, datasync bool) Errno
	// Release closes a handle from Open, Create or Tmpfile. It cannot fail
	// from the client's view; the errno is for logs.
	Release(ctx *Context, ino Inode, fh Handle, flags uint32) Errno
	Fallocate(ctx *Context, ino Inode, fh Handle, off, length uint64, mode uint32) Errno
	// Lseek implements SEEK_DATA and SEEK_HOLE (the client handles the rest).
	Lseek(ctx *Context, ino Inode, fh Handle, off int64, whence uint32) (int64, Errno)
	CopyFileRange(ctx *Context, inIno Inode, inFh Handle, inOff int64, outIno Inode, outFh Handle, outOff int64, length uint64, flags uint64) (uint64, Errno)

	OpenDir(ctx *Context, ino Inode, flags uint32, out *OpenOut) Errno
	// ReadDir adds entries starting after cookie off (0 = from the start)
	// until dst is full or the directory ends.
	ReadDir(ctx *Context, ino Inode, fh Handle, off uint64, dst DirSink) Errno
	ReleaseDir(ctx *Context, ino Inode, fh Handle) Errno
	FsyncDir(ctx *Context, ino Inode, fh Handle, datasync bool) Errno

	StatFs(ctx *Context, ino Inode, out *StatFs) Errno
	Access(ctx *Context, ino Inode, mask uint32) Errno
	Statx(ctx *Context, ino Inode, fh Handle, hasHandle bool, flags, mask uint32, out *StatxOut) Errno
	SyncFs(ctx *Context, ino Inode) Errno

	// SetXattr takes setxattr(2) flags (XATTR_CREATE, XATTR_REPLACE).
	SetXattr(ctx *Context, ino Inode, name, value []byte, flags uint32) Errno
	// GetXattr copies the value into dst and returns its size; with
	// len(dst) == 0 it returns the size only; ERANGE if dst is too small.
	GetXattr(ctx *Context, ino Inode, name []byte, dst []byte) (int, Errno)
	// ListXattr is GetXattr for the NUL-separated list of names.
	ListXattr(ctx *Context, ino Inode, dst []byte) (int, Errno)
	RemoveXattr(ctx *Context, ino Inode, name []byte) Errno

	// GetLk reports the first lock that would conflict with lk, or lk with
	// Type F_UNLCK if none. owner identifies the lock owner.
	GetLk(ctx *Context, ino Inode, fh Handle, owner uint64, lk *Lock, out *Lock) Errno
	// SetLk takes or releases lk for owner; wait blocks until it can be
	// taken or the request is interrupted (EINTR: wake through
	// ctx.OnInterrupt); flock selects BSD flock semantics over POSIX record
	// locks. A transport calls it with wait only off its workers (see
	// DESIGN.md, Concurrency): the call may block for as long as another
	// client holds the lock.
	SetLk(ctx *Context, ino Inode, fh Handle, owner uint64, lk *Lock, wait, flock bool) Errno
}

// Poller is implemented by filesystems whose open files can become ready
// for I/O after poll(2) asks (a FIFO-like or event file). Without it the
// client takes every file as always ready (the kernel's default mask).
type Poller interface {
	// Poll reports which of events (the POLLIN, POLLOUT… bits of
	// poll(2)) the open handle fh is ready for now. With schedule set a
	// waiter sleeps if none is: the filesystem keeps kh and, once fh
	// becomes ready, wakes it with the session's poll notification for kh
	// (fastfs.Mounted.NotifyPoll), from any goroutine but not from this
	// call; the client then polls again. A kh stays meaningful until fh's
	// Release.
	Poll(ctx *Context, ino Inode, fh Handle, kh uint64, schedule bool, events uint32) (revents uint32, e Errno)
}

// Mapper is implemented by filesystems that let a virtio-fs client map file
// ranges into its DAX window. The transport calls it for FUSE_SETUPMAPPING
// to learn which fd backs the range; it performs the mapping itself.
type Mapper interface {
	// MapFd returns the fd backing an open handle (or the inode if fh is
	// not valid) for a DAX mapping with the given access (writable). The fd
	// stays owned by the filesystem and must stay open until Release.
	MapFd(ctx *Context, ino Inode, fh Handle, writable bool) (int, Errno)
}
