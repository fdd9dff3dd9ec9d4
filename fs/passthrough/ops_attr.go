package passthrough

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// GetAttr stats the inode (or the handle's fd). Allocation-free.
func (f *FS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	var st unix.Stat_t
	if hasHandle {
		if h := f.handles.get(fh); h != nil {
			err := unix.Fstat(h.fd, &st)
			f.putHandle(h)
			if err != nil {
				return errno(err)
			}
			out.Timeout = f.attrTimeout
			fillAttr(&out.Attr, &st)
			return fs.OK
		}
		// A stale handle: fall back to the inode, as the kernel may send
		// the last handle of a file it has just released.
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	// fstat works on O_PATH fds (Linux ≥ 3.6) and never follows a symlink.
	err := unix.Fstat(in.fd, &st)
	f.inodes.put(in)
	if err != nil {
		return errno(err)
	}
	out.Timeout = f.attrTimeout
	fillAttr(&out.Attr, &st)
	return fs.OK
}

// killSuidGid clears S_ISUID and S_ISGID on fd (any fd of the inode; an
// O_PATH fd goes through fchmodat2 AT_EMPTY_PATH) as the kernel's
// setattr_should_drop_suidgid does for a caller without CAP_FSETID, which
// the client checked before asking: S_ISUID always; S_ISGID if the file is
// group-executable, or if the caller is not in the file's group. Only the
// caller's primary group is known here (a member through a supplementary
// group loses a non-group-executable S_ISGID it would keep natively; see
// docs/posix-parity.md). The daemon has CAP_FSETID, so the host kernel
// would not do it for us.
func killSuidGid(ctx *fs.Context, fd int) fs.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errno(err)
	}
	mode := st.Mode & 07777
	newMode := mode &^ unix.S_ISUID
	if mode&unix.S_IXGRP != 0 || (ctx != nil && ctx.Uid != 0 && ctx.Gid != st.Gid) {
		newMode &^= unix.S_ISGID
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || newMode == mode {
		return fs.OK
	}
	return errno(fchmod(fd, newMode))
}

// fchmod changes the mode of the inode fd refers to, also for an O_PATH
// fd: fchmodat2(AT_EMPTY_PATH) (Linux ≥ 6.6), else chmod of its
// /proc/self/fd magic link, which lands on the inode itself. Preconditions:
// fd is not a symlink's (chmod would follow it).
func fchmod(fd int, mode uint32) error {
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	if err == syscall.EOPNOTSUPP || err == syscall.ENOSYS {
		err = chmodProc(fd, mode)
	}
	return err
}

// chmodProc is fchmod's fallback for kernels without fchmodat2.
func chmodProc(fd int, mode uint32) error {
	var p procPath
	p.set(fd)
	return unix.Chmod(p.String(), mode)
}

