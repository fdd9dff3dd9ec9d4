package p9

import (
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fs"
)

// memFS is a small in-memory fs.FileSystem for the server's tests. It
// counts lookups and open handles so tests can check that a connection's
// teardown returns every one. With backing set, regular files keep their
// data in a temp file and Read/Write use the Sink's ReadFrom and the
// Source's WriteTo, the zero-copy path a real filesystem takes.
type memFS struct {
	fs.Base
	backing string // temp dir for backing files, or ""

	mu      sync.Mutex
	nodes   map[fs.Inode]*memNode
	next    fs.Inode
	lookups map[fs.Inode]int64
	handles map[fs.Handle]fs.Inode
	nextFh  fs.Handle
	locks   map[fs.Inode][]memLock

	// setLkBlocks makes SetLk block until the request is interrupted
	// (then EINTR), as a SETLKW on a busy lock would; setLkEntered is
	// closed... signalled once per blocking call.
	setLkBlocks  atomic.Bool
	setLkEntered chan struct{}
	panicOn      atomic.Value // string name of a method that panics
	// openGate, if set, makes Open of a regular file one that must wait
	// (as one breaking a host lease): with NoWait it answers
	// fs.WouldWait; allowed to wait, it signals openEntered and blocks
	// until the channel is closed, whatever interrupts it (an open past
	// the point where an interrupt could stop it), then opens.
	openGate    atomic.Pointer[chan struct{}]
	openEntered chan struct{}
	destroyed   atomic.Bool
}

type memNode struct {
	mode     uint32
	uid, gid uint32
	nlink    uint32
	rdev     uint32
	data     []byte
	file     *os.File // backing, if any
	size     int64    // of the backing file (kept here: Stat allocates)
	target   []byte
	children map[string]fs.Inode
	xattrs   map[string][]byte
	mtime    time.Time
	atime    time.Time
}

type memLock struct {
	owner      uint64
	start, end uint64
	typ        uint32
	pid        uint32
}

func newMemFS(backing string) *memFS {
	m := &memFS{
		backing: backing,
		nodes:   map[fs.Inode]*memNode{},
		next:    fs.RootInode + 1,
		lookups: map[fs.Inode]int64{},
		handles: map[fs.Handle]fs.Inode{},
		nextFh:  1,
		locks:   map[fs.Inode][]memLock{},

		setLkEntered: make(chan struct{}, 16),
		openEntered:  make(chan struct{}, 16),
	}
	m.nodes[fs.RootInode] = &memNode{mode: syscall.S_IFDIR | 0755, nlink: 2, children: map[string]fs.Inode{}, xattrs: map[string][]byte{}}
	return m
}

func (m *memFS) maybePanic(name string) {
	if v, _ := m.panicOn.Load().(string); v == name {
		panic("memfs: injected panic in " + name)
	}
}

// outstanding reports lookups not yet forgotten and handles not released.
func (m *memFS) outstanding() (lookups int64, handles int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.lookups {
		lookups += n
	}
	return lookups, len(m.handles)
}

func (m *memFS) attr(ino fs.Inode, n *memNode, a *fs.Attr) {
	*a = fs.Attr{Ino: uint64(ino) + 1000, Mode: n.mode, Nlink: n.nlink, Uid: n.uid, Gid: n.gid, Rdev: n.rdev, Blksize: 4096,
		Mtime: uint64(n.mtime.Unix()), MtimeNsec: uint32(n.mtime.Nanosecond()),
		Atime: uint64(n.atime.Unix()), AtimeNsec: uint32(n.atime.Nanosecond())}
	switch {
	case n.file != nil:
		a.Size = uint64(n.size)
	case n.mode&syscall.S_IFMT == syscall.S_IFLNK:
		a.Size = uint64(len(n.target))
	default:
		a.Size = uint64(len(n.data))
	}
	a.Blocks = (a.Size + 511) / 512
}

// entry fills out for ino and raises its lookup count. Preconditions: mu held.
func (m *memFS) entry(ino fs.Inode, out *fs.Entry) {
	out.Ino = ino
	m.attr(ino, m.nodes[ino], &out.Attr)
	m.lookups[ino]++
}

func (m *memFS) dir(ino fs.Inode) (*memNode, fs.Errno) {
	n := m.nodes[ino]
	if n == nil {
		return nil, syscall.ESTALE
	}
	if n.children == nil {
		return nil, syscall.ENOTDIR
	}
	return n, 0
}

