package p9

import (
	"bytes"
	"math"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// Errnos of this file, as values.
const (
	eBadf     = syscall.EBADF
	eInval    = syscall.EINVAL
	eNoent    = syscall.ENOENT
	eIsdir    = syscall.EISDIR
	eNotdir   = syscall.ENOTDIR
	eBusy     = syscall.EBUSY
	eExist    = syscall.EEXIST
	eOpnotsup = syscall.EOPNOTSUPP
	e2big     = syscall.E2BIG
	eRange    = syscall.ERANGE
)

// dispatch decodes r's body by type, calls the filesystem, and encodes the
// reply in r.e. It returns the errno to send as Rlerror instead, if any.
//
// Every T message is decoded with its concrete type (no interface), so the
// message lives on the stack and the hot path allocates nothing.
func (c *conn) dispatch(r *request) fs.Errno {
	body := r.in
	switch r.hdr.Type {
	case MsgTread:
		return c.read(r, body)
	case MsgTwrite:
		return c.write9(r, body)
	case MsgTgetattr:
		return c.getattr(r, body)
	case MsgTwalk:
		return c.walk(r, body)
	case MsgTclunk:
		return c.clunk(r, body)
	case MsgTlopen:
		return c.lopen(r, body)
	case MsgTreaddir:
		return c.readdir(r, body)
	case MsgTattach:
		return c.attach(r, body)
	case MsgTauth:
		var m Tauth
		d := decoder{buf: body}
		if m.decode(&d); !d.done() {
			return eInval
		}
		return eOpnotsup // no authentication: attach with afid = NOFID
	case MsgTlcreate:
		return c.lcreate(r, body)
	case MsgTsymlink:
		return c.symlink(r, body)
	case MsgTmknod:
		return c.mknod(r, body)
	case MsgTmkdir:
		return c.mkdir(r, body)
	case MsgTlink:
		return c.link(r, body)
	case MsgTrename:
		return c.rename(r, body)
	case MsgTrenameat:
		return c.renameat(r, body)
	case MsgTunlinkat:
		return c.unlinkat(r, body)
	case MsgTremove:
		return c.remove(r, body)
	case MsgTreadlink:
		return c.readlink(r, body)
	case MsgTsetattr:
		return c.setattr(r, body)
	case MsgTxattrwalk:
		return c.xattrwalk(r, body)
	case MsgTxattrcreate:
		return c.xattrcreate(r, body)
	case MsgTfsync:
		return c.fsync(r, body)
	case MsgTlock:
		return c.lock(r, body)
	case MsgTgetlock:
		return c.getlock(r, body)
	case MsgTstatfs:
		return c.statfs(r, body)
	}
	// 9P2000 open/create/stat/wstat, R-messages, unknown types.
	return eOpnotsup
}

// checkName validates a path component that names a new or existing
// directory entry: empty or holding '/' is EINVAL; "." and ".." can be
// neither created nor removed (errno as Linux: EEXIST to create, EINVAL
// otherwise).
func checkName(name []byte, creating bool) fs.Errno {
	if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 {
		return eInval
	}
	if isDot(name) {
		if creating {
			return eExist
		}
		return eInval
	}
	return 0
}

func isDot(name []byte) bool {
	return len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.'
}

// qidOf makes the QID of a file from its attributes. Path is the host's
// inode number (what readdir reports too), or the fs inode ID if the
// filesystem reports none. Version stays 0: v9fs in cache modes treats a
// version change as a different inode.
func qidOf(a *fs.Attr, ino fs.Inode) QID {
	q := QID{Path: a.Ino}
	if q.Path == 0 {
		q.Path = uint64(ino)
	}
	switch a.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		q.Type = QTDir
	case syscall.S_IFLNK:
		q.Type = QTSymlink
	}
	return q
}

