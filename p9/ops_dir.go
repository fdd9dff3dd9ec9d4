package p9

import (
	"math"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// dirFid returns fid id with a request reference if it names a directory
// that is not opened (the parent of Tlcreate, Tmkdir, …), else an errno.
func (c *conn) dirFid(id uint32) (*fid, *node, fs.Errno) {
	f := c.getFid(id)
	if f == nil {
		return nil, nil, eBadf
	}
	n, st, _ := f.snapshot()
	if n == nil || st == fidXattrRead || st == fidXattrWrite {
		c.putFid(f, nil)
		return nil, nil, eBadf
	}
	if !n.isDir() {
		c.putFid(f, nil)
		return nil, nil, eNotdir
	}
	return f, n, 0
}

// replyQID answers Tsymlink, Tmknod, Tmkdir: the new entry's QID. The
// lookup count the Entry raised is returned at once, since no fid holds it.
func (c *conn) replyQID(r *request, t MsgType, e *fs.Entry) fs.Errno {
	q := qidOf(&e.Attr, e.Ino)
	if e.Ino != 0 {
		c.s.fs.Forget(e.Ino, 1)
	}
	enc := r.begin(t, 20)
	enc.qid(&q)
	return 0
}

// lcreate creates and opens name in the directory of fid; on success fid
// refers to the new, opened file.
func (c *conn) lcreate(r *request, body []byte) fs.Errno {
	var m Tlcreate
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if e := checkName(m.Name, true); e != 0 {
		return e
	}
	flags, e := hostOpenFlags(m.Flags)
	if e != 0 {
		return e
	}
	if m.Flags&DotlExcl != 0 {
		flags |= syscall.O_EXCL
	}
	flags |= syscall.O_CREAT
	f, dir, e := c.dirFid(m.Fid)
	if e != 0 {
		return e
	}
	defer c.putFid(f, &r.ctx)
	// Opening an existing name may wait for a host lease (wait.go): f.mu
	// is not held meanwhile (fidOpening), so other requests on f are
	// served.
	if _, e := c.beginOpen(r, f, dir); e != 0 {
		return e
	}
	ended := false
	defer c.endPanickedOpen(f, &ended)
	var ent fs.Entry
	child, fh, e := c.createNode(r, f, dir, &m, flags, &ent)
	ended = true
	// On failure child is nil: endOpen then leaves f's node as it is.
	if e := c.endOpen(f, child, fidOpenFile, fh, e); e != 0 {
		return e
	}
	enc := r.begin(MsgRlcreate, 24)
	q := qidOf(&ent.Attr, ent.Ino)
	enc.qid(&q)
	enc.u32(0)
	return 0
}

// createNode creates (or, without O_EXCL, opens) m.Name in dir, the node
// of f (fidOpening), for Tlcreate: the new node, holding one reference
// for f, the handle and the entry found. Nothing changes on failure
// (nil node).
func (c *conn) createNode(r *request, f *fid, dir *node, m *Tlcreate, flags uint32, ent *fs.Entry) (*node, fs.Handle, fs.Errno) {
	var out fs.OpenOut
	ctx := r.ctxFor(f, m.Gid)
	if id := c.checked(); id != nil {
		// An existing name is opened as Tlopen would (its permission
		// checked, the very inode checked is the one opened); a new one
		// is created with O_EXCL, so a file that appears in between is
		// never opened unchecked (EEXIST; the client looks up again).
		if e := r.mayExecDir(id, dir.ino); e != 0 {
			return nil, 0, e
		}
		ea, eino, found, e := r.childAttr(dir.ino, m.Name)
		if e != 0 {
			return nil, 0, e
		}
		if found {
			if flags&syscall.O_EXCL != 0 {
				return nil, 0, eExist
			}
			return c.openExisting(r, f, id, dir, m.Name, &ea, eino, flags&^(syscall.O_CREAT|syscall.O_EXCL), ent)
		}
		da, e := r.mayCreate(id, dir.ino)
		if e != 0 {
			return nil, 0, e
		}
		if ctx, e = r.createCtx(f, m.Gid, &da); e != 0 {
			return nil, 0, e
		}
		flags |= syscall.O_EXCL
	}
	if e := c.s.fs.Create(ctx, dir.ino, m.Name, m.Mode&07777|syscall.S_IFREG, flags, ent, &out); e != 0 {
		return nil, 0, e
	}
	if ent.Ino == 0 {
		c.s.fs.Release(ctx, 0, out.Handle, 0)
		return nil, 0, syscall.EIO
	}
	return c.newChild(dir, m.Name, ent), out.Handle, 0
}

// openExisting is Tlcreate of a name that exists, on a checked
// connection: the file found is opened as Tlopen opens it, after the same
// checks. Preconditions: f names dir and is fidOpening.
func (c *conn) openExisting(r *request, f *fid, id *Identity, dir *node, name []byte, a *fs.Attr, ino fs.Inode, flags uint32, ent *fs.Entry) (*node, fs.Handle, fs.Errno) {
	switch a.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return nil, 0, eIsdir
	case syscall.S_IFLNK:
		return nil, 0, syscall.ELOOP // O_CREAT does not follow a final symlink here
	}
	if e := r.mayOpen(id, ino, a, flags); e != 0 {
		return nil, 0, e
	}
	ctx := r.ctxFor(f, nobody)
	if e := c.s.fs.Lookup(ctx, dir.ino, name, ent); e != 0 || ent.Ino != ino {
		if e == 0 {
			if ent.Ino != 0 {
				c.s.fs.Forget(ent.Ino, 1)
			}
			e = syscall.ESTALE // replaced since it was checked
		}
		return nil, 0, e
	}
	var out fs.OpenOut
	if e := c.s.fs.Open(ctx, ent.Ino, flags, 0, &out); e != 0 {
		c.s.fs.Forget(ent.Ino, 1)
		return nil, 0, e
	}
	return c.newChild(dir, name, ent), out.Handle, 0
}

