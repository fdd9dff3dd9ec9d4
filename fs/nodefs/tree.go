package nodefs

import (
	"sync"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fs"
)

// Generation is the generation number of every entry a Tree hands out. IDs
// are never reused, so (ID, Generation) names one node for the tree's
// life.
const Generation = 1

// Options say how a Tree answers. The zero value caches nothing in the
// client.
type Options struct {
	// EntryTimeout is how long the client may cache a name → node binding;
	// AttrTimeout how long it may cache attributes; NegativeTimeout how
	// long it may cache that a name does not exist (0: not at all, the
	// lookup fails ENOENT).
	EntryTimeout, AttrTimeout, NegativeTimeout time.Duration
}

// DefaultOptions are one second for entries and attributes, and no
// negative caching.
var DefaultOptions = Options{EntryTimeout: time.Second, AttrTimeout: time.Second}

// Tree serves a tree of nodes as an fs.FileSystem: it gives each node an
// ID when the client first sees it, counts lookups and forgets, keeps the
// open handles, and calls the node's capability for each request (the
// default of the package comment for what it lacks). Its methods are safe
// for concurrent use.
type Tree struct {
	opts Options
	root *Inode

	mu sync.RWMutex
	// nodes holds every node the client may name: the root, and each
	// node with lookups > 0.
	// +checklocks:mu
	nodes map[fs.Inode]*Inode
	// next is the last ID handed out; IDs only grow.
	// +checklocks:mu
	next uint64

	hmu sync.Mutex
	// handles holds the open FileHandles; fs.Handle h is handles[h-1]
	// (0 is an open without one).
	// +checklocks:hmu
	handles []openFile
	// free lists unused slots of handles.
	// +checklocks:hmu
	free []uint32
}

type openFile struct {
	in *Inode // nil: slot free
	fh FileHandle
}

// New returns a Tree whose root directory is root; opts nil means
// DefaultOptions. root must not belong to another tree.
func New(root Node, opts *Options) *Tree {
	t := &Tree{opts: DefaultOptions, nodes: map[fs.Inode]*Inode{}, next: uint64(fs.RootInode)}
	if opts != nil {
		t.opts = *opts
	}
	in := root.embedded()
	if !in.tree.CompareAndSwap(nil, t) {
		panic("nodefs: New: the root node already belongs to a tree")
	}
	t.mu.Lock()
	in.node = root
	in.id.Store(uint64(fs.RootInode))
	in.lookups = 1 // never forgotten
	t.nodes[fs.RootInode] = in
	t.mu.Unlock()
	t.root = in
	return t
}

var _ fs.FileSystem = (*Tree)(nil)

// Errnos as values, so returning them allocates nothing.
const (
	eNoent  = syscall.ENOENT
	eStale  = syscall.ESTALE
	eBadf   = syscall.EBADF
	eIO     = syscall.EIO
	eInval  = syscall.EINVAL
	ePerm   = syscall.EPERM
	eNosys  = syscall.ENOSYS
	eNodata = syscall.ENODATA
	eNotsup = syscall.EOPNOTSUPP
)

// node returns the node the client names ino.
func (t *Tree) node(ino fs.Inode) (*Inode, fs.Errno) {
	t.mu.RLock()
	in := t.nodes[ino]
	t.mu.RUnlock()
	if in == nil {
		return nil, eStale
	}
	return in, 0
}

// assign gives in (embedded in n) its ID if it has none, and reports
// whether it belongs to t.
func (t *Tree) assign(n Node) (*Inode, bool) {
	in := n.embedded()
	if in.id.Load() != 0 {
		return in, in.tree.Load() == t
	}
	if !in.tree.CompareAndSwap(nil, t) && in.tree.Load() != t {
		return in, false
	}
	t.mu.Lock()
	if in.id.Load() == 0 {
		in.node = n
		t.next++
		in.id.Store(t.next)
	}
	t.mu.Unlock()
	return in, true
}