func (m *memFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	m.maybePanic("Lookup")
	m.mu.Lock()
	defer m.mu.Unlock()
	d, e := m.dir(parent)
	if e != 0 {
		return e
	}
	ino, ok := d.children[string(name)]
	if !ok {
		return syscall.ENOENT
	}
	m.entry(ino, out)
	return 0
}

func (m *memFS) Forget(ino fs.Inode, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups[ino] -= int64(n)
	if m.lookups[ino] < 0 {
		panic("memfs: forget below zero")
	}
	if m.lookups[ino] == 0 {
		delete(m.lookups, ino)
	}
}

func (m *memFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n == nil {
		return syscall.ESTALE
	}
	m.attr(ino, n, &out.Attr)
	return 0
}

func (m *memFS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n == nil {
		return syscall.ESTALE
	}
	if in.Valid&fs.SetMode != 0 {
		n.mode = n.mode&syscall.S_IFMT | in.Mode&07777
	}
	if in.Valid&fs.SetUid != 0 {
		n.uid = in.Uid
	}
	if in.Valid&fs.SetGid != 0 {
		n.gid = in.Gid
	}
	if in.Valid&fs.SetSize != 0 {
		if n.children != nil {
			return syscall.EISDIR
		}
		if n.file != nil {
			n.file.Truncate(int64(in.Size))
			n.size = int64(in.Size)
		} else {
			d := make([]byte, in.Size)
			copy(d, n.data)
			n.data = d
		}
	}
	if in.Valid&fs.SetMtime != 0 {
		n.mtime = time.Unix(int64(in.Mtime), int64(in.MtimeNsec))
		if in.Valid&fs.SetMtimeNow != 0 {
			n.mtime = time.Now()
		}
	}
	if in.Valid&fs.SetAtime != 0 {
		n.atime = time.Unix(int64(in.Atime), int64(in.AtimeNsec))
		if in.Valid&fs.SetAtimeNow != 0 {
			n.atime = time.Now()
		}
	}
	m.attr(ino, n, &out.Attr)
	return 0
}

func (m *memFS) Readlink(ctx *fs.Context, ino fs.Inode, buf []byte) (int, fs.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n == nil || n.mode&syscall.S_IFMT != syscall.S_IFLNK {
		return 0, syscall.EINVAL
	}
	if len(n.target) > len(buf) {
		return 0, syscall.ENAMETOOLONG
	}
	return copy(buf, n.target), 0
}

// mknode creates name in parent. Preconditions: mu held.
func (m *memFS) mknode(ctx *fs.Context, parent fs.Inode, name []byte, n *memNode, out *fs.Entry) fs.Errno {
	d, e := m.dir(parent)
	if e != 0 {
		return e
	}
	if _, ok := d.children[string(name)]; ok {
		return syscall.EEXIST
	}
	n.uid, n.gid = ctx.Uid, ctx.Gid
	n.mtime = time.Unix(1700000000, 5)
	n.xattrs = map[string][]byte{}
	if n.nlink == 0 {
		n.nlink = 1
	}
	ino := m.next
	m.next++
	m.nodes[ino] = n
	d.children[string(name)] = ino
	if n.children != nil {
		d.nlink++
	}
	m.entry(ino, out)
	return 0
}

func (m *memFS) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mknode(ctx, parent, name, &memNode{mode: syscall.S_IFLNK | 0777, target: append([]byte(nil), target...)}, out)
}

func (m *memFS) Mknod(ctx *fs.Context, parent fs.Inode, name []byte, mode, rdev uint32, out *fs.Entry) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mknode(ctx, parent, name, &memNode{mode: mode, rdev: rdev}, out)
}

func (m *memFS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mknode(ctx, parent, name, &memNode{mode: syscall.S_IFDIR | mode&07777, nlink: 2, children: map[string]fs.Inode{}}, out)
}

func (m *memFS) remove(parent fs.Inode, name []byte, dir bool) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, e := m.dir(parent)
	if e != 0 {
		return e
	}
	ino, ok := d.children[string(name)]
	if !ok {
		return syscall.ENOENT
	}
	n := m.nodes[ino]
	if dir {
		if n.children == nil {
			return syscall.ENOTDIR
		}
		if len(n.children) > 0 {
			return syscall.ENOTEMPTY
		}
		d.nlink--
	} else if n.children != nil {
		return syscall.EISDIR
	}
	delete(d.children, string(name))
	n.nlink--
	return 0
}