// createIn checks, on a checked connection, that the identity may create
// in dir (write and search) and returns the context to create with (see
// createCtx); on a trusted one it is ctxFor.
func (c *conn) createIn(r *request, f *fid, dir *node, gid uint32) (*fs.Context, fs.Errno) {
	id := c.checked()
	if id == nil {
		return r.ctxFor(f, gid), 0
	}
	r.ctxFor(f, nobody)
	da, e := r.mayCreate(id, dir.ino)
	if e != 0 {
		return nil, e
	}
	return r.createCtx(f, gid, &da)
}

func (c *conn) symlink(r *request, body []byte) fs.Errno {
	var m Tsymlink
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if e := checkName(m.Name, true); e != 0 {
		return e
	}
	if len(m.Target) == 0 {
		return eNoent // as symlink(2) with an empty target
	}
	f, dir, e := c.dirFid(m.Fid)
	if e != 0 {
		return e
	}
	defer c.putFid(f, &r.ctx)
	ctx, e := c.createIn(r, f, dir, m.Gid)
	if e != 0 {
		return e
	}
	var ent fs.Entry
	if e := c.s.fs.Symlink(ctx, dir.ino, m.Name, m.Target, &ent); e != 0 {
		return e
	}
	return c.replyQID(r, MsgRsymlink, &ent)
}

