package memfs

import (
	"bytes"
	"math"
	"slices"
	"sync/atomic"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
)

// member is any node of the filesystem.
type member interface {
	nodefs.Node
	base() *node
}

// dirent is one name in a directory.
type dirent struct {
	name   string
	child  member
	cookie uint64 // the directory's readdir cookie of this entry; never changes
}

// dir is a directory. Its entries are guarded by fs.ns, its attributes
// by its mu.
type dir struct {
	node
	// parent is the directory holding this one (the root's is itself).
	// +checklocks:fs.ns
	parent *dir
	// +checklocks:fs.ns
	byName map[string]*dirent
	// list holds the entries in cookie order, for readdir: a listing
	// resumes after the cookie it stopped at, whatever changed since.
	// +checklocks:fs.ns
	list []*dirent
	// next is the next entry's cookie (1 and 2 are "." and "..").
	// +checklocks:fs.ns
	next uint64
	// removed is set by rmdir: nothing may be created in it.
	// +checklocks:fs.ns
	removed bool
}

func newDir(f *FS, parent *dir, mode, uid, gid uint32) *dir {
	d := &dir{parent: parent, byName: map[string]*dirent{}, next: 3}
	d.init(f, mode, uid, gid)
	d.attr.Nlink = 2
	return d
}

// Lookup finds name.
func (d *dir) Lookup(_ *fs.Context, name []byte) (nodefs.Node, fs.Errno) {
	d.fs.ns.RLock()
	defer d.fs.ns.RUnlock()
	switch string(name) {
	case ".":
		return d, 0
	case "..":
		return d.parent, 0
	}
	if e := d.byName[string(name)]; e != nil {
		return e.child, 0
	}
	return nil, syscall.ENOENT
}

// dirHandle is one open of a directory: the cookie its listing ends
// before, taken at the open and at every rewind, so that a listing ends
// even while names are being created (entries made after it started may
// or may not be listed, as POSIX allows; every other entry is listed
// exactly once).
type dirHandle struct {
	openFile
	end atomic.Uint64
}

func (d *dir) Opendir(*fs.Context, uint32, *fs.OpenOut) (nodefs.FileHandle, fs.Errno) {
	d.fs.ns.RLock()
	defer d.fs.ns.RUnlock()
	h := &dirHandle{}
	h.end.Store(d.next)
	return h, 0
}

// Readdir lists ".", ".." and the entries after cookie off (up to the
// open's end; see dirHandle).
func (d *dir) Readdir(_ *fs.Context, fh nodefs.FileHandle, off uint64, dst *nodefs.DirList) fs.Errno {
	d.fs.ns.RLock()
	defer d.fs.ns.RUnlock()
	end := uint64(math.MaxUint64)
	if h, ok := fh.(*dirHandle); ok {
		if off == 0 {
			h.end.Store(d.next)
		}
		end = h.end.Load()
	}
	if off < 1 && !dst.Add(dotName, d, 1) {
		return 0
	}
	if off < 2 && !dst.Add(dotDotName, d.parent, 2) {
		return 0
	}
	k, _ := slices.BinarySearchFunc(d.list, off+1, func(e *dirent, c uint64) int { return cmpU64(e.cookie, c) })
	// Add needs the name only until it returns: one buffer for all of
	// them, not a []byte(e.name) per entry.
	name := make([]byte, 0, 255)
	for _, e := range d.list[k:] {
		name = append(name[:0], e.name...)
		if e.cookie >= end || !dst.Add(name, e.child, e.cookie) {
			break
		}
	}
	d.mu.Lock()
	d.accessed()
	d.mu.Unlock()
	return 0
}