// ctxFor sets r's caller from a fid's user and a gid (nobody if unknown).
// On a connection that is not Trusted the caller is always the
// connection's identity (creating requests then use createCtx).
func (r *request) ctxFor(f *fid, gid uint32) *fs.Context {
	r.ctx.SuppGid, r.ctx.HasSuppGid = 0, false
	if id := r.c.checked(); id != nil {
		r.ctx.Caller = fs.Caller{Uid: id.Uid, Gid: id.Gid}
		return &r.ctx
	}
	if gid == NoUid { // (gid_t)-1: not given
		gid = nobody
	}
	r.ctx.Caller = fs.Caller{Uid: f.uid, Gid: gid}
	return &r.ctx
}

// --- session -------------------------------------------------------------

// attach: aname selects the tree. "" (or "/") is the filesystem's root;
// any other aname is a path below it, walked name by name and required to
// be a directory, which becomes the attach root: ".." never leaves it.
// Authentication is not supported, so afid must be NOFID.
func (c *conn) attach(r *request, body []byte) fs.Errno {
	var m Tattach
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	if m.Afid != NoFid {
		return eBadf
	}
	if m.Fid == NoFid || c.fidInUse(m.Fid) {
		return eBadf
	}
	uid := m.NUname
	id := c.checked()
	switch {
	case id == nil && uid == NoUid:
		uid = nobody
		if string(m.Uname) == "root" {
			uid = 0
		}
	case id == nil:
	case c.peer.Squash:
		uid = id.Uid
	case uid == NoUid && string(m.Uname) == "root" && id.Uid != 0,
		uid != NoUid && uid != id.Uid:
		c.logf("Tattach as uid %d (uname %q) refused: the peer is uid %d and may act only as itself", int32(m.NUname), m.Uname, id.Uid)
		return ePerm
	default:
		uid = id.Uid
	}
	ctx := &r.ctx
	ctx.Caller = fs.Caller{Uid: uid, Gid: nobody}
	if id != nil {
		ctx.Gid = id.Gid
	}
	root := &node{ino: fs.RootInode, mode: syscall.S_IFDIR, refs: 1}
	var out fs.AttrOut
	if e := c.s.fs.GetAttr(ctx, fs.RootInode, 0, false, &out); e != 0 {
		return e
	}
	attr := out.Attr
	cur := root
	for _, name := range bytes.Split(m.Aname, []byte{'/'}) {
		if len(name) == 0 || string(name) == "." {
			continue
		}
		if string(name) == ".." {
			c.unrefNode(cur)
			return eInval
		}
		if id != nil {
			if e := r.mayExecDir(id, cur.ino); e != 0 {
				c.unrefNode(cur)
				return e
			}
		}
		var ent fs.Entry
		e := c.s.fs.Lookup(ctx, cur.ino, name, &ent)
		if e == 0 && ent.Ino == 0 {
			e = eNoent
		}
		if e != 0 {
			c.unrefNode(cur)
			return e
		}
		next := c.newChild(cur, name, &ent)
		c.unrefNode(cur) // next holds cur as parent
		cur, attr = next, ent.Attr
	}
	if !cur.isDir() {
		c.unrefNode(cur)
		return eNotdir
	}
	// The fid holds cur twice: as its node and as its root.
	c.refNode(cur)
	if _, e := c.addFid(m.Fid, uid, cur, cur, fidWalked, 0); e != 0 {
		c.unrefNode(cur)
		c.unrefNode(cur)
		return e
	}
	c.attached.Store(true) // the handshake timeout no longer applies
	enc := r.begin(MsgRattach, 20)
	q := qidOf(&attr, cur.ino)
	enc.qid(&q)
	return 0
}