// mknod: the mode carries the file type; the device number is encoded as
// Linux's new_encode_dev, as fs.Attr.Rdev and FUSE carry it.
func (c *conn) mknod(r *request, body []byte) fs.Errno {
	var m Tmknod
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if e := checkName(m.Name, true); e != 0 {
		return e
	}
	f, dir, e := c.dirFid(m.Dfid)
	if e != 0 {
		return e
	}
	defer c.putFid(f, &r.ctx)
	rdev := m.Minor&0xff | m.Major<<8 | (m.Minor&^0xff)<<12
	ctx, e := c.createIn(r, f, dir, m.Gid)
	if e != 0 {
		return e
	}
	if id := c.checked(); id != nil && id.Uid != 0 {
		switch m.Mode & syscall.S_IFMT {
		case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, 0:
		case syscall.S_IFCHR:
			if rdev != 0 {
				return ePerm // device nodes need CAP_MKNOD
			}
			// An overlayfs whiteout (character device 0:0): since Linux
			// 5.8 vfs_mknod lets any user make one (is_whiteout), and
			// overlayfs in a client makes them as that user on unlink
			// and rename. It opens as ENXIO (no driver has major 0), so
			// it reaches no device; the filesystem's own rule for
			// devices (passthrough's AllowDevices) exempts it too.
		default:
			return ePerm // device nodes need CAP_MKNOD
		}
	}
	var ent fs.Entry
	if e := c.s.fs.Mknod(ctx, dir.ino, m.Name, m.Mode, rdev, &ent); e != 0 {
		return e
	}
	return c.replyQID(r, MsgRmknod, &ent)
}

func (c *conn) mkdir(r *request, body []byte) fs.Errno {
	var m Tmkdir
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if e := checkName(m.Name, true); e != 0 {
		return e
	}
	f, dir, e := c.dirFid(m.Dfid)
	if e != 0 {
		return e
	}
	defer c.putFid(f, &r.ctx)
	ctx, e := c.createIn(r, f, dir, m.Gid)
	if e != 0 {
		return e
	}
	var ent fs.Entry
	if e := c.s.fs.Mkdir(ctx, dir.ino, m.Name, m.Mode&07777, &ent); e != 0 {
		return e
	}
	return c.replyQID(r, MsgRmkdir, &ent)
}

// link makes dfid/name a hard link to the file of fid.
func (c *conn) link(r *request, body []byte) fs.Errno {
	var m Tlink
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if e := checkName(m.Name, true); e != 0 {
		return e
	}
	df, dir, e := c.dirFid(m.Dfid)
	if e != 0 {
		return e
	}
	defer c.putFid(df, &r.ctx)
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, _, _ := f.snapshot()
	if n == nil {
		return eBadf
	}
	ctx := r.ctxFor(df, nobody)
	if id := c.checked(); id != nil {
		// As do_linkat: protected_hardlinks (may_linkat) before
		// may_create on the new directory.
		a, e := r.attrOf(n.ino)
		if e != 0 {
			return e
		}
		if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return ePerm
		}
		if e := r.mayLink(id, n.ino, &a); e != 0 {
			return e
		}
		if _, e := r.mayCreate(id, dir.ino); e != 0 {
			return e
		}
	}
	var ent fs.Entry
	if e := c.s.fs.Link(ctx, n.ino, dir.ino, m.Name, &ent); e != 0 {
		return e
	}
	if ent.Ino != 0 {
		c.s.fs.Forget(ent.Ino, 1)
	}
	r.begin(MsgRlink, HeaderSize)
	return 0
}

// rename moves the file of fid to dfid/name; fid follows it (its ".."
// becomes dfid's node).
func (c *conn) rename(r *request, body []byte) fs.Errno {
	var m Trename
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if e := checkName(m.Name, false); e != 0 {
		return e
	}
	df, dir, e := c.dirFid(m.Dfid)
	if e != 0 {
		return e
	}
	defer c.putFid(df, &r.ctx)
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, _, _ := f.snapshot()
	if n == nil {
		return eBadf
	}
	c.mu.Lock()
	parent, name := n.parent, n.name
	if parent == nil || n == f.root {
		c.mu.Unlock()
		return eBusy
	}
	parent.refs++
	c.mu.Unlock()
	defer c.unrefNode(parent)
	r.ctxFor(f, nobody)
	if e := c.sameEntry(r, parent, name, n); e != 0 {
		return e
	}
	if id := c.checked(); id != nil {
		if e := r.mayRename(id, parent.ino, name, dir.ino, m.Name); e != 0 {
			return e
		}
	}
	if e := c.s.fs.Rename(&r.ctx, parent.ino, name, dir.ino, m.Name, 0); e != 0 {
		return e
	}
	newName := append([]byte(nil), m.Name...)
	c.mu.Lock()
	if n.parent == parent {
		dir.refs++
		n.parent, n.name = dir, newName
		c.unrefLocked(parent) // the reference n held; ours is dropped by the defer
	}
	c.mu.Unlock()
	r.begin(MsgRrename, HeaderSize)
	return 0
}