var dotName, dotDotName = []byte("."), []byte("..")

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Statfs reports the cap (or a large filesystem) and what is used.
func (d *dir) Statfs(_ *fs.Context, out *fs.StatFs) fs.Errno {
	total := uint64(1) << 40
	if d.fs.max > 0 {
		total = uint64(d.fs.max)
	}
	used := uint64(d.fs.used.Load())
	free := total - min(used, total)
	*out = fs.StatFs{
		Blocks: total / pageSize, Bfree: free / pageSize, Bavail: free / pageSize,
		Files: 1 << 32, Ffree: 1 << 31, Bsize: pageSize, Frsize: pageSize, NameLen: 255,
	}
	return 0
}

// checkName refuses names no directory can hold.
func checkName(name []byte) fs.Errno {
	switch {
	case len(name) > 255:
		return syscall.ENAMETOOLONG
	case len(name) == 0 || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0:
		return syscall.EINVAL
	case string(name) == "." || string(name) == "..":
		return syscall.EEXIST
	}
	return 0
}

// owner returns the owner and mode of a node ctx creates in d: the
// caller's, but d's group and, for a directory, the set-group-ID bit if d
// has it.
func (d *dir) owner(ctx *fs.Context, mode uint32) (uint32, uint32, uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gid := ctx.Gid
	if d.attr.Mode&syscall.S_ISGID != 0 {
		gid = d.attr.Gid
		if mode&syscall.S_IFMT == syscall.S_IFDIR {
			mode |= syscall.S_ISGID
		}
	}
	return ctx.Uid, gid, mode
}

// insert adds name → child.
// +checklocks:d.fs.ns
func (d *dir) insert(name string, child member) {
	e := &dirent{name: name, child: child, cookie: d.next}
	d.next++
	d.byName[name] = e
	d.list = append(d.list, e)
}

// remove drops name.
// +checklocks:d.fs.ns
func (d *dir) remove(name string) {
	e := d.byName[name]
	delete(d.byName, name)
	if k, ok := slices.BinarySearchFunc(d.list, e.cookie, func(x *dirent, c uint64) int { return cmpU64(x.cookie, c) }); ok {
		d.list = slices.Delete(d.list, k, k+1)
	}
}

// changed marks d's entries changed (mtime and ctime), and its link
// count by delta.
func (d *dir) changed(delta int) {
	d.mu.Lock()
	d.attr.Nlink = uint32(int(d.attr.Nlink) + delta)
	d.touch(false, true, true)
	d.mu.Unlock()
}

// create adds a new node made by mk under name, if name is free.
func (d *dir) create(ctx *fs.Context, name []byte, mode uint32, mk func(uid, gid, mode uint32) member) (member, fs.Errno) {
	if e := checkName(name); e != 0 {
		return nil, e
	}
	uid, gid, mode := d.owner(ctx, mode)
	d.fs.ns.Lock()
	defer d.fs.ns.Unlock()
	if d.removed {
		return nil, syscall.ENOENT
	}
	if d.byName[string(name)] != nil {
		return nil, syscall.EEXIST
	}
	c := mk(uid, gid, mode)
	d.insert(string(name), c)
	delta := 0
	if _, isDir := c.(*dir); isDir {
		delta = 1
	}
	d.changed(delta)
	return c, 0
}

func (d *dir) Mkdir(ctx *fs.Context, name []byte, mode uint32) (nodefs.Node, fs.Errno) {
	c, e := d.create(ctx, name, syscall.S_IFDIR|mode&0o7777, func(uid, gid, mode uint32) member {
		return newDir(d.fs, d, mode, uid, gid)
	})
	return nodeOrNil(c, e)
}

// nodeOrNil keeps a nil member from becoming a non-nil nodefs.Node.
func nodeOrNil(c member, e fs.Errno) (nodefs.Node, fs.Errno) {
	if e != 0 {
		return nil, e
	}
	return c, 0
}

func (f *FS) newFile(mode, uid, gid uint32) *file {
	n := &file{}
	n.init(f, syscall.S_IFREG|mode&0o7777, uid, gid)
	return n
}

