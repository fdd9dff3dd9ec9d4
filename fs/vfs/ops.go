package vfs

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

var _ fs.FileSystem = (*VFS)(nil)
var _ fs.Mapper = (*VFS)(nil)

// fix answers a backend's ENOSYS with EOPNOTSUPP: the kernel remembers
// ENOSYS for the whole mount, and one backend must not switch an
// operation off for the others (see the package comment).
func fix(e fs.Errno) fs.Errno {
	if e == syscall.ENOSYS {
		return syscall.EOPNOTSUPP
	}
	return e
}

// fixTo answers a backend's ENOSYS with instead.
func fixTo(e, instead fs.Errno) fs.Errno {
	if e == syscall.ENOSYS {
		return instead
	}
	return e
}

// same reports whether a and b name inodes of the same share (slot and
// generation), the condition for rename, link and copy_file_range.
func same(a, b fs.Inode) bool { return uint64(a)>>genShift == uint64(b)>>genShift }

// Init starts every mounted backend with what the session agreed on; a
// share mounted later is started by Mount. The first failure fails Init.
func (v *VFS) Init(ctx *fs.Context, info *fs.InitInfo) fs.Errno {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.info, v.started = *info, true
	for _, i := range v.names {
		bi := *info
		if e := v.slots[i].fsys.Init(ctx, &bi); e != 0 {
			return e
		}
	}
	return 0
}

// Destroy destroys every mounted backend; the shares stay mounted and are
// started again by the next Init (a virtio-fs guest that reboots).
func (v *VFS) Destroy() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.started {
		return
	}
	v.started = false
	for _, i := range v.names {
		v.slots[i].fsys.Destroy()
		// The client is gone with every lookup it held.
		v.slots[i].lookups.Store(0)
		v.slots[i].rootLookups.Store(0)
	}
}

func (v *VFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if parent == fs.RootInode {
		return v.rootLookup(ctx, name, out)
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	if b == fs.RootInode && string(name) == ".." {
		v.rootSelf(out)
		return 0
	}
	return fix(sh.entry(sh.s.fsys.Lookup(ctx, b, name, out), out))
}

// Forget goes to the share the ID names; an ID of a share that is gone is
// dropped (its backend was destroyed with every count).
func (v *VFS) Forget(ino fs.Inode, n uint64) {
	if ino == fs.RootInode {
		return
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return
	}
	defer v.leave(sh)
	if b == fs.RootInode {
		sh.s.rootLookups.Add(-int64(n))
		return
	}
	sh.s.lookups.Add(-int64(n))
	sh.s.fsys.Forget(b, n)
}

func (v *VFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	if ino == fs.RootInode {
		v.rootAttr(&out.Attr)
		out.Timeout = v.opts.AttrTimeout
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	e = sh.s.fsys.GetAttr(ctx, b, fh, hasHandle, out)
	out.Attr.Ino = sh.stIno(out.Attr.Ino)
	return fix(e)
}

func (v *VFS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	if ino == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	e = sh.s.fsys.SetAttr(ctx, b, in, out)
	out.Attr.Ino = sh.stIno(out.Attr.Ino)
	return fix(e)
}

func (v *VFS) Readlink(ctx *fs.Context, ino fs.Inode, buf []byte) (int, fs.Errno) {
	if ino == fs.RootInode {
		return 0, syscall.EINVAL
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return 0, e
	}
	defer v.leave(sh)
	n, e := sh.s.fsys.Readlink(ctx, b, buf)
	return n, fix(e)
}

func (v *VFS) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	if parent == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.entry(sh.s.fsys.Symlink(ctx, b, name, target, out), out))
}

func (v *VFS) Mknod(ctx *fs.Context, parent fs.Inode, name []byte, mode, rdev uint32, out *fs.Entry) fs.Errno {
	if parent == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.entry(sh.s.fsys.Mknod(ctx, b, name, mode, rdev, out), out))
}

func (v *VFS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	if parent == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.entry(sh.s.fsys.Mkdir(ctx, b, name, mode, out), out))
}

func (v *VFS) Unlink(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	if parent == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.s.fsys.Unlink(ctx, b, name))
}

func (v *VFS) Rmdir(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	if parent == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.s.fsys.Rmdir(ctx, b, name))
}