// SetAttr changes owner, mode, size and times, in that order, as the
// fields in.Valid names, then stats the result.
func (f *FS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	v := in.Valid
	if v&(fs.SetMode|fs.SetUid|fs.SetGid|fs.SetSize|fs.SetAtime|fs.SetMtime|fs.SetAtimeNow|fs.SetMtimeNow|fs.SetKillSuidGid) != 0 {
		if e := f.readOnly(); e != 0 {
			return e
		}
	}
	n, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	defer f.inodes.put(n)
	if v&fs.SetMode != 0 && n.isSymlink() {
		return syscall.EOPNOTSUPP // as fchmodat(AT_SYMLINK_NOFOLLOW), before any change
	}
	var h *handle
	if v&fs.SetHandle != 0 {
		if h, e = f.getHandle(in.Handle); e != 0 {
			return e
		}
		defer f.putHandle(h)
	}
	// fd is the fd every change goes through: the handle's, or the O_PATH
	// fd (all calls below accept one with AT_EMPTY_PATH).
	fd := n.fd
	if h != nil {
		fd = h.fd
	}
	// A truncate without a handle goes through a write-only open of the
	// file, made before any change: the open may have to break a host
	// lease (openRegular), and a NoWait request that would wait must
	// return fs.WouldWait having changed nothing.
	wfd := -1
	if v&fs.SetSize != 0 && h == nil && !n.isDir() && in.Size <= 1<<63-1 {
		if wfd, e = f.openForIO(ctx, n, unix.O_WRONLY); e != 0 {
			return e
		}
		defer unix.Close(wfd)
	}

	if v&(fs.SetUid|fs.SetGid) != 0 {
		uid, gid := -1, -1
		if v&fs.SetUid != 0 {
			uid = int(in.Uid)
		}
		if v&fs.SetGid != 0 {
			gid = int(in.Gid)
		}
		// The host clears suid on chown of a non-directory whatever the
		// caller's capabilities, as KILLPRIV_V2 asks. Owner first, then
		// mode: a request that sets both gets exactly its mode.
		if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return errno(err)
		}
	}
	if v&fs.SetMode != 0 {
		if err := fchmod(fd, in.Mode&07777); err != nil {
			return errno(err)
		}
	}
	if v&fs.SetSize != 0 {
		if e := f.truncate(ctx, n, h, wfd, in.Size, v&fs.SetKillSuidGid != 0); e != 0 {
			return e
		}
	} else if v&fs.SetKillSuidGid != 0 {
		if e := killSuidGid(ctx, fd); e != 0 {
			return e
		}
	}
	if v&(fs.SetAtime|fs.SetMtime|fs.SetAtimeNow|fs.SetMtimeNow) != 0 {
		ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		switch {
		case v&fs.SetAtimeNow != 0:
			ts[0].Nsec = unix.UTIME_NOW
		case v&fs.SetAtime != 0:
			if in.AtimeNsec >= 1e9 {
				return syscall.EINVAL
			}
			ts[0] = unix.Timespec{Sec: int64(in.Atime), Nsec: int64(in.AtimeNsec)}
		}
		switch {
		case v&fs.SetMtimeNow != 0:
			ts[1].Nsec = unix.UTIME_NOW
		case v&fs.SetMtime != 0:
			if in.MtimeNsec >= 1e9 {
				return syscall.EINVAL
			}
			ts[1] = unix.Timespec{Sec: int64(in.Mtime), Nsec: int64(in.MtimeNsec)}
		}
		if err := unix.UtimesNanoAt(fd, "", ts[:], unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return errno(err)
		}
	}
	// SetCtime cannot be honoured on the host (ctime follows every change
	// above); like virtiofsd we ignore it.

	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errno(err)
	}
	out.Timeout = f.attrTimeout
	fillAttr(&out.Attr, &st)
	return fs.OK
}

// truncate sets the size through the handle, or else through wfd, the
// write-only open of the inode SetAttr made.
func (f *FS) truncate(ctx *fs.Context, n *inode, h *handle, wfd int, size uint64, kill bool) fs.Errno {
	if size > 1<<63-1 {
		return syscall.EFBIG
	}
	fd := wfd
	if h != nil {
		fd = h.fd
	} else if n.isDir() {
		return syscall.EISDIR
	}
	if kill {
		if e := killSuidGid(ctx, fd); e != 0 {
			return e
		}
	}
	return errno(ignoringEINTR(func() error { return unix.Ftruncate(fd, int64(size)) }))
}

// Readlink reads the symlink's target into buf.
func (f *FS) Readlink(ctx *fs.Context, ino fs.Inode, buf []byte) (int, fs.Errno) {
	in, e := f.getInode(ino)
	if e != 0 {
		return 0, e
	}
	defer f.inodes.put(in)
	if !in.isSymlink() {
		return 0, syscall.EINVAL
	}
	if len(buf) == 0 {
		return 0, syscall.ENAMETOOLONG
	}
	n, err := unix.Readlinkat(in.fd, "", buf)
	if err != nil {
		return 0, errno(err)
	}
	if n == len(buf) {
		// Maybe truncated: a symlink's size is its target's length.
		var st unix.Stat_t
		if err := unix.Fstat(in.fd, &st); err != nil {
			return 0, errno(err)
		}
		if st.Size > int64(n) {
			return 0, syscall.ENAMETOOLONG
		}
	}
	return n, fs.OK
}

// StatFs is fstatfs(2) on the inode.
func (f *FS) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	defer f.inodes.put(in)
	var s unix.Statfs_t
	if err := ignoringEINTR(func() error { return unix.Fstatfs(in.fd, &s) }); err != nil {
		return errno(err)
	}
	out.Blocks = s.Blocks
	out.Bfree = s.Bfree
	out.Bavail = s.Bavail
	out.Files = s.Files
	out.Ffree = s.Ffree
	out.Bsize = uint32(s.Bsize)
	out.NameLen = uint32(s.Namelen)
	out.Frsize = uint32(s.Frsize)
	return fs.OK
}