func (d *dir) Mknod(ctx *fs.Context, name []byte, mode, rdev uint32) (nodefs.Node, fs.Errno) {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG, 0:
		c, e := d.create(ctx, name, syscall.S_IFREG|mode&0o7777, func(uid, gid, mode uint32) member {
			return d.fs.newFile(mode, uid, gid)
		})
		return nodeOrNil(c, e)
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		c, e := d.create(ctx, name, mode, func(uid, gid, mode uint32) member {
			n := &special{}
			n.init(d.fs, mode, uid, gid)
			n.attr.Rdev = rdev
			return n
		})
		return nodeOrNil(c, e)
	}
	return nil, syscall.EINVAL
}

func (d *dir) Create(ctx *fs.Context, name []byte, mode, flags uint32, _ *fs.OpenOut) (nodefs.Node, nodefs.FileHandle, fs.Errno) {
	c, e := d.create(ctx, name, syscall.S_IFREG|mode&0o7777, func(uid, gid, mode uint32) member {
		n := d.fs.newFile(mode, uid, gid)
		n.opens = 1
		return n
	})
	if e != 0 {
		return nil, nil, e
	}
	return c, &openFile{}, 0
}

// Tmpfile makes a file with no name (nlink 0), open once.
func (d *dir) Tmpfile(ctx *fs.Context, mode, _ uint32, _ *fs.OpenOut) (nodefs.Node, nodefs.FileHandle, fs.Errno) {
	uid, gid, mode := d.owner(ctx, syscall.S_IFREG|mode&0o7777)
	n := d.fs.newFile(mode, uid, gid)
	n.attr.Nlink = 0
	n.opens = 1
	return n, &openFile{}, 0
}

func (d *dir) Symlink(ctx *fs.Context, name, target []byte) (nodefs.Node, fs.Errno) {
	if len(target) == 0 {
		return nil, syscall.ENOENT
	}
	if len(target) > 4095 {
		return nil, syscall.ENAMETOOLONG
	}
	c, e := d.create(ctx, name, syscall.S_IFLNK|0o777, func(uid, gid, mode uint32) member {
		n := &symlink{target: bytes.Clone(target)}
		n.init(d.fs, mode, uid, gid)
		return n
	})
	return nodeOrNil(c, e)
}

func (d *dir) Link(_ *fs.Context, target nodefs.Node, name []byte) fs.Errno {
	t, ok := target.(member)
	if !ok {
		return syscall.EXDEV
	}
	if _, isDir := t.(*dir); isDir {
		return syscall.EPERM
	}
	if e := checkName(name); e != 0 {
		return e
	}
	d.fs.ns.Lock()
	defer d.fs.ns.Unlock()
	if d.removed {
		return syscall.ENOENT
	}
	if d.byName[string(name)] != nil {
		return syscall.EEXIST
	}
	tn := t.base()
	tn.mu.Lock()
	tn.attr.Nlink++
	tn.touch(false, false, true)
	tn.mu.Unlock()
	d.insert(string(name), t)
	d.changed(0)
	return 0
}

// unlinked lowers c's link count for a name removed, freeing a file's
// data if that was the last name and no open remains.
func unlinked(c member) {
	n := c.base()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, isDir := c.(*dir); isDir {
		n.attr.Nlink = 0
	} else if n.attr.Nlink > 0 {
		n.attr.Nlink--
	}
	n.touch(false, false, true)
	if f, ok := c.(*file); ok {
		f.freeIfGone()
	}
}

func (d *dir) Unlink(_ *fs.Context, name []byte) fs.Errno {
	d.fs.ns.Lock()
	defer d.fs.ns.Unlock()
	e := d.byName[string(name)]
	if e == nil {
		return syscall.ENOENT
	}
	if _, isDir := e.child.(*dir); isDir {
		return syscall.EISDIR
	}
	d.remove(e.name)
	unlinked(e.child)
	d.changed(0)
	return 0
}

