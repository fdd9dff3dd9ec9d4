package fuse

import (
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fs"
)

// memFS is a small in-memory filesystem for tests against the real kernel:
// enough POSIX for the engine's requests to mean something.
type memFS struct {
	fs.Base
	mu    sync.Mutex
	nodes map[fs.Inode]*memNode // +checklocks:mu
	next  fs.Inode              // +checklocks:mu
	info  fs.InitInfo

	getxattrs atomic.Uint64 // GetXattr calls served, for round-trip counts
}

type memNode struct {
	attr   fs.Attr
	data   []byte
	kids   map[string]fs.Inode
	target []byte
	xattr  map[string][]byte
}

func newMemFS() *memFS {
	m := &memFS{nodes: map[fs.Inode]*memNode{}, next: 2}
	m.nodes[fs.RootInode] = &memNode{attr: fs.Attr{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}, kids: map[string]fs.Inode{}}
	return m
}

func (m *memFS) Init(ctx *fs.Context, info *fs.InitInfo) fs.Errno { m.info = *info; return 0 }

func (m *memFS) entry(ino fs.Inode, out *fs.Entry) {
	n := m.nodes[ino]
	out.Ino = ino
	out.EntryTimeout = time.Second
	out.AttrTimeout = time.Second
	out.Attr = n.attr
	out.Attr.Size = uint64(len(n.data))
	if n.target != nil {
		out.Attr.Size = uint64(len(n.target))
	}
	out.Attr.Blksize = 4096
}

func (m *memFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.nodes[parent]
	if p == nil || p.kids == nil {
		return syscall.ENOTDIR
	}
	ino, ok := p.kids[string(name)]
	if !ok {
		return syscall.ENOENT
	}
	m.entry(ino, out)
	return 0
}

func (m *memFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodes[ino] == nil {
		return syscall.ENOENT
	}
	var e fs.Entry
	m.entry(ino, &e)
	out.Attr, out.Timeout = e.Attr, time.Second
	return 0
}

func (m *memFS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	m.mu.Lock()
	n := m.nodes[ino]
	if n == nil {
		m.mu.Unlock()
		return syscall.ENOENT
	}
	if in.Valid&fs.SetSize != 0 {
		n.data = slices.Grow(n.data[:min(uint64(len(n.data)), in.Size)], 0)
		for uint64(len(n.data)) < in.Size {
			n.data = append(n.data, 0)
		}
	}
	if in.Valid&fs.SetMode != 0 {
		n.attr.Mode = n.attr.Mode&syscall.S_IFMT | in.Mode&0o7777
	}
	if in.Valid&fs.SetMtime != 0 {
		n.attr.Mtime, n.attr.MtimeNsec = in.Mtime, in.MtimeNsec
	}
	m.mu.Unlock()
	return m.GetAttr(ctx, ino, 0, false, out)
}

func (m *memFS) add(parent fs.Inode, name []byte, n *memNode, out *fs.Entry) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.nodes[parent]
	if p == nil || p.kids == nil {
		return syscall.ENOTDIR
	}
	if _, ok := p.kids[string(name)]; ok {
		return syscall.EEXIST
	}
	ino := m.next
	m.next++
	n.attr.Ino = uint64(ino)
	n.attr.Nlink = 1
	m.nodes[ino] = n
	p.kids[string(name)] = ino
	m.entry(ino, out)
	return 0
}

func (m *memFS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	return m.add(parent, name, &memNode{attr: fs.Attr{Mode: syscall.S_IFDIR | mode&0o7777}, kids: map[string]fs.Inode{}}, out)
}

func (m *memFS) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	return m.add(parent, name, &memNode{attr: fs.Attr{Mode: syscall.S_IFLNK | 0o777}, target: append([]byte(nil), target...)}, out)
}

func (m *memFS) Readlink(ctx *fs.Context, ino fs.Inode, buf []byte) (int, fs.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n == nil || n.target == nil {
		return 0, syscall.EINVAL
	}
	if len(n.target) > len(buf) {
		return 0, syscall.ENAMETOOLONG
	}
	return copy(buf, n.target), 0
}

func (m *memFS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	return m.add(parent, name, &memNode{attr: fs.Attr{Mode: syscall.S_IFREG | mode&0o7777}}, out)
}