func (m *memFS) Unlink(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	return m.remove(parent, name, false)
}

func (m *memFS) Rmdir(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	return m.remove(parent, name, true)
}

func (m *memFS) Rename(ctx *fs.Context, parent fs.Inode, name []byte, newParent fs.Inode, newName []byte, flags uint32) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, e := m.dir(parent)
	if e != 0 {
		return e
	}
	nd, e := m.dir(newParent)
	if e != 0 {
		return e
	}
	ino, ok := d.children[string(name)]
	if !ok {
		return syscall.ENOENT
	}
	if old, ok := nd.children[string(newName)]; ok {
		if on := m.nodes[old]; on.children != nil && len(on.children) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	delete(d.children, string(name))
	nd.children[string(newName)] = ino
	return 0
}

func (m *memFS) Link(ctx *fs.Context, ino fs.Inode, newParent fs.Inode, newName []byte, out *fs.Entry) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	nd, e := m.dir(newParent)
	if e != 0 {
		return e
	}
	n := m.nodes[ino]
	if n.children != nil {
		return syscall.EPERM
	}
	if _, ok := nd.children[string(newName)]; ok {
		return syscall.EEXIST
	}
	nd.children[string(newName)] = ino
	n.nlink++
	m.entry(ino, out)
	return 0
}

func (m *memFS) newHandle(ino fs.Inode) fs.Handle {
	fh := m.nextFh
	m.nextFh++
	m.handles[fh] = ino
	return fh
}

func (m *memFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	m.maybePanic("Open")
	if g := m.openGate.Load(); g != nil {
		if ctx.NoWait {
			return fs.WouldWait
		}
		m.openEntered <- struct{}{}
		<-*g
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n == nil {
		return syscall.ESTALE
	}
	if n.children != nil {
		return syscall.EISDIR
	}
	if flags&syscall.O_TRUNC != 0 {
		n.data = nil
		if n.file != nil {
			n.file.Truncate(0)
			n.size = 0
		}
	}
	out.Handle = m.newHandle(ino)
	return 0
}

func (m *memFS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	m.maybePanic("Create")
	m.mu.Lock()
	defer m.mu.Unlock()
	n := &memNode{mode: mode}
	if m.backing != "" {
		f, err := os.CreateTemp(m.backing, "f")
		if err != nil {
			return syscall.EIO
		}
		n.file = f
	}
	if e := m.mknode(ctx, parent, name, n, out); e != 0 {
		if n.file != nil {
			n.file.Close()
		}
		return e
	}
	open.Handle = m.newHandle(out.Ino)
	return 0
}

func (m *memFS) node(ino fs.Inode) *memNode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nodes[ino]
}

func (m *memFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	m.maybePanic("Read")
	n := m.node(ino)
	if n.file != nil {
		_, e := dst.ReadFrom(int(n.file.Fd()), off, int(size))
		return e
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < int64(len(n.data)) {
		end := min(int64(len(n.data)), off+int64(size))
		dst.Append(n.data[off:end])
	}
	return 0
}

func (m *memFS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	n := m.node(ino)
	if n.file != nil {
		k, e := src.WriteTo(int(n.file.Fd()), off)
		m.mu.Lock()
		n.size = max(n.size, off+int64(k))
		m.mu.Unlock()
		return uint32(k), e
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	end := off + int64(src.Len())
	if end > int64(len(n.data)) {
		d := make([]byte, end)
		copy(d, n.data)
		n.data = d
	}
	return uint32(src.CopyTo(n.data[off:end])), 0
}

func (m *memFS) Fsync(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno { return 0 }
func (m *memFS) FsyncDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	return 0
}

func (m *memFS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handles[fh] != ino {
		panic("memfs: release of unknown handle")
	}
	delete(m.handles, fh)
	// Close-on-release of POSIX locks is the client's job in 9P; drop
	// locks of nobody here.
	return 0
}

func (m *memFS) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, e := m.dir(ino); e != 0 {
		return e
	}
	out.Handle = m.newHandle(ino)
	return 0
}

func (m *memFS) ReleaseDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno {
	return m.Release(ctx, ino, fh, 0)
}

// ReadDir lists ".", ".." and the children in name order; the cookie of
// entry i is i+1.
func (m *memFS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	m.mu.Lock()
	d, e := m.dir(ino)
	if e != 0 {
		m.mu.Unlock()
		return e
	}
	type ent struct {
		name string
		ino  fs.Inode
	}
	ents := []ent{{".", ino}, {"..", ino}}
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ents = append(ents, ent{name, d.children[name]})
	}
	types := make([]uint32, len(ents))
	for i, en := range ents {
		switch m.nodes[en.ino].mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			types[i] = 4
		case syscall.S_IFLNK:
			types[i] = 10
		default:
			types[i] = 8
		}
	}
	m.mu.Unlock()
	for i := off; i < uint64(len(ents)); i++ {
		if !dst.Add(fs.DirEntry{Ino: uint64(ents[i].ino) + 1000, Off: i + 1, Type: types[i], Name: []byte(ents[i].name)}, nil) {
			break
		}
	}
	return 0
}