// walk: nwname = 0 clones fid into newfid; otherwise each name is looked
// up in turn. "." stays, ".." goes up the fid's chain but never above its
// attach root. If the first name fails the reply is Rlerror; if a later one
// fails, Rwalk with the QIDs walked so far and newfid is not created. An
// opened fid cannot be walked (EBADF); newfid must be unused unless it is
// fid itself (EBADF).
func (c *conn) walk(r *request, body []byte) fs.Errno {
	var m Twalk
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	start, st, _ := f.snapshot()
	if st != fidWalked || start == nil {
		return eBadf
	}
	if m.Newfid != m.Fid && c.fidInUse(m.Newfid) {
		return eBadf
	}
	asked := m.NNames
	for i := 0; i < m.NNames; i++ {
		if len(m.Names[i]) == 0 || bytes.IndexByte(m.Names[i], '/') >= 0 {
			if i == 0 {
				return eInval
			}
			m.NNames = i // walk what precedes the bad name: a partial walk
			break
		}
	}
	var rw Rwalk
	ctx := r.ctxFor(f, nobody)
	id := c.checked()
	cur := start
	c.refNode(cur)
	for i := 0; i < m.NNames; i++ {
		name := m.Names[i]
		var next *node
		var attr fs.Attr
		var e fs.Errno
		if id != nil {
			e = r.mayExecDir(id, cur.ino) // search permission, as a path walk
		}
		switch {
		case e != 0:
		case isDot(name):
			next = cur
			c.mu.Lock()
			if len(name) == 2 && cur != f.root && cur.parent != nil {
				next = cur.parent
			}
			next.refs++
			c.mu.Unlock()
			r.attr = fs.AttrOut{}
			if e = c.s.fs.GetAttr(ctx, next.ino, 0, false, &r.attr); e != 0 {
				c.unrefNode(next)
			}
			attr = r.attr.Attr
		default:
			r.entry = fs.Entry{}
			e = c.s.fs.Lookup(ctx, cur.ino, name, &r.entry)
			if e == 0 && r.entry.Ino == 0 {
				e = eNoent
			}
			if e == 0 {
				next = c.newChild(cur, name, &r.entry)
				attr = r.entry.Attr
			}
		}
		if e != 0 {
			c.unrefNode(cur)
			if i == 0 {
				return e
			}
			return c.rwalk(r, &rw) // partial: newfid not created
		}
		rw.QIDs[i] = qidOf(&attr, next.ino)
		rw.NQIDs = i + 1
		c.unrefNode(cur)
		cur = next
	}
	if rw.NQIDs < asked {
		c.unrefNode(cur) // stopped at an invalid name: newfid not created
		return c.rwalk(r, &rw)
	}
	// cur carries one reference for the new fid.
	if m.Newfid == m.Fid {
		f.mu.Lock()
		if f.state != fidWalked {
			f.mu.Unlock()
			c.unrefNode(cur)
			return eBadf
		}
		old := f.n
		f.n = cur
		f.mu.Unlock()
		c.unrefNode(old)
	} else {
		c.refNode(f.root)
		if _, e := c.addFid(m.Newfid, f.uid, f.root, cur, fidWalked, 0); e != 0 {
			c.unrefNode(cur)
			c.unrefNode(f.root)
			return e
		}
	}
	return c.rwalk(r, &rw)
}

func (c *conn) rwalk(r *request, rw *Rwalk) fs.Errno {
	enc := r.begin(MsgRwalk, HeaderSize+2+QIDSize*rw.NQIDs)
	rw.encode(enc)
	return 0
}

// clunk frees fid. For a Txattrcreate fid it first sets (or removes) the
// attribute and reports that result; the fid is freed either way.
func (c *conn) clunk(r *request, body []byte) fs.Errno {
	var m Tclunk
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.removeFid(m.Fid)
	if f == nil {
		return eBadf
	}
	e := c.commitXattr(f)
	c.putFid(f, &r.ctx)
	if e != 0 {
		return e
	}
	r.begin(MsgRclunk, HeaderSize)
	return 0
}