// Access checks mask (R_OK|W_OK|X_OK, or F_OK) against the inode's mode
// for ctx's uid and gid (not supplementary groups: the request has none).
// Root may read and write anything and execute what has any x bit (or is
// a directory). W_OK on a read-only FS is EROFS.
func (f *FS) Access(ctx *fs.Context, ino fs.Inode, mask uint32) fs.Errno {
	if mask&^(unix.R_OK|unix.W_OK|unix.X_OK) != 0 {
		return syscall.EINVAL
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	defer f.inodes.put(in)
	var st unix.Stat_t
	if err := unix.Fstat(in.fd, &st); err != nil {
		return errno(err)
	}
	if mask&unix.W_OK != 0 && f.opts.ReadOnly {
		return syscall.EROFS
	}
	if mask == unix.F_OK {
		return fs.OK
	}
	if ctx.Uid == 0 {
		if mask&unix.X_OK != 0 && st.Mode&0o111 == 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return syscall.EACCES
		}
		return fs.OK
	}
	var bits uint32
	switch {
	case ctx.Uid == st.Uid:
		bits = (st.Mode >> 6) & 7
	case ctx.Gid == st.Gid:
		bits = (st.Mode >> 3) & 7
	default:
		bits = st.Mode & 7
	}
	if mask&^bits != 0 {
		return syscall.EACCES
	}
	return fs.OK
}

// Statx is statx(2) on the inode or handle.
func (f *FS) Statx(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, flags, mask uint32, out *fs.StatxOut) fs.Errno {
	fd := -1
	if hasHandle {
		if h := f.handles.get(fh); h != nil {
			defer f.putHandle(h)
			fd = h.fd
		}
	}
	if fd < 0 {
		in, e := f.getInode(ino)
		if e != 0 {
			return e
		}
		defer f.inodes.put(in)
		fd = in.fd
	}
	// Only the sync flags are the client's to choose; the path flags are ours.
	fl := int(flags&atStatxSyncType) | unix.AT_EMPTY_PATH | unix.AT_SYMLINK_NOFOLLOW
	var sx unix.Statx_t
	if err := unix.Statx(fd, "", fl, int(mask), &sx); err != nil {
		return errno(err)
	}
	s := &out.Statx
	s.Mask = sx.Mask
	s.Blksize = sx.Blksize
	s.Attributes = sx.Attributes
	s.Nlink = sx.Nlink
	s.Uid = sx.Uid
	s.Gid = sx.Gid
	s.Mode = sx.Mode
	s.Ino = sx.Ino
	s.Size = sx.Size
	s.Blocks = sx.Blocks
	s.AttributesMask = sx.Attributes_mask
	s.Atime = fs.StatxTime{Sec: sx.Atime.Sec, Nsec: sx.Atime.Nsec}
	s.Btime = fs.StatxTime{Sec: sx.Btime.Sec, Nsec: sx.Btime.Nsec}
	s.Ctime = fs.StatxTime{Sec: sx.Ctime.Sec, Nsec: sx.Ctime.Nsec}
	s.Mtime = fs.StatxTime{Sec: sx.Mtime.Sec, Nsec: sx.Mtime.Nsec}
	s.RdevMajor = sx.Rdev_major
	s.RdevMinor = sx.Rdev_minor
	s.DevMajor = sx.Dev_major
	s.DevMinor = sx.Dev_minor
	out.Timeout = f.attrTimeout
	return fs.OK
}

// SyncFs is syncfs(2) on the filesystem holding ino. syncfs refuses O_PATH
// fds, so the inode is reopened read-only (the root if ino is not a file
// or directory).
func (f *FS) SyncFs(ctx *fs.Context, ino fs.Inode) fs.Errno {
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	defer f.inodes.put(in)
	target := in
	if in.typ != unix.S_IFREG && in.typ != unix.S_IFDIR {
		target = f.root
	}
	fd, e := f.reopen(target, unix.O_RDONLY|unix.O_NONBLOCK)
	if e != 0 {
		return e
	}
	defer unix.Close(fd)
	return errno(unix.Syncfs(fd))
}

// atStatxSyncType is AT_STATX_SYNC_TYPE (AT_STATX_FORCE_SYNC |
// AT_STATX_DONT_SYNC), which x/sys does not name.
const atStatxSyncType = unix.AT_STATX_FORCE_SYNC | unix.AT_STATX_DONT_SYNC