// ref counts one more lookup of in (which has its ID) and makes it
// nameable.
func (t *Tree) ref(in *Inode) {
	t.mu.Lock()
	if in.lookups == 0 {
		t.nodes[fs.Inode(in.id.Load())] = in
	}
	in.lookups++
	t.mu.Unlock()
}

// Forget lowers ino's lookup count by n; at zero the client can no longer
// name the node (its ID stays the node's and is never given to another).
func (t *Tree) Forget(ino fs.Inode, n uint64) {
	if ino == fs.RootInode {
		return
	}
	t.mu.Lock()
	if in := t.nodes[ino]; in != nil {
		if n >= in.lookups {
			in.lookups = 0
			delete(t.nodes, ino)
		} else {
			in.lookups -= n
		}
	}
	t.mu.Unlock()
}

// getattr fills out with n's attributes (the default of the package
// comment if n has no Getattr) and n's ID.
func (t *Tree) getattr(ctx *fs.Context, in *Inode, fh FileHandle, out *fs.Attr) fs.Errno {
	if g, ok := in.node.(NodeGetattrer); ok {
		if e := g.Getattr(ctx, fh, out); e != 0 {
			return e
		}
	} else {
		*out = fs.Attr{Mode: syscall.S_IFREG | 0o444, Nlink: 1}
		if _, dir := in.node.(NodeLookuper); dir {
			out.Mode, out.Nlink = syscall.S_IFDIR|0o555, 2
		}
	}
	out.Ino = in.id.Load()
	return 0
}

// entry answers a request that names child (a node of the tree's author's
// making): its ID, attributes and timeouts in out, and one more lookup.
func (t *Tree) entry(ctx *fs.Context, child Node, e fs.Errno, out *fs.Entry) fs.Errno {
	if e != 0 {
		return e
	}
	if child == nil {
		return eIO // a node method returned no node and no error
	}
	in, ok := t.assign(child)
	if !ok {
		return eIO // a node of another tree
	}
	if e := t.getattr(ctx, in, nil, &out.Attr); e != 0 {
		return e
	}
	t.ref(in)
	out.Ino = fs.Inode(in.id.Load())
	out.Generation = Generation
	out.EntryTimeout, out.AttrTimeout = t.opts.EntryTimeout, t.opts.AttrTimeout
	return 0
}

// Init does nothing.
func (t *Tree) Init(*fs.Context, *fs.InitInfo) fs.Errno { return 0 }

// Destroy does nothing: the client is gone, and so are its lookups.
func (t *Tree) Destroy() {}

// Lookup asks parent's NodeLookuper for name.
func (t *Tree) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	in, e := t.node(parent)
	if e != 0 {
		return e
	}
	l, ok := in.node.(NodeLookuper)
	if !ok {
		return eNoent
	}
	child, e := l.Lookup(ctx, name)
	if e == eNoent && t.opts.NegativeTimeout > 0 {
		out.Ino, out.EntryTimeout = 0, t.opts.NegativeTimeout
		return 0
	}
	return t.entry(ctx, child, e, out)
}

// GetAttr asks the node's NodeGetattrer.
func (t *Tree) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	in, e := t.node(ino)
	if e != 0 {
		return e
	}
	var f FileHandle
	if hasHandle {
		if f, e = t.handle(in, fh); e != 0 {
			return e
		}
	}
	out.Timeout = t.opts.AttrTimeout
	return t.getattr(ctx, in, f, &out.Attr)
}

// SetAttr asks the node's NodeSetattrer; EPERM without one.
func (t *Tree) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	n, e := t.node(ino)
	if e != 0 {
		return e
	}
	s, ok := n.node.(NodeSetattrer)
	if !ok {
		return ePerm
	}
	var f FileHandle
	if in.Valid&fs.SetHandle != 0 {
		if f, e = t.handle(n, in.Handle); e != 0 {
			return e
		}
	}
	if e := s.Setattr(ctx, f, in, &out.Attr); e != 0 {
		return e
	}
	out.Attr.Ino = n.id.Load()
	out.Timeout = t.opts.AttrTimeout
	return 0
}