// remove unlinks the file of fid (rmdir for a directory) and clunks fid,
// whatever the outcome.
func (c *conn) remove(r *request, body []byte) fs.Errno {
	var m Tremove
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.removeFid(m.Fid)
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
	ctx := r.ctxFor(f, nobody)
	if e := c.sameEntry(r, parent, name, n); e != 0 {
		return e
	}
	if id := c.checked(); id != nil {
		if _, _, e := r.mayDelete(id, parent.ino, name); e != 0 {
			return e
		}
	}
	var e fs.Errno
	if n.isDir() {
		e = c.s.fs.Rmdir(ctx, parent.ino, name)
	} else {
		e = c.s.fs.Unlink(ctx, parent.ino, name)
	}
	if e != 0 {
		return e
	}
	r.begin(MsgRremove, HeaderSize)
	return 0
}

// sameEntry checks that parent/name still names n's inode before Tremove
// or Trename act on the name n was reached by: if the file was renamed
// behind this connection's back, another file may hold the name now, and
// acting on it would hit the wrong file (ESTALE instead).
func (c *conn) sameEntry(r *request, parent *node, name []byte, n *node) fs.Errno {
	r.entry = fs.Entry{}
	e := c.s.fs.Lookup(&r.ctx, parent.ino, name, &r.entry)
	if e == 0 && r.entry.Ino == 0 {
		e = eNoent
	}
	if e != 0 {
		if e == eNoent {
			return syscall.ESTALE
		}
		return e
	}
	c.s.fs.Forget(r.entry.Ino, 1)
	if r.entry.Ino != n.ino {
		return syscall.ESTALE
	}
	return 0
}

// --- open, read, write ---------------------------------------------------

// dotlFlags maps P9_DOTL_* bits (the x86/asm-generic O_* values) to the
// host's O_* flags bit by bit. Bits without meaning on the server (NOCTTY,
// FASYNC, CLOEXEC, CREATE/EXCL in Tlopen) are dropped.
var dotlFlags = [...]struct{ p9, host uint32 }{
	{DotlTrunc, syscall.O_TRUNC},
	{DotlAppend, syscall.O_APPEND},
	{DotlNonblock, syscall.O_NONBLOCK},
	{DotlDsync, syscall.O_DSYNC},
	{DotlDirect, syscall.O_DIRECT},
	{DotlLargefile, syscall.O_LARGEFILE},
	{DotlDirectory, syscall.O_DIRECTORY},
	{DotlNofollow, syscall.O_NOFOLLOW},
	{DotlNoatime, syscall.O_NOATIME},
	{DotlSync, syscall.O_SYNC},
}

func hostOpenFlags(fl uint32) (uint32, fs.Errno) {
	acc := fl & 3
	if acc == DotlNoaccess {
		return 0, eInval
	}
	host := acc // RDONLY 0, WRONLY 1, RDWR 2 are the same everywhere
	for _, b := range dotlFlags {
		if fl&b.p9 != 0 {
			host |= b.host
		}
	}
	return host, 0
}

func (c *conn) lopen(r *request, body []byte) fs.Errno {
	var m Tlopen
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	flags, e := hostOpenFlags(m.Flags)
	if e != 0 {
		return e
	}
	// The open may wait for a host lease (wait.go): f.mu is not held
	// meanwhile (fidOpening), so other requests on f are served.
	n, e := c.beginOpen(r, f, nil)
	if e != 0 {
		return e
	}
	ended := false
	defer c.endPanickedOpen(f, &ended)
	var attr fs.AttrOut
	st, fh, e := c.openNode(r, f, n, flags, &attr)
	ended = true
	if e := c.endOpen(f, n, st, fh, e); e != 0 {
		return e
	}
	enc := r.begin(MsgRlopen, 24)
	q := qidOf(&attr.Attr, n.ino)
	enc.qid(&q)
	enc.u32(0) // iounit: the client uses msize - 24
	return 0
}