func (m *memFS) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	*out = fs.StatFs{Blocks: 1000, Bfree: 500, Bavail: 400, Files: 100, Ffree: 50, Bsize: 4096, NameLen: 255, Frsize: 4096}
	return 0
}

func (m *memFS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n.xattrs == nil {
		n.xattrs = map[string][]byte{}
	}
	_, ok := n.xattrs[string(name)]
	if flags&XattrCreate != 0 && ok {
		return syscall.EEXIST
	}
	if flags&XattrReplace != 0 && !ok {
		return syscall.ENODATA
	}
	n.xattrs[string(name)] = append([]byte{}, value...)
	return 0
}

func (m *memFS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.nodes[ino].xattrs[string(name)]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dst) == 0 {
		return len(v), 0
	}
	if len(dst) < len(v) {
		return 0, syscall.ERANGE
	}
	return copy(dst, v), 0
}

func (m *memFS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for k := range m.nodes[ino].xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	var list []byte
	for _, k := range names {
		list = append(append(list, k...), 0)
	}
	if len(dst) == 0 {
		return len(list), 0
	}
	if len(dst) < len(list) {
		return 0, syscall.ERANGE
	}
	return copy(dst, list), 0
}

func (m *memFS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if _, ok := n.xattrs[string(name)]; !ok {
		return syscall.ENODATA
	}
	delete(n.xattrs, string(name))
	return 0
}

func overlaps(a, b memLock) bool { return a.start <= b.end && b.start <= a.end }

func (m *memFS) GetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := memLock{owner: owner, start: lk.Start, end: lk.End, typ: lk.Type}
	for _, l := range m.locks[ino] {
		if l.owner != owner && overlaps(l, want) && (l.typ == syscall.F_WRLCK || want.typ == syscall.F_WRLCK) {
			*out = fs.Lock{Start: l.start, End: l.end, Type: l.typ, Pid: l.pid}
			return 0
		}
	}
	*out = *lk
	out.Type = syscall.F_UNLCK
	return 0
}

// SetLk keeps whole locks per owner (no splitting): enough for tests.
func (m *memFS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	if m.setLkBlocks.Load() {
		m.setLkEntered <- struct{}{}
		for !ctx.Interrupted() {
			time.Sleep(time.Millisecond)
		}
		return syscall.EINTR
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	want := memLock{owner: owner, start: lk.Start, end: lk.End, typ: lk.Type, pid: lk.Pid}
	var keep []memLock
	for _, l := range m.locks[ino] {
		if l.owner == owner {
			continue // replaced by this request
		}
		if want.typ != syscall.F_UNLCK && overlaps(l, want) && (l.typ == syscall.F_WRLCK || want.typ == syscall.F_WRLCK) {
			return syscall.EAGAIN
		}
		keep = append(keep, l)
	}
	if want.typ != syscall.F_UNLCK {
		keep = append(keep, want)
	}
	m.locks[ino] = keep
	return 0
}

func (m *memFS) Statx(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, flags, mask uint32, out *fs.StatxOut) fs.Errno {
	out.Statx.Mask = 0x800
	out.Statx.Btime = fs.StatxTime{Sec: 1600000000, Nsec: 7}
	return 0
}

func (m *memFS) Destroy() { m.destroyed.Store(true) }
