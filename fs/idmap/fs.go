package idmap

import (
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// Overflow is the host identity a request from a forbidden guest ID runs
// under when it creates nothing (lookups, reads, permission checks): the
// kernel's overflowuid/overflowgid, so that it is granted no more than any
// other user.
const Overflow = 65534

// FS serves an inner filesystem with caller identities translated to the
// host on the way in and owners translated to the guest on the way out.
//
// Identity: each method runs the inner filesystem with ctx.Caller holding
// the host IDs, and restores the client's IDs before it returns (the
// transport owns ctx). A request that would give a file a forbidden guest
// owner (creating as that caller, or chown/chgrp to it) fails with EPERM.
type FS struct {
	inner      fs.FileSystem
	uids, gids *Map
}

var _ fs.FileSystem = (*FS)(nil)

type mapperFS struct {
	*FS
	m fs.Mapper
}

// MapFd runs the inner Mapper under the host identity.
func (w mapperFS) MapFd(ctx *fs.Context, ino fs.Inode, fh fs.Handle, writable bool) (int, fs.Errno) {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.m.MapFd(ctx, ino, fh, writable)
}

// Wrap returns inner with uids and gids applied (nil: identity). The result
// implements fs.Mapper exactly when inner does. With both maps empty it
// returns inner itself.
func Wrap(inner fs.FileSystem, uids, gids *Map) fs.FileSystem {
	if uids.Empty() && gids.Empty() {
		return inner
	}
	w := &FS{inner: inner, uids: uids, gids: gids}
	if mp, ok := inner.(fs.Mapper); ok {
		return mapperFS{w, mp}
	}
	return w
}

// saved is the client's identity in ctx, restored by leave.
type saved struct {
	caller     fs.Caller
	suppGid    uint32
	hasSuppGid bool
}

// enter switches ctx to host IDs and reports whether both were allowed
// (a forbidden one is replaced by Overflow). A supplementary group sent
// with a creating request is a guest GID too; a forbidden one is dropped,
// so it grants nothing.
func (w *FS) enter(ctx *fs.Context) (saved, bool) {
	s := saved{ctx.Caller, ctx.SuppGid, ctx.HasSuppGid}
	if ctx.HasSuppGid {
		sg, ok := w.gids.ToHost(ctx.SuppGid)
		ctx.SuppGid, ctx.HasSuppGid = sg, ok
	}
	u, okU := w.uids.ToHost(ctx.Uid)
	if !okU {
		u = Overflow
	}
	g, okG := w.gids.ToHost(ctx.Gid)
	if !okG {
		g = Overflow
	}
	ctx.Uid, ctx.Gid = u, g
	return s, okU && okG
}

func (w *FS) leave(ctx *fs.Context, s saved) {
	ctx.Caller, ctx.SuppGid, ctx.HasSuppGid = s.caller, s.suppGid, s.hasSuppGid
}

func (w *FS) attr(a *fs.Attr) {
	a.Uid = w.uids.ToGuest(a.Uid)
	a.Gid = w.gids.ToGuest(a.Gid)
}

func (w *FS) entry(e fs.Errno, out *fs.Entry) fs.Errno {
	if e == 0 && out.Ino != 0 {
		w.attr(&out.Attr)
	}
	return e
}

func (w *FS) Init(ctx *fs.Context, info *fs.InitInfo) fs.Errno { return w.inner.Init(ctx, info) }
func (w *FS) Destroy()                                         { w.inner.Destroy() }
func (w *FS) Forget(ino fs.Inode, n uint64)                    { w.inner.Forget(ino, n) }

func (w *FS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.entry(w.inner.Lookup(ctx, parent, name, out), out)
}

func (w *FS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	e := w.inner.GetAttr(ctx, ino, fh, hasHandle, out)
	if e == 0 {
		w.attr(&out.Attr)
	}
	return e
}

// SetAttr translates a new owner or group to the host (EPERM if the guest
// ID is forbidden) and the resulting attributes back.
func (w *FS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	uid, gid := in.Uid, in.Gid
	if in.Valid&fs.SetUid != 0 {
		h, ok := w.uids.ToHost(uid)
		if !ok {
			return syscall.EPERM
		}
		in.Uid = h
	}
	if in.Valid&fs.SetGid != 0 {
		h, ok := w.gids.ToHost(gid)
		if !ok {
			return syscall.EPERM
		}
		in.Gid = h
	}
	saved, _ := w.enter(ctx)
	e := w.inner.SetAttr(ctx, ino, in, out)
	w.leave(ctx, saved)
	in.Uid, in.Gid = uid, gid
	if e == 0 {
		w.attr(&out.Attr)
	}
	return e
}

func (w *FS) Readlink(ctx *fs.Context, ino fs.Inode, buf []byte) (int, fs.Errno) {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Readlink(ctx, ino, buf)
}

// creating enters the host identity for a request that creates an inode
// owned by the caller; false (EPERM) if the caller's guest IDs are
// forbidden.
func (w *FS) creating(ctx *fs.Context) (saved, bool) {
	saved, ok := w.enter(ctx)
	if !ok {
		w.leave(ctx, saved)
	}
	return saved, ok
}

func (w *FS) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	saved, ok := w.creating(ctx)
	if !ok {
		return syscall.EPERM
	}
	defer w.leave(ctx, saved)
	return w.entry(w.inner.Symlink(ctx, parent, name, target, out), out)
}

func (w *FS) Mknod(ctx *fs.Context, parent fs.Inode, name []byte, mode, rdev uint32, out *fs.Entry) fs.Errno {
	saved, ok := w.creating(ctx)
	if !ok {
		return syscall.EPERM
	}
	defer w.leave(ctx, saved)
	return w.entry(w.inner.Mknod(ctx, parent, name, mode, rdev, out), out)
}