// Rename within one share goes to its backend; between two shares it is
// EXDEV (mv then copies); in or out of the pseudo root EPERM.
func (v *VFS) Rename(ctx *fs.Context, parent fs.Inode, name []byte, newParent fs.Inode, newName []byte, flags uint32) fs.Errno {
	if parent == fs.RootInode || newParent == fs.RootInode {
		return syscall.EPERM
	}
	if !same(parent, newParent) {
		return syscall.EXDEV
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	nb := newParent & MaxBackendIno
	e = sh.s.fsys.Rename(ctx, b, name, nb, newName, flags)
	if flags != 0 {
		return fixTo(e, syscall.EINVAL) // what the kernel answers once it knows
	}
	return fix(e)
}

func (v *VFS) Link(ctx *fs.Context, ino fs.Inode, newParent fs.Inode, newName []byte, out *fs.Entry) fs.Errno {
	if ino == fs.RootInode || newParent == fs.RootInode {
		return syscall.EPERM
	}
	if !same(ino, newParent) {
		return syscall.EXDEV
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	if b == fs.RootInode {
		return syscall.EPERM // a share's root is a directory
	}
	return fix(sh.entry(sh.s.fsys.Link(ctx, b, newParent&MaxBackendIno, newName, out), out))
}

func (v *VFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	if ino == fs.RootInode {
		return syscall.EISDIR
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	e = sh.s.fsys.Open(ctx, b, flags, openFlags, out)
	if e == syscall.ENOSYS {
		*out = fs.OpenOut{} // as the kernel does without OPEN: handle 0
		return 0
	}
	return e
}

func (v *VFS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if parent == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.entry(sh.s.fsys.Create(ctx, b, name, mode, flags, out, open), out))
}

func (v *VFS) Tmpfile(ctx *fs.Context, parent fs.Inode, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if parent == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(parent)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.entry(sh.s.fsys.Tmpfile(ctx, b, mode, flags, out, open), out))
}

func (v *VFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	if ino == fs.RootInode {
		return syscall.EISDIR
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.s.fsys.Read(ctx, b, fh, off, size, dst))
}

func (v *VFS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	if ino == fs.RootInode {
		return 0, syscall.EISDIR
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return 0, e
	}
	defer v.leave(sh)
	n, e := sh.s.fsys.Write(ctx, b, fh, off, src, flags)
	return n, fix(e)
}

func (v *VFS) Flush(ctx *fs.Context, ino fs.Inode, fh fs.Handle, lockOwner uint64) fs.Errno {
	if ino == fs.RootInode {
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.Flush(ctx, b, fh, lockOwner), 0)
}

func (v *VFS) Fsync(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	if ino == fs.RootInode {
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.Fsync(ctx, b, fh, datasync), 0)
}

// Release of a handle whose share is gone answers ESTALE (for logs: the
// backend closed the handle when it was destroyed).
func (v *VFS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	if ino == fs.RootInode {
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.Release(ctx, b, fh, flags), 0)
}

func (v *VFS) Fallocate(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off, length uint64, mode uint32) fs.Errno {
	if ino == fs.RootInode {
		return syscall.EISDIR
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.s.fsys.Fallocate(ctx, b, fh, off, length, mode))
}

func (v *VFS) Lseek(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, whence uint32) (int64, fs.Errno) {
	if ino == fs.RootInode {
		return 0, syscall.EINVAL
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return 0, e
	}
	defer v.leave(sh)
	n, e := sh.s.fsys.Lseek(ctx, b, fh, off, whence)
	if e == syscall.ENOSYS && (whence == seekData || whence == seekHole) {
		return seekGeneric(ctx, sh.s.fsys, b, off, whence)
	}
	return n, fix(e)
}

// lseek(2)'s whence values the kernel sends LSEEK for.
const (
	seekData = 3
	seekHole = 4
)

// seekGeneric answers SEEK_DATA and SEEK_HOLE for a backend without
// Lseek as the kernel does once it knows (generic_file_llseek): the
// whole file is data, followed by one hole at its end.
func seekGeneric(ctx *fs.Context, fsys fs.FileSystem, b fs.Inode, off int64, whence uint32) (int64, fs.Errno) {
	a := attrOuts.Get().(*fs.AttrOut)
	defer attrOuts.Put(a)
	*a = fs.AttrOut{}
	if e := fsys.GetAttr(ctx, b, 0, false, a); e != 0 {
		return 0, fix(e)
	}
	if uint64(off) >= a.Attr.Size {
		return 0, syscall.ENXIO
	}
	if whence == seekHole {
		return int64(a.Attr.Size), 0
	}
	return off, 0
}

// CopyFileRange between two shares is EXDEV: the kernel copies through
// the page cache instead.
func (v *VFS) CopyFileRange(ctx *fs.Context, inIno fs.Inode, inFh fs.Handle, inOff int64, outIno fs.Inode, outFh fs.Handle, outOff int64, length uint64, flags uint64) (uint64, fs.Errno) {
	if inIno == fs.RootInode || outIno == fs.RootInode {
		return 0, syscall.EISDIR
	}
	if !same(inIno, outIno) {
		return 0, syscall.EXDEV
	}
	sh, b, e := v.enter(inIno)
	if e != 0 {
		return 0, e
	}
	defer v.leave(sh)
	n, e := sh.s.fsys.CopyFileRange(ctx, b, inFh, inOff, outIno&MaxBackendIno, outFh, outOff, length, flags)
	return n, fix(e)
}

func (v *VFS) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	if ino == fs.RootInode {
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	e = sh.s.fsys.OpenDir(ctx, b, flags, out)
	if e == syscall.ENOSYS {
		*out = fs.OpenOut{}
		return 0
	}
	return e
}

func (v *VFS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	if ino == fs.RootInode {
		return v.rootReadDir(ctx, off, dst)
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	d := dirSinks.Get().(*dirSink)
	d.inner, d.sh = dst, sh
	e = sh.s.fsys.ReadDir(ctx, b, fh, off, d)
	*d = dirSink{}
	dirSinks.Put(d)
	return fix(e)
}

func (v *VFS) ReleaseDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno {
	if ino == fs.RootInode {
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.ReleaseDir(ctx, b, fh), 0)
}

func (v *VFS) FsyncDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	if ino == fs.RootInode {
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.FsyncDir(ctx, b, fh, datasync), 0)
}

// StatFs answers for the backend of ino: df of a share's directory shows
// that share's host filesystem.
func (v *VFS) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	if ino == fs.RootInode {
		*out = fs.StatFs{Bsize: 4096, Frsize: 4096, NameLen: MaxNameLen}
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.s.fsys.StatFs(ctx, b, out))
}