// openNode opens n, the node of f (fidOpening), for Tlopen: its
// attributes in attr, the state f takes and the handle.
func (c *conn) openNode(r *request, f *fid, n *node, flags uint32, attr *fs.AttrOut) (fidState, fs.Handle, fs.Errno) {
	ctx := r.ctxFor(f, nobody)
	var out fs.OpenOut
	if e := c.s.fs.GetAttr(ctx, n.ino, 0, false, attr); e != 0 {
		return 0, 0, e
	}
	isDir := attr.Attr.Mode&syscall.S_IFMT == syscall.S_IFDIR
	if id := c.checked(); id != nil {
		if e := r.mayOpen(id, n.ino, &attr.Attr, flags); e != 0 {
			return 0, 0, e
		}
	}
	if isDir {
		if flags&3 != syscall.O_RDONLY {
			return 0, 0, eIsdir
		}
		if e := c.s.fs.OpenDir(ctx, n.ino, flags, &out); e != 0 {
			return 0, 0, e
		}
		return fidOpenDir, out.Handle, 0
	}
	if flags&syscall.O_DIRECTORY != 0 {
		return 0, 0, eNotdir
	}
	if e := c.s.fs.Open(ctx, n.ino, flags, 0, &out); e != 0 {
		return 0, 0, e
	}
	return fidOpenFile, out.Handle, 0
}

// read: Rread's data is read by the filesystem straight into the reply
// buffer behind its header (see readSink). An xattr fid reads the value
// fetched by Txattrwalk.
func (c *conn) read(r *request, body []byte) fs.Errno {
	var m Tread
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	count := min(int(m.Count), int(c.msize.Load())-ReadHeaderSize)
	enc := r.begin(MsgRread, ReadHeaderSize+count)
	count = min(count, cap(enc.buf)-ReadHeaderSize)
	f.mu.Lock()
	n, st, fh := f.n, f.state, f.fh
	if st == fidXattrRead {
		var data []byte
		if m.Offset < uint64(len(f.xattr)) {
			data = f.xattr[m.Offset:]
		}
		data = data[:min(len(data), count)]
		enc.u32(uint32(len(data)))
		enc.bytes(data)
		f.mu.Unlock()
		return 0
	}
	f.mu.Unlock()
	switch st {
	case fidOpenFile:
	case fidOpenDir:
		return eIsdir
	default:
		return eBadf
	}
	if m.Offset > math.MaxInt64 {
		return eInval
	}
	r.sink.buf = enc.buf[ReadHeaderSize : ReadHeaderSize : ReadHeaderSize+count]
	e := c.s.fs.Read(r.ctxFor(f, nobody), n.ino, fh, int64(m.Offset), uint32(count), &r.sink)
	got := len(r.sink.buf)
	r.sink.buf = nil
	if e != 0 {
		return e
	}
	enc.u32(uint32(got))
	enc.grow(got) // the data is already in place
	return 0
}

// write: the filesystem gets the payload as a view of the receive buffer
// (see writeSource). An xattr-create fid collects the value.
func (c *conn) write9(r *request, body []byte) fs.Errno {
	var m Twrite
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	f.mu.Lock()
	n, st, fh := f.n, f.state, f.fh
	if st == fidXattrWrite {
		defer f.mu.Unlock()
		if m.Offset > uint64(len(f.xattr)) || uint64(len(m.Data)) > uint64(len(f.xattr))-m.Offset {
			return eRange // past the attr_size announced in Txattrcreate
		}
		copy(f.xattr[m.Offset:], m.Data)
		f.xlen = max(f.xlen, int(m.Offset)+len(m.Data))
		enc := r.begin(MsgRwrite, 11)
		enc.u32(uint32(len(m.Data)))
		return 0
	}
	f.mu.Unlock()
	switch st {
	case fidOpenFile:
	case fidOpenDir:
		return eIsdir
	default:
		return eBadf
	}
	if m.Offset > math.MaxInt64 {
		return eInval
	}
	r.src.data = m.Data
	var wfl uint32
	if id := c.checked(); id != nil && id.Uid != 0 {
		wfl = fs.WriteKillSuidGid // a write by a non-root user clears suid/sgid
	}
	cnt, e := c.s.fs.Write(r.ctxFor(f, nobody), n.ino, fh, int64(m.Offset), &r.src, wfl)
	r.src.data = nil
	if e != 0 {
		return e
	}
	enc := r.begin(MsgRwrite, 11)
	enc.u32(cnt)
	return 0
}