func (m *memFS) remove(parent fs.Inode, name []byte, dir bool) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.nodes[parent]
	ino, ok := p.kids[string(name)]
	if !ok {
		return syscall.ENOENT
	}
	n := m.nodes[ino]
	if (n.kids != nil) != dir {
		if dir {
			return syscall.ENOTDIR
		}
		return syscall.EISDIR
	}
	if dir && len(n.kids) > 0 {
		return syscall.ENOTEMPTY
	}
	delete(p.kids, string(name))
	return 0
}

func (m *memFS) Unlink(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	return m.remove(parent, name, false)
}

func (m *memFS) Rmdir(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	return m.remove(parent, name, true)
}

func (m *memFS) Rename(ctx *fs.Context, parent fs.Inode, name []byte, newParent fs.Inode, newName []byte, flags uint32) fs.Errno {
	if flags != 0 {
		return syscall.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.nodes[parent].kids[string(name)]
	if !ok {
		return syscall.ENOENT
	}
	delete(m.nodes[parent].kids, string(name))
	m.nodes[newParent].kids[string(newName)] = ino
	return 0
}

func (m *memFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n == nil {
		return syscall.ENOENT
	}
	if flags&syscall.O_TRUNC != 0 {
		n.data = n.data[:0]
	}
	out.Handle = fs.Handle(ino)
	return 0
}

func (m *memFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if off < int64(len(n.data)) {
		dst.Append(n.data[off:min(int64(len(n.data)), off+int64(size))])
	}
	return 0
}

func (m *memFS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	end := int(off) + src.Len()
	for len(n.data) < end {
		n.data = append(n.data, 0)
	}
	if flags&fs.WriteKillSuidGid != 0 {
		n.attr.Mode &^= syscall.S_ISUID | syscall.S_ISGID
	}
	return uint32(src.CopyTo(n.data[off:end])), 0
}

func (m *memFS) Flush(*fs.Context, fs.Inode, fs.Handle, uint64) fs.Errno { return 0 }
func (m *memFS) Fsync(*fs.Context, fs.Inode, fs.Handle, bool) fs.Errno   { return 0 }

func (m *memFS) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	out.Handle = fs.Handle(ino)
	return 0
}

func (m *memFS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	names := []string{".", ".."}
	for k := range n.kids {
		names = append(names, k)
	}
	slices.Sort(names[2:])
	for i := off; i < uint64(len(names)); i++ {
		de := fs.DirEntry{Off: i + 1, Name: []byte(names[i]), Ino: uint64(ino), Type: syscall.DT_DIR}
		var e fs.Entry
		var p *fs.Entry
		if i >= 2 {
			kid := n.kids[names[i]]
			de.Ino = uint64(kid)
			de.Type = (m.nodes[kid].attr.Mode & syscall.S_IFMT) >> 12
			if dst.Plus() {
				m.entry(kid, &e)
				p = &e
			}
		}
		if !dst.Add(de, p) {
			break
		}
	}
	return 0
}

func (m *memFS) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	*out = fs.StatFs{Blocks: 1 << 20, Bfree: 1 << 19, Bavail: 1 << 19, Files: 1000, Ffree: 900, Bsize: 4096, NameLen: 255, Frsize: 4096}
	return 0
}

func (m *memFS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[ino]
	if n.xattr == nil {
		n.xattr = map[string][]byte{}
	}
	n.xattr[string(name)] = append([]byte(nil), value...)
	return 0
}

func (m *memFS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	m.getxattrs.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.nodes[ino].xattr[string(name)]
	switch {
	case !ok:
		return 0, syscall.ENODATA
	case len(dst) == 0:
		return len(v), 0
	case len(dst) < len(v):
		return 0, syscall.ERANGE
	}
	return copy(dst, v), 0
}

func (m *memFS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var list []byte
	for k := range m.nodes[ino].xattr {
		list = append(append(list, k...), 0)
	}
	switch {
	case len(dst) == 0:
		return len(list), 0
	case len(dst) < len(list):
		return 0, syscall.ERANGE
	}
	return copy(dst, list), 0
}

func (m *memFS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[ino].xattr[string(name)]; !ok {
		return syscall.ENODATA
	}
	delete(m.nodes[ino].xattr, string(name))
	return 0
}