func (v *VFS) Access(ctx *fs.Context, ino fs.Inode, mask uint32) fs.Errno {
	if ino == fs.RootInode {
		if mask&2 != 0 { // W_OK
			return syscall.EACCES
		}
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.Access(ctx, b, mask), 0)
}

func (v *VFS) Statx(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, flags, mask uint32, out *fs.StatxOut) fs.Errno {
	if ino == fs.RootInode {
		v.rootStatx(out)
		return 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	e = sh.s.fsys.Statx(ctx, b, fh, hasHandle, flags, mask, out)
	if e == syscall.ENOSYS {
		// The kernel would stop sending STATX for every share: answer
		// from GETATTR instead (no birth time).
		a := attrOuts.Get().(*fs.AttrOut)
		defer attrOuts.Put(a)
		*a = fs.AttrOut{}
		if e = sh.s.fsys.GetAttr(ctx, b, fh, hasHandle, a); e != 0 {
			return fix(e)
		}
		statxOf(&a.Attr, out)
		out.Timeout = a.Timeout
	}
	out.Statx.Ino = sh.stIno(out.Statx.Ino)
	return fix(e)
}

// SyncFs of the root (which is how the kernel sends it) syncs every share;
// the first error is returned.
func (v *VFS) SyncFs(ctx *fs.Context, ino fs.Inode) fs.Errno {
	if ino != fs.RootInode {
		sh, b, e := v.enter(ino)
		if e != 0 {
			return e
		}
		defer v.leave(sh)
		return fixTo(sh.s.fsys.SyncFs(ctx, b), 0)
	}
	var first fs.Errno
	for i := 1; i <= MaxShares; i++ {
		sh, ok := v.enterSlot(i)
		if !ok {
			continue
		}
		if e := fixTo(sh.s.fsys.SyncFs(ctx, fs.RootInode), 0); e != 0 && first == 0 {
			first = e
		}
		v.leave(sh)
	}
	return first
}

func (v *VFS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	if ino == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.s.fsys.SetXattr(ctx, b, name, value, flags))
}

func (v *VFS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	if ino == fs.RootInode {
		return 0, syscall.ENODATA
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return 0, e
	}
	defer v.leave(sh)
	n, e := sh.s.fsys.GetXattr(ctx, b, name, dst)
	return n, fix(e)
}

func (v *VFS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	if ino == fs.RootInode {
		return 0, 0
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return 0, e
	}
	defer v.leave(sh)
	n, e := sh.s.fsys.ListXattr(ctx, b, dst)
	return n, fix(e)
}

func (v *VFS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	if ino == fs.RootInode {
		return syscall.EPERM
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fix(sh.s.fsys.RemoveXattr(ctx, b, name))
}

func (v *VFS) GetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	if ino == fs.RootInode {
		return syscall.ENOLCK
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.GetLk(ctx, b, fh, owner, lk, out), syscall.ENOLCK)
}

// SetLk with wait may stay inside the backend for long: Unmount of its
// share waits for it (or until its context ends).
func (v *VFS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	if ino == fs.RootInode {
		return syscall.ENOLCK
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return e
	}
	defer v.leave(sh)
	return fixTo(sh.s.fsys.SetLk(ctx, b, fh, owner, lk, wait, flock), syscall.ENOLCK)
}

// MapFd hands out the backend's fd for a DAX mapping; a backend that is
// not an fs.Mapper answers EOPNOTSUPP.
func (v *VFS) MapFd(ctx *fs.Context, ino fs.Inode, fh fs.Handle, writable bool) (int, fs.Errno) {
	if ino == fs.RootInode {
		return -1, syscall.EISDIR
	}
	sh, b, e := v.enter(ino)
	if e != 0 {
		return -1, e
	}
	defer v.leave(sh)
	m, ok := sh.s.fsys.(fs.Mapper)
	if !ok {
		return -1, syscall.EOPNOTSUPP
	}
	fd, e := m.MapFd(ctx, b, fh, writable)
	return fd, fix(e)
}