func (c *conn) renameat(r *request, body []byte) fs.Errno {
	var m Trenameat
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if e := checkName(m.OldName, false); e != 0 {
		return e
	}
	if e := checkName(m.NewName, false); e != 0 {
		return e
	}
	of, odir, e := c.dirFid(m.OldDirFid)
	if e != 0 {
		return e
	}
	defer c.putFid(of, &r.ctx)
	nf, ndir, e := c.dirFid(m.NewDirFid)
	if e != 0 {
		return e
	}
	defer c.putFid(nf, &r.ctx)
	ctx := r.ctxFor(of, nobody)
	if id := c.checked(); id != nil {
		if e := r.mayRename(id, odir.ino, m.OldName, ndir.ino, m.NewName); e != 0 {
			return e
		}
	}
	if e := c.s.fs.Rename(ctx, odir.ino, m.OldName, ndir.ino, m.NewName, 0); e != 0 {
		return e
	}
	r.begin(MsgRrenameat, HeaderSize)
	return 0
}

// unlinkat: flags is 0 (unlink) or AT_REMOVEDIR (rmdir); other bits EINVAL.
func (c *conn) unlinkat(r *request, body []byte) fs.Errno {
	var m Tunlinkat
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if m.Flags&^AtRemoveDir != 0 {
		return eInval
	}
	if e := checkName(m.Name, false); e != 0 {
		return e
	}
	f, dir, e := c.dirFid(m.DirFid)
	if e != 0 {
		return e
	}
	defer c.putFid(f, &r.ctx)
	ctx := r.ctxFor(f, nobody)
	if id := c.checked(); id != nil {
		if _, _, e := r.mayDelete(id, dir.ino, m.Name); e != 0 {
			return e
		}
	}
	if m.Flags&AtRemoveDir != 0 {
		e = c.s.fs.Rmdir(ctx, dir.ino, m.Name)
	} else {
		e = c.s.fs.Unlink(ctx, dir.ino, m.Name)
	}
	if e != 0 {
		return e
	}
	r.begin(MsgRunlinkat, HeaderSize)
	return 0
}

// readlink: the filesystem writes the target straight into the reply.
func (c *conn) readlink(r *request, body []byte) fs.Errno {
	var m Treadlink
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, _, _ := f.snapshot()
	if n == nil {
		return eBadf
	}
	const pathMax = 4096
	enc := r.begin(MsgRreadlink, HeaderSize+2+pathMax)
	room := min(pathMax, cap(enc.buf)-HeaderSize-2)
	buf := enc.buf[HeaderSize+2 : HeaderSize+2+room]
	k, e := c.s.fs.Readlink(r.ctxFor(f, nobody), n.ino, buf)
	if e != 0 {
		return e
	}
	if k < 0 || k > len(buf) {
		return syscall.EIO
	}
	enc.u16(uint16(k))
	enc.grow(k)
	return 0
}

// --- xattrs --------------------------------------------------------------

