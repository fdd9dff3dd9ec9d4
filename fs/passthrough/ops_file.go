package passthrough

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// openFlags turns the client's open(2) flags into the flags the host file
// is opened with.
func (f *FS) hostOpenFlags(flags uint32) (int, fs.Errno) {
	fl := int(flags)
	acc := fl & unix.O_ACCMODE
	if f.opts.ReadOnly && (acc != unix.O_RDONLY || fl&unix.O_TRUNC != 0) {
		return 0, syscall.EROFS
	}
	if f.writeback.Load() {
		// With the writeback cache the kernel reads pages to fill partial
		// writes, even on write-only opens, and it appends by itself (it
		// knows the size and sends explicit offsets): as virtiofsd does,
		// open read-write and without O_APPEND.
		if acc == unix.O_WRONLY {
			fl = fl&^unix.O_ACCMODE | unix.O_RDWR
		}
		fl &^= unix.O_APPEND
	}
	// Creation is Create's and Tmpfile's business, O_PATH would make a
	// handle no I/O works on, and O_NOFOLLOW would refuse the
	// /proc/self/fd magic link every reopen goes through.
	fl &^= unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY | unix.O_NOFOLLOW | unix.O_PATH | (unix.O_TMPFILE &^ unix.O_DIRECTORY)
	if !f.opts.DirectIO {
		fl &^= unix.O_DIRECT
	}
	return fl, fs.OK
}

// fileOpenOut registers h and fills the answer to Open, Create and
// Tmpfile.
func (f *FS) fileOpenOut(h *handle, out *fs.OpenOut) {
	out.Flags = f.openFlags
	if f.noFlush.Load() {
		out.Flags |= fs.OpenNoFlush
	}
	if f.opts.Passthrough && h.in.typ == unix.S_IFREG {
		// With ptPath the inode's own O_PATH fd is the passthrough file
		// (no open, no close; it stays open while h holds the inode),
		// else the inode's shared one, referenced by h.
		fd, ok := h.in.fd, f.ptPath
		if !ok {
			fd, ok = f.getPassthroughFd(h)
			h.passthrough = ok
		}
		if ok {
			// The client does I/O on the backing file itself; direct
			// I/O would only get in the way of that.
			out.Flags = out.Flags&^fs.OpenDirectIO | fs.OpenPassthrough
			out.PassthroughFd = fd
		}
	}
	out.Handle = f.handles.add(h)
}