// readdir encodes entries straight into the Rreaddir reply (see dirSink).
// The offset is the filesystem's cookie (DirEntry.Off of the last entry).
func (c *conn) readdir(r *request, body []byte) fs.Errno {
	var m Treaddir
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, st, fh := f.snapshot()
	if st != fidOpenDir {
		if st == fidOpenFile {
			return eNotdir
		}
		return eBadf
	}
	count := min(int(m.Count), int(c.msize.Load())-ReadHeaderSize)
	enc := r.begin(MsgRreaddir, ReadHeaderSize+count)
	count = min(count, cap(enc.buf)-ReadHeaderSize)
	r.dsink.buf = enc.buf[ReadHeaderSize : ReadHeaderSize : ReadHeaderSize+count]
	e := c.s.fs.ReadDir(r.ctxFor(f, nobody), n.ino, fh, m.Offset, &r.dsink)
	got := len(r.dsink.buf)
	r.dsink.buf = nil
	if e != 0 && got == 0 {
		return e
	}
	enc.u32(uint32(got))
	enc.grow(got)
	return 0
}

// --- attributes ----------------------------------------------------------

// getattr answers with the basic set (mode … blocks) whatever was asked,
// as the protocol allows, plus btime when asked for and the filesystem's
// Statx has it.
func (c *conn) getattr(r *request, body []byte) fs.Errno {
	var m Tgetattr
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, st, fh := f.snapshot()
	if n == nil {
		return eBadf
	}
	ctx := r.ctxFor(f, nobody)
	open := st == fidOpenFile || st == fidOpenDir
	r.attr = fs.AttrOut{}
	if e := c.s.fs.GetAttr(ctx, n.ino, fh, open, &r.attr); e != 0 {
		return e
	}
	a := &r.attr.Attr
	rg := Rgetattr{
		Valid: AttrBasic,
		QID:   qidOf(a, n.ino),
		Mode:  a.Mode, UID: a.Uid, GID: a.Gid,
		Nlink: uint64(a.Nlink), Rdev: uint64(a.Rdev), Size: a.Size,
		Blksize: uint64(a.Blksize), Blocks: a.Blocks,
		AtimeSec: a.Atime, AtimeNsec: uint64(a.AtimeNsec),
		MtimeSec: a.Mtime, MtimeNsec: uint64(a.MtimeNsec),
		CtimeSec: a.Ctime, CtimeNsec: uint64(a.CtimeNsec),
	}
	if m.Mask&AttrBtime != 0 {
		const statxBtime = 0x800
		r.statx = fs.StatxOut{}
		sx := &r.statx.Statx
		if c.s.fs.Statx(ctx, n.ino, fh, open, 0, statxBtime, &r.statx) == 0 && sx.Mask&statxBtime != 0 {
			rg.Valid |= AttrBtime
			rg.BtimeSec = uint64(sx.Btime.Sec)
			rg.BtimeNsec = uint64(sx.Btime.Nsec)
		}
	}
	rg.encode(r.begin(MsgRgetattr, 160))
	return 0
}

