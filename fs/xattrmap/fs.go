package xattrmap

import (
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// FS serves an inner filesystem with its xattr names translated by a Map.
// Every other method is the inner filesystem's own (promoted through the
// embedded interface). Use Wrap, which keeps the inner filesystem's
// optional interfaces (fs.Mapper) visible.
type FS struct {
	fs.FileSystem
	m *Map
	// capName is m.CapabilityName() as bytes, nil if security.capability
	// is stored unchanged (the host kernel then clears it itself).
	capName []byte
}

// mapperFS is FS over an inner filesystem that implements fs.Mapper: the
// DAX window type-asserts for it.
type mapperFS struct {
	*FS
	fs.Mapper
}

// Wrap returns inner with m applied to every xattr name. The result
// implements fs.Mapper exactly when inner does.
func Wrap(inner fs.FileSystem, m *Map) fs.FileSystem {
	w := &FS{FileSystem: inner, m: m}
	if m.capName != "" {
		w.capName = []byte(m.capName)
	}
	if mp, ok := inner.(fs.Mapper); ok {
		return mapperFS{w, mp}
	}
	return w
}

// nameBufs holds scratch space for mapped names: the longest prepend
// (maxField) plus the longest name. Pooled so that xattr requests allocate
// nothing; a buffer never leaves the call that took it.
var nameBufs = sync.Pool{New: func() any { return new([2*maxField + 1]byte) }}

// listBufs holds a whole host name list (XATTR_LIST_MAX).
const listMax = 1 << 16

var listBufs = sync.Pool{New: func() any { return new([listMax]byte) }}

// SetXattr stores value under name's host name.
func (w *FS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	buf := nameBufs.Get().(*[2*maxField + 1]byte)
	defer nameBufs.Put(buf)
	host, e := w.m.Client(name, buf[:0])
	if e != 0 {
		return e
	}
	return w.FileSystem.SetXattr(ctx, ino, host, value, flags)
}

// GetXattr reads name's host name.
func (w *FS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	buf := nameBufs.Get().(*[2*maxField + 1]byte)
	defer nameBufs.Put(buf)
	host, e := w.m.Client(name, buf[:0])
	if e == syscall.EPERM || e == syscall.EOPNOTSUPP {
		// A name the client may not use has no value it may see: report it
		// absent (as virtiofsd does for bad rules on get), so that
		// tools probing security.* or trusted.* do not fail.
		if e == syscall.EPERM {
			return 0, syscall.ENODATA
		}
		return 0, e
	}
	if e != 0 {
		return 0, e
	}
	return w.FileSystem.GetXattr(ctx, ino, host, dst)
}

// RemoveXattr removes name's host name.
func (w *FS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	buf := nameBufs.Get().(*[2*maxField + 1]byte)
	defer nameBufs.Put(buf)
	host, e := w.m.Client(name, buf[:0])
	if e != 0 {
		return e
	}
	return w.FileSystem.RemoveXattr(ctx, ino, host)
}

// ListXattr lists the host names into a scratch buffer, maps each and
// copies the client's view to dst (its size only, if dst is empty).
func (w *FS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	lb := listBufs.Get().(*[listMax]byte)
	defer listBufs.Put(lb)
	n, e := w.FileSystem.ListXattr(ctx, ino, lb[:])
	if e != 0 {
		return 0, e
	}
	if n < 0 || n > len(lb) {
		return 0, syscall.EIO
	}
	// Map in place: every shown name is a suffix of its host name, so the
	// output never overtakes the input.
	out := 0
	list := lb[:n]
	for len(list) > 0 {
		end := 0
		for end < len(list) && list[end] != 0 {
			end++
		}
		name := list[:end]
		if end < len(list) {
			list = list[end+1:]
		} else {
			list = nil
		}
		if len(name) == 0 {
			continue
		}
		shown, ok := w.m.Server(name)
		if !ok {
			continue
		}
		out += copy(lb[out:], shown)
		lb[out] = 0
		out++
	}
	if len(dst) == 0 {
		return out, 0
	}
	if out > len(dst) {
		return 0, syscall.ERANGE
	}
	return copy(dst, lb[:out]), 0
}

// Write is the inner filesystem's: it does not clear the stored form of a
// client's security.capability, as the host kernel clears the real one on
// every write. Doing so costs an xattr system call on the host path of
// every unprivileged write (measured 3.5 µs → 20-40 µs per 4 KiB write
// with passthrough); truncate, chown and the SETATTR the kernel sends to
// kill privileges do clear it (SetAttr below).

// SetAttr clears the stored capability on the changes that clear it on the
// host: a chown, or a truncate or mode change the client marks
// SetKillSuidGid.
func (w *FS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	if w.capName != nil && in.Valid&(fs.SetUid|fs.SetGid|fs.SetKillSuidGid) != 0 {
		e := w.FileSystem.SetAttr(ctx, ino, in, out)
		if e == 0 {
			w.dropCapability(ctx, ino)
		}
		return e
	}
	return w.FileSystem.SetAttr(ctx, ino, in, out)
}

func (w *FS) dropCapability(ctx *fs.Context, ino fs.Inode) {
	// ENODATA (no capability stored) is the common answer; any other
	// failure leaves the attribute, which the client can then still read:
	// nothing is gained by failing the write over it.
	_ = w.FileSystem.RemoveXattr(ctx, ino, w.capName)
}

// Security labels (fs.Context.SecLabelName, sent with creating requests
// under FUSE_SECURITY_CTX) are xattrs the client names: each creating
// method maps the label's name as SetXattr maps a client's name, before
// anything is created, as virtiofsd does (so with the default map a
// guest's security.selinux label is stored as
// user.virtiofs.security.selinux and reads back under its own name). A
// name the map refuses fails the request with the rule's errno (EPERM,
// EOPNOTSUPP) and nothing is created.

// labelled runs create with ctx's label name replaced by its host name
// (built in a pooled buffer that create must not keep), and puts the
// client's name back after: ctx belongs to the transport's request.
func (w *FS) labelled(ctx *fs.Context, create func() fs.Errno) fs.Errno {
	buf := nameBufs.Get().(*[2*maxField + 1]byte)
	defer nameBufs.Put(buf)
	client := ctx.SecLabelName
	host, e := w.m.Client(client, buf[:0])
	if e != 0 {
		return e
	}
	ctx.SecLabelName = host
	defer func() { ctx.SecLabelName = client }()
	return create()
}

// Create is the inner Create with the label's name mapped.
func (w *FS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if ctx.SecLabelName == nil {
		return w.FileSystem.Create(ctx, parent, name, mode, flags, out, open)
	}
	return w.labelled(ctx, func() fs.Errno { return w.FileSystem.Create(ctx, parent, name, mode, flags, out, open) })
}

// Tmpfile is the inner Tmpfile with the label's name mapped.
func (w *FS) Tmpfile(ctx *fs.Context, parent fs.Inode, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if ctx.SecLabelName == nil {
		return w.FileSystem.Tmpfile(ctx, parent, mode, flags, out, open)
	}
	return w.labelled(ctx, func() fs.Errno { return w.FileSystem.Tmpfile(ctx, parent, mode, flags, out, open) })
}

// Mkdir is the inner Mkdir with the label's name mapped.
func (w *FS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	if ctx.SecLabelName == nil {
		return w.FileSystem.Mkdir(ctx, parent, name, mode, out)
	}
	return w.labelled(ctx, func() fs.Errno { return w.FileSystem.Mkdir(ctx, parent, name, mode, out) })
}

// Mknod is the inner Mknod with the label's name mapped.
func (w *FS) Mknod(ctx *fs.Context, parent fs.Inode, name []byte, mode, rdev uint32, out *fs.Entry) fs.Errno {
	if ctx.SecLabelName == nil {
		return w.FileSystem.Mknod(ctx, parent, name, mode, rdev, out)
	}
	return w.labelled(ctx, func() fs.Errno { return w.FileSystem.Mknod(ctx, parent, name, mode, rdev, out) })
}

// Symlink is the inner Symlink with the label's name mapped.
func (w *FS) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	if ctx.SecLabelName == nil {
		return w.FileSystem.Symlink(ctx, parent, name, target, out)
	}
	return w.labelled(ctx, func() fs.Errno { return w.FileSystem.Symlink(ctx, parent, name, target, out) })
}