func (d *dir) Rmdir(_ *fs.Context, name []byte) fs.Errno {
	switch string(name) {
	case ".":
		return syscall.EINVAL
	case "..":
		return syscall.ENOTEMPTY
	}
	d.fs.ns.Lock()
	defer d.fs.ns.Unlock()
	e := d.byName[string(name)]
	if e == nil {
		return syscall.ENOENT
	}
	c, isDir := e.child.(*dir)
	if !isDir {
		return syscall.ENOTDIR
	}
	if len(c.byName) > 0 {
		return syscall.ENOTEMPTY
	}
	d.remove(e.name)
	c.removed = true
	unlinked(c)
	d.changed(-1)
	return 0
}

// Rename flags (renameat2).
const (
	renameNoReplace = 1 << 0
	renameExchange  = 1 << 1
)

func (d *dir) Rename(_ *fs.Context, name []byte, newParent nodefs.Node, newName []byte, flags uint32) fs.Errno {
	np, ok := newParent.(*dir)
	if !ok {
		return syscall.ENOTDIR
	}
	if flags&^(renameNoReplace|renameExchange) != 0 || flags == renameNoReplace|renameExchange {
		return syscall.EINVAL
	}
	if e := checkName(newName); e != 0 {
		if e == syscall.EEXIST {
			return syscall.EBUSY
		}
		return e
	}
	d.fs.ns.Lock()
	defer d.fs.ns.Unlock()
	src := d.byName[string(name)]
	if src == nil {
		return syscall.ENOENT
	}
	if np.removed {
		return syscall.ENOENT
	}
	srcDir, srcIsDir := src.child.(*dir)
	// A directory cannot move under itself.
	if srcIsDir && np.under(srcDir) {
		return syscall.EINVAL
	}
	dst := np.byName[string(newName)]
	if flags&renameExchange != 0 {
		if dst == nil {
			return syscall.ENOENT
		}
		dstDir, dstIsDir := dst.child.(*dir)
		if dstIsDir && d.under(dstDir) {
			return syscall.EINVAL
		}
		src.child, dst.child = dst.child, src.child
		if srcIsDir {
			srcDir.parent = np
		}
		if dstIsDir {
			dstDir.parent = d
		}
		if d != np && srcIsDir != dstIsDir {
			delta := 1
			if srcIsDir {
				delta = -1
			}
			d.changed(delta)
			np.changed(-delta)
		} else {
			d.changed(0)
			np.changed(0)
		}
		touchC(src.child)
		touchC(dst.child)
		return 0
	}
	if dst != nil {
		if flags&renameNoReplace != 0 {
			return syscall.EEXIST
		}
		if dst.child == src.child {
			return 0 // two names of one file: nothing to do
		}
		dd, dstIsDir := dst.child.(*dir)
		switch {
		case srcIsDir && !dstIsDir:
			return syscall.ENOTDIR
		case !srcIsDir && dstIsDir:
			return syscall.EISDIR
		case dstIsDir && len(dd.byName) > 0:
			return syscall.ENOTEMPTY
		}
		np.remove(dst.name)
		if dstIsDir {
			dd.removed = true
			np.changed(-1)
		}
		unlinked(dst.child)
	}
	d.remove(src.name)
	np.insert(string(newName), src.child)
	if srcIsDir && d != np {
		srcDir.parent = np
		d.changed(-1)
		np.changed(1)
	} else {
		d.changed(0)
		if d != np {
			np.changed(0)
		}
	}
	touchC(src.child)
	return 0
}

// under reports whether d is a or below it.
// +checklocks:d.fs.ns
func (d *dir) under(a *dir) bool {
	for p := d; ; p = p.parent {
		if p == a {
			return true
		}
		if p == p.parent {
			return false
		}
	}
}

// touchC sets a node's change time.
func touchC(c member) {
	n := c.base()
	n.mu.Lock()
	n.touch(false, false, true)
	n.mu.Unlock()
}