// setattr maps P9_ATTR_* onto fs.SetAttr: ATIME/MTIME without *_SET mean
// "now"; CTIME carries no value (the host updates ctime itself).
func (c *conn) setattr(r *request, body []byte) fs.Errno {
	var m Tsetattr
	d := decoder{buf: body}
	if m.decode(&d); !d.done() {
		return eInval
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, st, fh := f.snapshot()
	if n == nil {
		return eBadf
	}
	var in fs.SetAttrIn
	if m.Valid&SetAttrMode != 0 {
		in.Valid |= fs.SetMode
		in.Mode = m.Mode
	}
	if m.Valid&SetAttrUID != 0 {
		in.Valid |= fs.SetUid
		in.Uid = m.UID
	}
	if m.Valid&SetAttrGID != 0 {
		in.Valid |= fs.SetGid
		in.Gid = m.GID
	}
	if m.Valid&SetAttrSize != 0 {
		in.Valid |= fs.SetSize
		in.Size = m.Size
	}
	if m.Valid&SetAttrAtime != 0 {
		in.Valid |= fs.SetAtime
		if m.Valid&SetAttrAtimeSet != 0 {
			in.Atime, in.AtimeNsec = m.AtimeSec, uint32(m.AtimeNsec)
		} else {
			in.Valid |= fs.SetAtimeNow
		}
	}
	if m.Valid&SetAttrMtime != 0 {
		in.Valid |= fs.SetMtime
		if m.Valid&SetAttrMtimeSet != 0 {
			in.Mtime, in.MtimeNsec = m.MtimeSec, uint32(m.MtimeNsec)
		} else {
			in.Valid |= fs.SetMtimeNow
		}
	}
	if st == fidOpenFile {
		in.Valid |= fs.SetHandle
		in.Handle = fh
	}
	ctx := r.ctxFor(f, nobody)
	if id := c.checked(); id != nil {
		a, e := r.attrOf(n.ino)
		if e != 0 {
			return e
		}
		if e := r.checkSetattr(id, n.ino, &a, &in); e != 0 {
			return e
		}
	}
	var out fs.AttrOut
	if in.Valid&^uint32(fs.SetHandle) != 0 {
		if e := c.s.fs.SetAttr(ctx, n.ino, &in, &out); e != 0 {
			return e
		}
	}
	r.begin(MsgRsetattr, HeaderSize)
	return 0
}

func (c *conn) statfs(r *request, body []byte) fs.Errno {
	var m Tstatfs
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
	r.stfs = fs.StatFs{}
	out := &r.stfs
	if e := c.s.fs.StatFs(r.ctxFor(f, nobody), n.ino, out); e != 0 {
		return e
	}
	rs := Rstatfs{FsType: V9fsMagic, Bsize: out.Bsize, Blocks: out.Blocks, Bfree: out.Bfree,
		Bavail: out.Bavail, Files: out.Files, Ffree: out.Ffree, Namelen: out.NameLen}
	rs.encode(r.begin(MsgRstatfs, 67))
	return 0
}

func (c *conn) fsync(r *request, body []byte) fs.Errno {
	var m Tfsync
	if len(body) == 4 {
		// gVisor-derived clients (hugelgupf/p9) send Tfsync without
		// datasync; Linux sends both. Accept the short form as fsync.
		m.Fid = uint32(body[0]) | uint32(body[1])<<8 | uint32(body[2])<<16 | uint32(body[3])<<24
	} else {
		d := decoder{buf: body}
		if m.decode(&d); !d.done() {
			return eInval
		}
	}
	f := c.getFid(m.Fid)
	if f == nil {
		return eBadf
	}
	defer c.putFid(f, &r.ctx)
	n, st, fh := f.snapshot()
	var e fs.Errno
	switch st {
	case fidOpenFile:
		e = c.s.fs.Fsync(r.ctxFor(f, nobody), n.ino, fh, m.Datasync != 0)
	case fidOpenDir:
		e = c.s.fs.FsyncDir(r.ctxFor(f, nobody), n.ino, fh, m.Datasync != 0)
	default:
		return eBadf
	}
	if e != 0 {
		return e
	}
	r.begin(MsgRfsync, HeaderSize)
	return 0
}
