package memfs

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
)

// Options say what New makes. The zero value (or nil) is an unbounded
// filesystem whose root is root's, mode 0755, with nodefs.DefaultOptions.
type Options struct {
	// MaxBytes caps the file data held, in bytes (rounded up to pages of
	// 4 KiB); a write, truncate or fallocate past it fails ENOSPC. 0: no
	// cap (the machine's memory is the limit).
	MaxBytes int64
	// RootMode is the root directory's permission bits (0: 0755); RootUid
	// and RootGid its owner.
	RootMode         uint32
	RootUid, RootGid uint32
	// Tree are the node tree's options (nil: nodefs.DefaultOptions).
	Tree *nodefs.Options
}

// FS is an in-memory filesystem. It is an fs.FileSystem (through the
// nodefs.Tree it embeds): serve it with fastfs.Mount, ServeVirtioFS or
// Serve9P.
type FS struct {
	*nodefs.Tree
	root *dir
	max  int64
	// used is the bytes of file data held (pages × 4 KiB).
	used atomic.Int64
	// ns guards the namespace: every directory's entries and every
	// directory's parent. Lock order: ns, then a node's mu (several
	// nodes' mu are never held at once).
	ns sync.RWMutex
}

// New returns an empty filesystem.
func New(opts *Options) *FS {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.RootMode == 0 {
		o.RootMode = 0o755
	}
	f := &FS{max: o.MaxBytes}
	f.root = newDir(f, nil, syscall.S_IFDIR|o.RootMode&0o7777, o.RootUid, o.RootGid)
	f.root.parent = f.root
	f.Tree = nodefs.New(f.root, o.Tree)
	return f
}

// node is what every kind of node has: attributes, xattrs, locks.
type node struct {
	nodefs.Inode
	fs *FS

	mu sync.Mutex
	// attr holds mode, nlink, uid, gid, rdev and the times; Ino, Size and
	// Blocks are filled on the way out.
	// +checklocks:mu
	attr fs.Attr
	// +checklocks:mu
	xattrs map[string][]byte
	// +checklocks:mu
	locks lockTable
}

func (n *node) init(f *FS, mode, uid, gid uint32) {
	n.fs = f
	now := time.Now()
	n.attr = fs.Attr{Mode: mode, Nlink: 1, Uid: uid, Gid: gid, Blksize: pageSize}
	setTime(&n.attr.Atime, &n.attr.AtimeNsec, now)
	setTime(&n.attr.Mtime, &n.attr.MtimeNsec, now)
	setTime(&n.attr.Ctime, &n.attr.CtimeNsec, now)
}

func setTime(sec *uint64, nsec *uint32, t time.Time) {
	*sec, *nsec = uint64(t.Unix()), uint32(t.Nanosecond())
}

// touch sets the times named (any of "amc").
// +checklocks:n.mu
func (n *node) touch(a, m, c bool) {
	now := time.Now()
	if a {
		setTime(&n.attr.Atime, &n.attr.AtimeNsec, now)
	}
	if m {
		setTime(&n.attr.Mtime, &n.attr.MtimeNsec, now)
	}
	if c {
		setTime(&n.attr.Ctime, &n.attr.CtimeNsec, now)
	}
}

// accessed updates the access time as relatime does: when it is not
// later than the modification or change time, or a day old.
// +checklocks:n.mu
func (n *node) accessed() {
	a := n.attr.Atime<<30 | uint64(n.attr.AtimeNsec)
	m := n.attr.Mtime<<30 | uint64(n.attr.MtimeNsec)
	c := n.attr.Ctime<<30 | uint64(n.attr.CtimeNsec)
	if a <= m || a <= c || int64(n.attr.Atime) < time.Now().Unix()-24*3600 {
		n.touch(true, false, false)
	}
}

func (n *node) base() *node { return n }

// Getattr reports the attributes; files add their size.
func (n *node) Getattr(_ *fs.Context, _ nodefs.FileHandle, out *fs.Attr) fs.Errno {
	n.mu.Lock()
	*out = n.attr
	n.mu.Unlock()
	return 0
}

// killSuidGid clears set-user-ID, and set-group-ID if the file is
// group-executable or the caller is not in its group, as the kernel's
// setattr_should_drop_suidgid does on a write or truncate by a caller
// without CAP_FSETID (the client checked that before asking). Only the
// caller's primary group is known here: a member through a supplementary
// group loses a non-group-executable set-group-ID it would keep natively
// (as with fs/passthrough). Regular files only.
// +checklocks:n.mu
func (n *node) killSuidGid(ctx *fs.Context) {
	mode := n.attr.Mode
	if mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	mode &^= syscall.S_ISUID
	if mode&syscall.S_IXGRP != 0 || ctx != nil && ctx.Uid != 0 && ctx.Gid != n.attr.Gid {
		mode &^= syscall.S_ISGID
	}
	if mode != n.attr.Mode {
		n.attr.Mode = mode
		n.touch(false, false, true)
	}
}