// xattrwalk makes newfid a read-only fid over the value of xattr name of
// fid's file (or, for an empty name, the NUL-separated name list), fetched
// now; Rxattrwalk carries its size.
func (c *conn) xattrwalk(r *request, body []byte) fs.Errno {
	var m Txattrwalk
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, st, _ := f.snapshot()
	if n == nil || st == fidXattrRead || st == fidXattrWrite {
		return eBadf
	}
	if m.Newfid == m.Fid || c.fidInUse(m.Newfid) {
		return eBadf
	}
	ctx := r.ctxFor(f, nobody)
	if id := c.checked(); id != nil && len(m.Name) > 0 {
		a, e := r.attrOf(n.ino)
		if e != 0 {
			return e
		}
		if e := r.mayGetXattr(id, n.ino, &a, m.Name); e != 0 {
			return e
		}
	}
	get := func(dst []byte) (int, fs.Errno) {
		if len(m.Name) == 0 {
			return c.s.fs.ListXattr(ctx, n.ino, dst)
		}
		return c.s.fs.GetXattr(ctx, n.ino, m.Name, dst)
	}
	var val []byte
	for try := 0; ; try++ {
		size, e := get(nil)
		if e != 0 {
			return e
		}
		if size < 0 || size > XattrSizeMax {
			return e2big
		}
		if size == 0 {
			val = []byte{}
			break
		}
		buf := make([]byte, size)
		k, e := get(buf)
		if e == eRange && try < 3 {
			continue // grew in between
		}
		if e != 0 {
			return e
		}
		if k < 0 || k > size {
			return syscall.EIO
		}
		val = buf[:k]
		break
	}
	if id := c.checked(); id != nil && id.Uid != 0 && len(m.Name) == 0 {
		val = dropTrusted(val) // listxattr(2) hides them from non-root too
	}
	if e := c.chargeXattr(nil, len(val)); e != 0 {
		return e
	}
	c.refNode(n)
	c.refNode(f.root)
	if _, e := c.addFidXattr(m.Newfid, f.uid, f.root, n, fidXattrRead, 0, val); e != 0 {
		c.unrefNode(n)
		c.unrefNode(f.root)
		c.unchargeXattr(len(val))
		return e
	}
	enc := r.begin(MsgRxattrwalk, 15)
	enc.u64(uint64(len(val)))
	return 0
}

// xattrcreate turns fid into a fid collecting the value of xattr name by
// Twrite; Tclunk sets it (see commitXattr).
func (c *conn) xattrcreate(r *request, body []byte) fs.Errno {
	var m Txattrcreate
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if len(m.Name) == 0 {
		return eInval
	}
	if m.Flags&^(XattrCreate|XattrReplace) != 0 {
		return eInval
	}
	if m.AttrSize > XattrSizeMax {
		return e2big
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != fidWalked || f.n == nil {
		return eBadf
	}
	if id := c.checked(); id != nil {
		r.ctxFor(f, nobody)
		a, e := r.attrOf(f.n.ino)
		if e != 0 {
			return e
		}
		if e := r.maySetXattr(id, f.n.ino, &a, m.Name); e != 0 {
			return e
		}
	}
	if e := c.chargeXattr(f, int(m.AttrSize)); e != 0 {
		return e
	}
	f.state = fidXattrWrite
	f.xname = append([]byte(nil), m.Name...)
	f.xattr = make([]byte, m.AttrSize)
	f.xflags = m.Flags
	f.xlen = 0
	r.begin(MsgRxattrcreate, HeaderSize)
	return 0
}

// commitXattr sets the attribute collected by a Txattrcreate fid, at its
// clunk. Fewer bytes written than announced is EINVAL (as QEMU). A zero
// size with XATTR_REPLACE is how Linux sends removexattr.
func (c *conn) commitXattr(f *fid) fs.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != fidXattrWrite || f.n == nil {
		return 0
	}
	f.state = fidWalked
	ctx := fs.Context{Caller: fs.Caller{Uid: f.uid, Gid: nobody}}
	if id := c.checked(); id != nil {
		ctx.Gid = id.Gid
	}
	if f.xlen != len(f.xattr) {
		return eInval
	}
	if len(f.xattr) == 0 && f.xflags&XattrReplace != 0 {
		return c.s.fs.RemoveXattr(&ctx, f.n.ino, f.xname)
	}
	return c.s.fs.SetXattr(&ctx, f.n.ino, f.xname, f.xattr, f.xflags)
}