// Readlink asks the node's NodeReadlinker; EINVAL (not a symlink) without.
func (t *Tree) Readlink(ctx *fs.Context, ino fs.Inode, buf []byte) (int, fs.Errno) {
	in, e := t.node(ino)
	if e != 0 {
		return 0, e
	}
	r, ok := in.node.(NodeReadlinker)
	if !ok {
		return 0, eInval
	}
	return r.Readlink(ctx, buf)
}

// dir returns parent's node as a T, or EPERM if it cannot do that.
func dir[T any](t *Tree, parent fs.Inode) (T, fs.Errno) {
	var zero T
	in, e := t.node(parent)
	if e != 0 {
		return zero, e
	}
	d, ok := in.node.(T)
	if !ok {
		return zero, ePerm
	}
	return d, 0
}

// Symlink asks parent's NodeSymlinker; EPERM without one.
func (t *Tree) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	d, e := dir[NodeSymlinker](t, parent)
	if e != 0 {
		return e
	}
	child, e := d.Symlink(ctx, name, target)
	return t.entry(ctx, child, e, out)
}

// Mknod asks parent's NodeMknoder; EPERM without one.
func (t *Tree) Mknod(ctx *fs.Context, parent fs.Inode, name []byte, mode, rdev uint32, out *fs.Entry) fs.Errno {
	d, e := dir[NodeMknoder](t, parent)
	if e != 0 {
		return e
	}
	child, e := d.Mknod(ctx, name, mode, rdev)
	return t.entry(ctx, child, e, out)
}

// Mkdir asks parent's NodeMkdirer; EPERM without one.
func (t *Tree) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	d, e := dir[NodeMkdirer](t, parent)
	if e != 0 {
		return e
	}
	child, e := d.Mkdir(ctx, name, mode)
	return t.entry(ctx, child, e, out)
}

// Unlink asks parent's NodeUnlinker; EPERM without one.
func (t *Tree) Unlink(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	d, e := dir[NodeUnlinker](t, parent)
	if e != 0 {
		return e
	}
	return d.Unlink(ctx, name)
}

// Rmdir asks parent's NodeRmdirer; EPERM without one.
func (t *Tree) Rmdir(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	d, e := dir[NodeRmdirer](t, parent)
	if e != 0 {
		return e
	}
	return d.Rmdir(ctx, name)
}

// Rename asks parent's NodeRenamer; EPERM without one.
func (t *Tree) Rename(ctx *fs.Context, parent fs.Inode, name []byte, newParent fs.Inode, newName []byte, flags uint32) fs.Errno {
	d, e := dir[NodeRenamer](t, parent)
	if e != 0 {
		return e
	}
	np, e := t.node(newParent)
	if e != 0 {
		return e
	}
	return d.Rename(ctx, name, np.node, newName, flags)
}

// Link asks newParent's NodeLinker; EPERM without one.
func (t *Tree) Link(ctx *fs.Context, ino fs.Inode, newParent fs.Inode, newName []byte, out *fs.Entry) fs.Errno {
	d, e := dir[NodeLinker](t, newParent)
	if e != 0 {
		return e
	}
	target, e := t.node(ino)
	if e != 0 {
		return e
	}
	if e := d.Link(ctx, target.node, newName); e != 0 {
		return e
	}
	return t.entry(ctx, target.node, 0, out)
}

// Open asks the node's NodeOpener; without one it opens with no
// FileHandle.
func (t *Tree) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	in, e := t.node(ino)
	if e != 0 {
		return e
	}
	var f FileHandle
	if o, ok := in.node.(NodeOpener); ok {
		if f, e = o.Open(ctx, flags, openFlags, out); e != 0 {
			return e
		}
	}
	out.Handle = t.open(in, f)
	return 0
}