// getPassthroughFd returns the inode's shared passthrough file, opening it
// for the first passthrough handle, for kernels that refuse an O_PATH fd
// as one (before 6.12; FS.ptPath). The kernel allows one backing file per
// inode at a time (fs/fuse/iomode.c: an open naming another fails with
// EIO), so every passthrough open of an inode hands out the same fd. It
// does no I/O: for each client open the kernel opens a backing file of its
// own on that fd's path, with that open's flags and the credentials
// FUSE_DEV_IOC_BACKING_OPEN was called with (fuse_passthrough_open,
// backing_file_open), so the registered file only names the inode, and a
// read-only one serves write opens too. So it is opened O_RDONLY (and
// never waits: O_NONBLOCK): a read-write one would break a read lease another
// host process holds on the file (its O_NONBLOCK open fails with
// EWOULDBLOCK after the kernel has started the break) where a native
// read-only open leaves the lease alone, and would keep the file open for
// writing as long as any passthrough handle is open (refusing read leases
// and exec with ETXTBSY on the host). If that open fails (a write lease
// taken since the handle's own open, a daemon that may not read the
// file), the registered file is a dup of the handle's fd, whose open got
// past leases and permissions already: it then keeps that handle's open
// file (its access mode) until the inode's last passthrough handle goes.
// ok is false if no fd could be had; the open is then served without
// passthrough.
func (f *FS) getPassthroughFd(h *handle) (fd int, ok bool) {
	in := h.in
	in.ptMu.Lock()
	defer in.ptMu.Unlock()
	if in.ptFd < 0 {
		var err error
		// O_NONBLOCK: a lease in the way fails the open (EWOULDBLOCK)
		// instead of making it wait. It stays set, as no I/O is done on
		// this file, so its status flags matter to nothing (openRegular
		// would clear it with one more system call).
		if in.ptFd, err = f.openProc(in.fd, unix.O_RDONLY|unix.O_NONBLOCK); err != nil {
			if in.ptFd, err = unix.FcntlInt(uintptr(h.fd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
				in.ptFd = -1
				return -1, false
			}
		}
	}
	in.ptRefs++
	return in.ptFd, true
}

// putPassthroughFd drops a handle's reference on the shared passthrough
// file and closes it with the last one.
func putPassthroughFd(in *inode) {
	in.ptMu.Lock()
	if in.ptRefs--; in.ptRefs == 0 && in.ptFd >= 0 {
		unix.Close(in.ptFd)
		in.ptFd = -1
	}
	in.ptMu.Unlock()
}

// Open opens the inode for I/O.
func (f *FS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	fl, e := f.hostOpenFlags(flags)
	if e != 0 {
		return e
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	if e := f.budget.takeOpen(ctx.Uid); e != 0 {
		f.inodes.put(in)
		return e
	}
	fd, e := f.openForIO(ctx, in, fl)
	if e != 0 {
		f.budget.give(ctx.Uid)
		f.inodes.put(in)
		return e
	}
	if openFlags&fs.OpenKillSuidGid != 0 && fl&unix.O_TRUNC != 0 {
		if e := killSuidGid(ctx, fd); e != 0 {
			unix.Close(fd)
			f.budget.give(ctx.Uid)
			f.inodes.put(in)
			return e
		}
	}
	// h takes over the reference on in and the budget's count.
	h := &handle{fd: fd, in: in, flags: fl, uid: ctx.Uid}
	f.fileOpenOut(h, out)
	return fs.OK
}

// Create creates (or opens, without O_EXCL) name in parent as the caller
// and opens it. The name is resolved beneath parent and never followed if
// it is a symlink (ELOOP).
//
// The client sends CREATE after it found no such name, so the creation is
// tried first (O_EXCL), with the rights asCaller gives: the client checked
// that the caller may write the directory. If the name exists after all (it
// appeared after the client's lookup) and the client did not ask for
// O_EXCL, the existing file is opened with the host checking the caller's
// own fsuid and fsgid (strictPerms), as an open of an existing file must be
// checked: the client never checked this one. The host then also clears
// set-user-ID and set-group-ID on O_TRUNC as it would for the caller. An
// existing name is opened only if it is a regular file (EACCES for a
// device node, FIFO or socket; EISDIR, ELOOP as open(2) for a directory or
// symlink).
func (f *FS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if e := checkNewName(name, syscall.EISDIR, syscall.EISDIR); e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	fl, e := f.hostOpenFlags(flags)
	if e != 0 {
		return e
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	// Counted before anything is created: a caller over its budget
	// leaves no file behind.
	if e := f.budget.takeOpen(ctx.Uid); e != 0 {
		return e
	}
	fd := -1
	created := false
	e = f.asCaller(ctx, func() error {
		var e fs.Errno
		fd, e = openBeneath(dir, name, fl|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, mode&07777)
		if e == 0 {
			created = true
			return nil
		}
		if e != syscall.EEXIST || flags&unix.O_EXCL != 0 {
			return e
		}
		if err := f.strictPerms(ctx); err != nil {
			return err
		}
		// Only a regular file is opened: never a device node (a client
		// that made one with MKNOD would get a handle on the host's
		// device) nor a FIFO (open(2) would block this worker until a
		// writer came). The name is pinned with O_PATH, its type checked,
		// and that very inode opened through /proc/self/fd, where the host
		// checks the caller's permission.
		pfd, e := openBeneath(dir, name, unix.O_PATH|unix.O_NOFOLLOW, 0)
		if e != 0 {
			return e
		}
		defer unix.Close(pfd)
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
		case unix.S_IFDIR:
			return syscall.EISDIR // as open(2) with O_CREAT
		case unix.S_IFLNK:
			return syscall.ELOOP // as open(2) with O_NOFOLLOW
		default:
			return syscall.EACCES // a special file: the client opens those itself
		}
		var err error
		fd, err = f.openRegular(ctx, pfd, fl)
		return err
	})
	if e != 0 {
		f.budget.give(ctx.Uid)
		return e
	}
	if created {
		if e := f.fixMode(ctx, fd, mode); e != 0 {
			unix.Close(fd)
			f.budget.give(ctx.Uid)
			return e
		}
		// The label is the new file's: an existing file opened
		// instead keeps its own.
		if e := f.setLabel(ctx, fd, unix.S_IFREG); e != 0 {
			unix.Close(fd)
			f.budget.give(ctx.Uid)
			removeNew(dir, name, unix.S_IFREG)
			return e
		}
	}
	return f.openedNew(ctx.Uid, fd, fl, out, open)
}

// openedNew registers a file just created and opened as fd (Create,
// Tmpfile): it adds the inode (an O_PATH reopen of fd, so exactly the file
// opened) and a handle owning fd and the count uid took in the budget
// (given back here if it fails).
func (f *FS) openedNew(uid uint32, fd, fl int, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	pfd, err := unix.Openat(f.procFd, procName(fd), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		f.budget.give(uid)
		return errno(err)
	}
	if e := f.addFd(pfd, out); e != 0 {
		unix.Close(fd)
		f.budget.give(uid)
		return e
	}
	in := f.inodes.get(out.Ino)
	if in == nil { // forgotten by a confused client already
		unix.Close(fd)
		f.budget.give(uid)
		return syscall.ESTALE
	}
	h := &handle{fd: fd, in: in, flags: fl, uid: uid}
	f.fileOpenOut(h, open)
	return fs.OK
}

// Tmpfile creates an unnamed regular file in parent (O_TMPFILE) as the
// caller and opens it.
func (f *FS) Tmpfile(ctx *fs.Context, parent fs.Inode, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if e := f.readOnly(); e != 0 {
		return e
	}
	fl, e := f.hostOpenFlags(flags &^ unix.O_TMPFILE)
	fl &^= unix.O_DIRECTORY
	if e != 0 {
		return e
	}
	if fl&unix.O_ACCMODE == unix.O_RDONLY {
		return syscall.EINVAL // as open(2): O_TMPFILE needs write access
	}
	if flags&unix.O_EXCL != 0 {
		fl |= unix.O_EXCL // never linkable
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	if e := f.budget.takeOpen(ctx.Uid); e != 0 {
		return e
	}
	fd := -1
	e = f.asCaller(ctx, func() error {
		var err error
		fd, err = unix.Openat(dir.fd, ".", fl|unix.O_TMPFILE|unix.O_CLOEXEC, mode&07777)
		return err
	})
	if e != 0 {
		f.budget.give(ctx.Uid)
		return e
	}
	if e := f.fixMode(ctx, fd, mode); e != 0 {
		unix.Close(fd)
		f.budget.give(ctx.Uid)
		return e
	}
	if e := f.setLabel(ctx, fd, unix.S_IFREG); e != 0 {
		unix.Close(fd) // the unnamed file goes with its last fd
		f.budget.give(ctx.Uid)
		return e
	}
	return f.openedNew(ctx.Uid, fd, fl, out, open)
}

// Read hands the handle's fd to dst, which moves the bytes to the client
// without a copy. One ReadFrom: a short count means end of file, as
// pread(2) on a regular file. Allocation-free.
func (f *FS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	if off < 0 {
		return syscall.EINVAL
	}
	h := f.handles.get(fh)
	if h == nil {
		return syscall.EBADF
	}
	n := int(size)
	if c := dst.Cap(); n > c {
		n = c
	}
	var e fs.Errno
	if n > 0 {
		_, e = dst.ReadFrom(h.fd, off, n)
	}
	f.putHandle(h)
	return e
}

// Write drains src into the handle's fd at off. Allocation-free.
func (f *FS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	h := f.handles.get(fh)
	if h == nil {
		return 0, syscall.EBADF
	}
	defer f.putHandle(h)
	if flags&fs.WriteKillSuidGid != 0 {
		if e := killSuidGid(ctx, h.fd); e != 0 {
			return 0, e
		}
	}
	n, e := src.WriteTo(h.fd, off)
	if n < 0 {
		n = 0
	}
	return uint32(n), e
}

// Flush is called at every close(2) of the client's file: it closes a
// duplicate of the fd (what close-to-open filesystems act on) and drops
// lockOwner's POSIX locks on the inode, as closing any fd of a file drops
// the closing process's locks. On a host filesystem whose files have no
// flush method (FS.flushless) the dup and its close are skipped, two
// system calls per close(2): there the kernel's close of a dup does
// nothing but drop the closing process's own POSIX locks and dnotify
// marks on the file, and the daemon has neither (its locks are OFD
// locks, its watches fanotify).
func (f *FS) Flush(ctx *fs.Context, ino fs.Inode, fh fs.Handle, lockOwner uint64) fs.Errno {
	h, e := f.getHandle(fh)
	if e != 0 {
		return e
	}
	defer f.putHandle(h)
	f.dropLockOwner(h.in, lockOwner)
	h.forgetLockOwner(lockOwner)
	if f.flushless && h.in.key.dev == f.root.key.dev {
		return fs.OK
	}
	nfd, err := unix.Dup(h.fd)
	if err != nil {
		return errno(err)
	}
	return errno(unix.Close(nfd))
}

// Fsync is fsync(2) or fdatasync(2) on the handle.
func (f *FS) Fsync(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	h, e := f.getHandle(fh)
	if e != 0 {
		return e
	}
	defer f.putHandle(h)
	if datasync {
		return errno(ignoringEINTR(func() error { return unix.Fdatasync(h.fd) }))
	}
	return errno(ignoringEINTR(func() error { return unix.Fsync(h.fd) }))
}

// Release closes the handle (when the last request using it is done).
func (f *FS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	h := f.handles.remove(fh)
	if h == nil {
		return syscall.EBADF
	}
	f.putHandle(h)
	return fs.OK
}

// Fallocate is fallocate(2) on the handle (all modes: keep size, punch
// hole, zero range, …; the host says which it supports).
func (f *FS) Fallocate(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off, length uint64, mode uint32) fs.Errno {
	if off > 1<<63-1 || length > 1<<63-1 {
		return syscall.EINVAL
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	h, e := f.getHandle(fh)
	if e != 0 {
		return e
	}
	defer f.putHandle(h)
	return errno(ignoringEINTR(func() error { return unix.Fallocate(h.fd, mode, int64(off), int64(length)) }))
}

// Lseek answers SEEK_DATA and SEEK_HOLE (and SET/CUR/END, harmlessly: the
// handle's position is used by nothing else).
func (f *FS) Lseek(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, whence uint32) (int64, fs.Errno) {
	if whence > unix.SEEK_HOLE {
		return 0, syscall.EINVAL
	}
	h, e := f.getHandle(fh)
	if e != 0 {
		return 0, e
	}
	defer f.putHandle(h)
	r, err := unix.Seek(h.fd, off, int(whence))
	if err != nil {
		return 0, errno(err)
	}
	return r, fs.OK
}

// CopyFileRange is copy_file_range(2) between two handles.
func (f *FS) CopyFileRange(ctx *fs.Context, inIno fs.Inode, inFh fs.Handle, inOff int64, outIno fs.Inode, outFh fs.Handle, outOff int64, length uint64, flags uint64) (uint64, fs.Errno) {
	if flags != 0 || inOff < 0 || outOff < 0 {
		return 0, syscall.EINVAL
	}
	if e := f.readOnly(); e != 0 {
		return 0, e
	}
	hi, e := f.getHandle(inFh)
	if e != 0 {
		return 0, e
	}
	defer f.putHandle(hi)
	ho, e := f.getHandle(outFh)
	if e != 0 {
		return 0, e
	}
	defer f.putHandle(ho)
	const maxLen = 1 << 30 // the kernel caps one call lower anyway (MAX_RW_COUNT)
	if length > maxLen {
		length = maxLen
	}
	n, err := unix.CopyFileRange(hi.fd, &inOff, ho.fd, &outOff, int(length), 0)
	if err != nil {
		return 0, errno(err)
	}
	return uint64(n), fs.OK
}

// MapFd returns the handle's fd for a DAX mapping. The fd stays owned by
// the FS and open until Release. Without a valid handle there is no fd to
// map (inode fds are O_PATH): EBADF.
func (f *FS) MapFd(ctx *fs.Context, ino fs.Inode, fh fs.Handle, writable bool) (int, fs.Errno) {
	h, e := f.getHandle(fh)
	if e != 0 {
		return -1, e
	}
	defer f.putHandle(h)
	if h.in.typ != unix.S_IFREG {
		return -1, syscall.ENODEV
	}
	if writable && h.flags&unix.O_ACCMODE == unix.O_RDONLY {
		return -1, syscall.EACCES
	}
	return h.fd, fs.OK
}

// hostNoFlush reports whether the filesystem of fd is one whose regular
// files have no flush method in Linux (tmpfs: shmem_file_operations;
// ext2, ext3 and ext4, which share a magic number; xfs; btrfs), so that
// close(2) of an fd of theirs calls none. Any other filesystem, or an
// fstatfs error, is assumed to have one.
func hostNoFlush(fd int) bool {
	var s unix.Statfs_t
	if unix.Fstatfs(fd, &s) != nil {
		return false
	}
	switch s.Type {
	case unix.TMPFS_MAGIC, unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
		return true
	}
	return false
}

// kernelAtLeast reports whether the running kernel's release (uname) is at
// least major.minor; false if it cannot be read.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var maj, min int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}