// --- locks ---------------------------------------------------------------

// lockOwner identifies a lock owner from the client's client_id (its node
// name) and proc_id: FNV-1a over both.
func lockOwner(client []byte, proc uint32) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range client {
		h = (h ^ uint64(b)) * 1099511628211
	}
	for i := 0; i < 4; i++ {
		h = (h ^ uint64(proc>>(8*i)&0xff)) * 1099511628211
	}
	return h
}

// lockRange converts start/length (0 = to end of file) into fs.Lock's
// inclusive range.
func lockRange(start, length uint64) (uint64, uint64, fs.Errno) {
	if length == 0 {
		return start, math.MaxUint64, 0
	}
	if start+length-1 < start {
		return 0, 0, eInval
	}
	return start, start + length - 1, 0
}

func lockType(t uint8) (uint32, fs.Errno) {
	switch t {
	case LockTypeRdlck:
		return syscall.F_RDLCK, 0
	case LockTypeWrlck:
		return syscall.F_WRLCK, 0
	case LockTypeUnlck:
		return syscall.F_UNLCK, 0
	}
	return 0, eInval
}

// lock never blocks (the protocol asks it not to): a busy lock is status
// BLOCKED, and the Linux client retries a blocking request itself.
func (c *conn) lock(r *request, body []byte) fs.Errno {
	var m Tlock
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	typ, e := lockType(m.LockType)
	if e != 0 {
		return e
	}
	start, end, e := lockRange(m.Start, m.Length)
	if e != 0 {
		return e
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, st, fh := f.snapshot()
	if st != fidOpenFile && st != fidOpenDir {
		return eBadf
	}
	lk := fs.Lock{Start: start, End: end, Type: typ, Pid: m.ProcID}
	status := LockSuccess
	e = c.s.fs.SetLk(r.ctxFor(f, nobody), n.ino, fh, lockOwner(m.ClientID, m.ProcID), &lk, false, false)
	switch e {
	case 0:
	case syscall.EAGAIN, syscall.EACCES:
		status = LockBlocked
	default:
		return e
	}
	enc := r.begin(MsgRlock, 8)
	enc.u8(status)
	return 0
}

// getlock reports the first conflicting lock, or the request with type
// UNLCK if there is none. client_id is echoed: the owner's is not known.
func (c *conn) getlock(r *request, body []byte) fs.Errno {
	var m Tgetlock
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	typ, e := lockType(m.LockType)
	if e != 0 {
		return e
	}
	start, end, e := lockRange(m.Start, m.Length)
	if e != 0 {
		return e
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, st, fh := f.snapshot()
	if st != fidOpenFile && st != fidOpenDir {
		return eBadf
	}
	lk := fs.Lock{Start: start, End: end, Type: typ, Pid: m.ProcID}
	var out fs.Lock
	if e := c.s.fs.GetLk(r.ctxFor(f, nobody), n.ino, fh, lockOwner(m.ClientID, m.ProcID), &lk, &out); e != 0 {
		return e
	}
	rg := Rgetlock{LockType: LockTypeUnlck, Start: m.Start, Length: m.Length, ProcID: m.ProcID, ClientID: m.ClientID}
	switch out.Type {
	case syscall.F_RDLCK, syscall.F_WRLCK:
		rg.LockType = LockTypeRdlck
		if out.Type == syscall.F_WRLCK {
			rg.LockType = LockTypeWrlck
		}
		rg.Start, rg.ProcID = out.Start, out.Pid
		rg.Length = 0
		if out.End != math.MaxUint64 && out.End != math.MaxInt64 && out.End >= out.Start {
			rg.Length = out.End - out.Start + 1
		}
	}
	rg.encode(r.begin(MsgRgetlock, 30+len(rg.ClientID)))
	return 0
}