// Create asks parent's NodeCreater; EPERM without one.
func (t *Tree) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	d, e := dir[NodeCreater](t, parent)
	if e != 0 {
		return e
	}
	child, f, e := d.Create(ctx, name, mode, flags, open)
	return t.created(ctx, child, f, e, out, open)
}

// created answers a Create or Tmpfile that made child and opened it as f:
// its entry, as entry does, and the open's handle; if the entry fails,
// the open is released.
func (t *Tree) created(ctx *fs.Context, child Node, f FileHandle, e fs.Errno, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if e := t.entry(ctx, child, e, out); e != 0 {
		if child != nil {
			t.release(ctx, child.embedded(), f)
		}
		return e
	}
	open.Handle = t.open(child.embedded(), f)
	return 0
}

// Tmpfile asks parent's NodeTmpfiler; ENOSYS without one (the client
// answers O_TMPFILE with EOPNOTSUPP from then on).
func (t *Tree) Tmpfile(ctx *fs.Context, parent fs.Inode, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	d, e := dir[NodeTmpfiler](t, parent)
	if e == ePerm {
		return eNosys
	} else if e != 0 {
		return e
	}
	child, f, e := d.Tmpfile(ctx, mode, flags, open)
	return t.created(ctx, child, f, e, out, open)
}

// Read asks the node's NodeReader; EINVAL (not readable) without one.
func (t *Tree) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return e
	}
	r, ok := in.node.(NodeReader)
	if !ok {
		return eInval
	}
	return r.Read(ctx, f, off, size, dst)
}

// Write asks the node's NodeWriter; EINVAL (not writable) without one.
func (t *Tree) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return 0, e
	}
	w, ok := in.node.(NodeWriter)
	if !ok {
		return 0, eInval
	}
	return w.Write(ctx, f, off, src, flags)
}

// Flush asks the node's NodeFlusher; nothing to do without one.
func (t *Tree) Flush(ctx *fs.Context, ino fs.Inode, fh fs.Handle, lockOwner uint64) fs.Errno {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return e
	}
	if fl, ok := in.node.(NodeFlusher); ok {
		return fl.Flush(ctx, f, lockOwner)
	}
	return 0
}

// Fsync asks the node's NodeFsyncer; nothing to do without one.
func (t *Tree) Fsync(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return e
	}
	if s, ok := in.node.(NodeFsyncer); ok {
		return s.Fsync(ctx, f, datasync)
	}
	return 0
}

// Release tells the node's NodeReleaser and forgets the handle.
func (t *Tree) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, _ uint32) fs.Errno {
	return t.closeHandle(ctx, ino, fh)
}

// Fallocate asks the node's NodeFallocater; EOPNOTSUPP without one.
func (t *Tree) Fallocate(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off, length uint64, mode uint32) fs.Errno {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return e
	}
	a, ok := in.node.(NodeFallocater)
	if !ok {
		return eNotsup
	}
	return a.Fallocate(ctx, f, off, length, mode)
}

// Lseek asks the node's NodeLseeker; ENOSYS without one (the client then
// treats the whole file as data, which is right for a file without holes).
func (t *Tree) Lseek(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, whence uint32) (int64, fs.Errno) {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return 0, e
	}
	s, ok := in.node.(NodeLseeker)
	if !ok {
		return 0, eNosys
	}
	return s.Lseek(ctx, f, off, whence)
}

// CopyFileRange is ENOSYS: the client copies with reads and writes.
func (t *Tree) CopyFileRange(*fs.Context, fs.Inode, fs.Handle, int64, fs.Inode, fs.Handle, int64, uint64, uint64) (uint64, fs.Errno) {
	return 0, eNosys
}

// OpenDir asks the node's NodeOpendirer; without one it opens with no
// FileHandle.
func (t *Tree) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	in, e := t.node(ino)
	if e != 0 {
		return e
	}
	var f FileHandle
	if o, ok := in.node.(NodeOpendirer); ok {
		if f, e = o.Opendir(ctx, flags, out); e != 0 {
			return e
		}
	}
	out.Handle = t.open(in, f)
	return 0
}