// setattr changes what in asks but the size (files do that).
// +checklocks:n.mu
func (n *node) setattr(in *fs.SetAttrIn) {
	v := in.Valid
	if v&fs.SetMode != 0 {
		n.attr.Mode = n.attr.Mode&syscall.S_IFMT | in.Mode&0o7777
	}
	if v&(fs.SetUid|fs.SetGid) != 0 {
		if v&fs.SetUid != 0 {
			n.attr.Uid = in.Uid
		}
		if v&fs.SetGid != 0 {
			n.attr.Gid = in.Gid
		}
		// chown clears set-user-ID and, if group-executable,
		// set-group-ID of a regular file, whoever asks (as Linux's
		// chown_common does; under HANDLE_KILLPRIV_V2 the client leaves
		// it to the filesystem).
		if n.attr.Mode&syscall.S_IFMT == syscall.S_IFREG {
			n.attr.Mode &^= syscall.S_ISUID
			if n.attr.Mode&syscall.S_IXGRP != 0 {
				n.attr.Mode &^= syscall.S_ISGID
			}
		}
	}
	now := time.Now()
	// "Now" wins: FUSE and 9P send it with SetAtime/SetMtime, and no
	// time value.
	if v&fs.SetAtimeNow != 0 {
		setTime(&n.attr.Atime, &n.attr.AtimeNsec, now)
	} else if v&fs.SetAtime != 0 {
		n.attr.Atime, n.attr.AtimeNsec = in.Atime, in.AtimeNsec
	}
	if v&fs.SetMtimeNow != 0 {
		setTime(&n.attr.Mtime, &n.attr.MtimeNsec, now)
	} else if v&fs.SetMtime != 0 {
		n.attr.Mtime, n.attr.MtimeNsec = in.Mtime, in.MtimeNsec
	}
	if v&fs.SetCtime != 0 {
		n.attr.Ctime, n.attr.CtimeNsec = in.Ctime, in.CtimeNsec
	} else {
		setTime(&n.attr.Ctime, &n.attr.CtimeNsec, now)
	}
}

// Setattr changes attributes of any node but a regular file (which has
// its own, for the size).
func (n *node) Setattr(ctx *fs.Context, _ nodefs.FileHandle, in *fs.SetAttrIn, out *fs.Attr) fs.Errno {
	n.mu.Lock()
	if in.Valid&fs.SetSize != 0 {
		isDir := n.attr.Mode&syscall.S_IFMT == syscall.S_IFDIR
		n.mu.Unlock()
		if isDir {
			return syscall.EISDIR
		}
		return syscall.EINVAL
	}
	n.setattr(in)
	*out = n.attr
	n.mu.Unlock()
	return 0
}

// symlink is a symbolic link.
type symlink struct {
	node
	target []byte // immutable
}

func (s *symlink) Getattr(_ *fs.Context, _ nodefs.FileHandle, out *fs.Attr) fs.Errno {
	s.mu.Lock()
	*out = s.attr
	s.mu.Unlock()
	out.Size = uint64(len(s.target))
	return 0
}

func (s *symlink) Setattr(ctx *fs.Context, fh nodefs.FileHandle, in *fs.SetAttrIn, out *fs.Attr) fs.Errno {
	if e := s.node.Setattr(ctx, fh, in, out); e != 0 {
		return e
	}
	out.Size = uint64(len(s.target))
	return 0
}

func (s *symlink) Readlink(_ *fs.Context, buf []byte) (int, fs.Errno) {
	if len(buf) < len(s.target) {
		return 0, syscall.ENAMETOOLONG
	}
	return copy(buf, s.target), 0
}

// special is a FIFO, socket or device node: the client's kernel serves its
// opens itself; the filesystem only keeps its attributes.
type special struct{ node }

// WriteFile creates (or replaces the data of) the file at path, a
// slash-separated path from the root, making missing directories (0755)
// on the way; what it makes belongs to root. It is for filling a
// filesystem before serving it; clients see the result as any change.
func (f *FS) WriteFile(path string, data []byte, perm uint32) error {
	ctx := &fs.Context{}
	d := f.root
	names := strings.Split(strings.Trim(path, "/"), "/")
	for i, name := range names {
		c, e := d.Lookup(ctx, []byte(name))
		last := i == len(names)-1
		if e == syscall.ENOENT {
			if last {
				c, e = d.Mknod(ctx, []byte(name), syscall.S_IFREG|perm, 0)
			} else {
				c, e = d.Mkdir(ctx, []byte(name), 0o755)
			}
		}
		if e != 0 {
			return &os.PathError{Op: "memfs: write file", Path: path, Err: e}
		}
		if last {
			fl, ok := c.(*file)
			if !ok {
				return &os.PathError{Op: "memfs: write file", Path: path, Err: syscall.EISDIR}
			}
			fl.mu.Lock()
			defer fl.mu.Unlock()
			fl.truncate(0)
			for off := 0; off < len(data); off += pageSize {
				p, e := fl.pageAt(int64(off / pageSize))
				if e != 0 {
					return &os.PathError{Op: "memfs: write file", Path: path, Err: e}
				}
				copy(p[:], data[off:])
				fl.size = int64(min(off+pageSize, len(data)))
			}
			fl.touch(false, true, true)
			return nil
		}
		var ok bool
		if d, ok = c.(*dir); !ok {
			return &os.PathError{Op: "memfs: write file", Path: path, Err: syscall.ENOTDIR}
		}
	}
	return nil
}