func (w *FS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	saved, ok := w.creating(ctx)
	if !ok {
		return syscall.EPERM
	}
	defer w.leave(ctx, saved)
	return w.entry(w.inner.Mkdir(ctx, parent, name, mode, out), out)
}

func (w *FS) Unlink(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Unlink(ctx, parent, name)
}

func (w *FS) Rmdir(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Rmdir(ctx, parent, name)
}

func (w *FS) Rename(ctx *fs.Context, parent fs.Inode, name []byte, newParent fs.Inode, newName []byte, flags uint32) fs.Errno {
	saved, ok := w.enter(ctx)
	defer w.leave(ctx, saved)
	if !ok && flags&renameWhiteout != 0 {
		return syscall.EPERM // a whiteout is a new inode owned by the caller
	}
	return w.inner.Rename(ctx, parent, name, newParent, newName, flags)
}

const renameWhiteout = 1 << 2 // RENAME_WHITEOUT

func (w *FS) Link(ctx *fs.Context, ino fs.Inode, newParent fs.Inode, newName []byte, out *fs.Entry) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.entry(w.inner.Link(ctx, ino, newParent, newName, out), out)
}

func (w *FS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Open(ctx, ino, flags, openFlags, out)
}

func (w *FS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	saved, ok := w.creating(ctx)
	if !ok {
		return syscall.EPERM
	}
	defer w.leave(ctx, saved)
	return w.entry(w.inner.Create(ctx, parent, name, mode, flags, out, open), out)
}

func (w *FS) Tmpfile(ctx *fs.Context, parent fs.Inode, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	saved, ok := w.creating(ctx)
	if !ok {
		return syscall.EPERM
	}
	defer w.leave(ctx, saved)
	return w.entry(w.inner.Tmpfile(ctx, parent, mode, flags, out, open), out)
}

func (w *FS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Read(ctx, ino, fh, off, size, dst)
}

func (w *FS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Write(ctx, ino, fh, off, src, flags)
}

func (w *FS) Flush(ctx *fs.Context, ino fs.Inode, fh fs.Handle, lockOwner uint64) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Flush(ctx, ino, fh, lockOwner)
}

func (w *FS) Fsync(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Fsync(ctx, ino, fh, datasync)
}

func (w *FS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Release(ctx, ino, fh, flags)
}

func (w *FS) Fallocate(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off, length uint64, mode uint32) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Fallocate(ctx, ino, fh, off, length, mode)
}

func (w *FS) Lseek(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, whence uint32) (int64, fs.Errno) {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Lseek(ctx, ino, fh, off, whence)
}

func (w *FS) CopyFileRange(ctx *fs.Context, inIno fs.Inode, inFh fs.Handle, inOff int64, outIno fs.Inode, outFh fs.Handle, outOff int64, length uint64, flags uint64) (uint64, fs.Errno) {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.CopyFileRange(ctx, inIno, inFh, inOff, outIno, outFh, outOff, length, flags)
}

func (w *FS) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.OpenDir(ctx, ino, flags, out)
}

// dirSink translates the owners of READDIRPLUS entries. Pooled: one is
// taken per ReadDir call and never outlives it.
type dirSink struct {
	dst fs.DirSink
	w   *FS
}

func (d *dirSink) Add(e fs.DirEntry, plus *fs.Entry) bool {
	if plus != nil && plus.Ino != 0 {
		d.w.attr(&plus.Attr)
	}
	return d.dst.Add(e, plus)
}

func (d *dirSink) Plus() bool { return d.dst.Plus() }

var dirSinks = sync.Pool{New: func() any { return new(dirSink) }}

func (w *FS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	if !dst.Plus() {
		return w.inner.ReadDir(ctx, ino, fh, off, dst)
	}
	d := dirSinks.Get().(*dirSink)
	d.dst, d.w = dst, w
	e := w.inner.ReadDir(ctx, ino, fh, off, d)
	d.dst, d.w = nil, nil
	dirSinks.Put(d)
	return e
}

func (w *FS) ReleaseDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.ReleaseDir(ctx, ino, fh)
}

func (w *FS) FsyncDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.FsyncDir(ctx, ino, fh, datasync)
}

func (w *FS) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.StatFs(ctx, ino, out)
}

func (w *FS) Access(ctx *fs.Context, ino fs.Inode, mask uint32) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.Access(ctx, ino, mask)
}

func (w *FS) Statx(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, flags, mask uint32, out *fs.StatxOut) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	e := w.inner.Statx(ctx, ino, fh, hasHandle, flags, mask, out)
	if e == 0 {
		out.Statx.Uid = w.uids.ToGuest(out.Statx.Uid)
		out.Statx.Gid = w.gids.ToGuest(out.Statx.Gid)
	}
	return e
}

func (w *FS) SyncFs(ctx *fs.Context, ino fs.Inode) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.SyncFs(ctx, ino)
}

func (w *FS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.SetXattr(ctx, ino, name, value, flags)
}

func (w *FS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.GetXattr(ctx, ino, name, dst)
}

func (w *FS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.ListXattr(ctx, ino, dst)
}

func (w *FS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.RemoveXattr(ctx, ino, name)
}

func (w *FS) GetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.GetLk(ctx, ino, fh, owner, lk, out)
}

func (w *FS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	saved, _ := w.enter(ctx)
	defer w.leave(ctx, saved)
	return w.inner.SetLk(ctx, ino, fh, owner, lk, wait, flock)
}