// ReadDir asks the node's NodeReaddirer; an empty directory without one.
func (t *Tree) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return e
	}
	r, ok := in.node.(NodeReaddirer)
	if !ok {
		return 0
	}
	dl := DirList{t: t, ctx: ctx, sink: dst}
	return r.Readdir(ctx, f, off, &dl)
}

// ReleaseDir tells the node's NodeReleaser and forgets the handle.
func (t *Tree) ReleaseDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno {
	return t.closeHandle(ctx, ino, fh)
}

// FsyncDir asks the node's NodeFsyncer; nothing to do without one.
func (t *Tree) FsyncDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	return t.Fsync(ctx, ino, fh, datasync)
}

// StatFs asks the node's NodeStatfser, else the root's; without either,
// an empty filesystem of 4 KiB blocks and 255-byte names.
func (t *Tree) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	in, e := t.node(ino)
	if e != 0 {
		return e
	}
	if s, ok := in.node.(NodeStatfser); ok {
		return s.Statfs(ctx, out)
	}
	if s, ok := t.root.node.(NodeStatfser); ok {
		return s.Statfs(ctx, out)
	}
	*out = fs.StatFs{Bsize: 4096, Frsize: 4096, NameLen: 255}
	return 0
}

// Access is ENOSYS: permissions are the client's to check from the
// attributes (FUSE default_permissions; see the package comment).
func (t *Tree) Access(*fs.Context, fs.Inode, uint32) fs.Errno { return eNosys }

// Statx is ENOSYS: the client falls back to GetAttr.
func (t *Tree) Statx(*fs.Context, fs.Inode, fs.Handle, bool, uint32, uint32, *fs.StatxOut) fs.Errno {
	return eNosys
}

// SyncFs has nothing to do.
func (t *Tree) SyncFs(*fs.Context, fs.Inode) fs.Errno { return 0 }

// SetXattr asks the node's NodeXattrer; EOPNOTSUPP without one.
func (t *Tree) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	x, e := dir[NodeXattrer](t, ino)
	if e == ePerm {
		return eNotsup
	} else if e != 0 {
		return e
	}
	return x.Setxattr(ctx, name, value, flags)
}

// GetXattr asks the node's NodeXattrer; ENODATA (no such attribute)
// without one.
func (t *Tree) GetXattr(ctx *fs.Context, ino fs.Inode, name, dst []byte) (int, fs.Errno) {
	x, e := dir[NodeXattrer](t, ino)
	if e == ePerm {
		return 0, eNodata
	} else if e != 0 {
		return 0, e
	}
	return x.Getxattr(ctx, name, dst)
}

// ListXattr asks the node's NodeXattrer; an empty list without one.
func (t *Tree) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	x, e := dir[NodeXattrer](t, ino)
	if e == ePerm {
		return 0, 0
	} else if e != 0 {
		return 0, e
	}
	return x.Listxattr(ctx, dst)
}

// RemoveXattr asks the node's NodeXattrer; ENODATA without one.
func (t *Tree) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	x, e := dir[NodeXattrer](t, ino)
	if e == ePerm {
		return eNodata
	} else if e != 0 {
		return e
	}
	return x.Removexattr(ctx, name)
}

// GetLk asks the node's NodeLocker; ENOSYS without one (a FUSE client
// then keeps locks itself; see fuse.Options.Locks).
func (t *Tree) GetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return e
	}
	l, ok := in.node.(NodeLocker)
	if !ok {
		return eNosys
	}
	return l.Getlk(ctx, f, owner, lk, out)
}

// SetLk asks the node's NodeLocker; ENOSYS without one.
func (t *Tree) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	in, f, e := t.nodeHandle(ino, fh)
	if e != 0 {
		return e
	}
	l, ok := in.node.(NodeLocker)
	if !ok {
		return eNosys
	}
	return l.Setlk(ctx, f, owner, lk, wait, flock)
}
