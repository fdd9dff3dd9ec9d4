package passthrough

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/sys"
)

// Extended attributes go through /proc/self/fd/N magic links: O_PATH fds
// refuse the f*xattr calls, and resolving the magic link lands on the
// inode the fd holds — for a symlink the symlink itself, never its target
// — without opening it (so FIFOs and devices are safe too). Where the
// kernel has the *xattrat calls (6.13+) the link is named relative to
// f.procFd, as (procFd, "N"), so /proc need not be reachable by path (a
// sandbox whose root is the shared directory); else by the path
// "/proc/self/fd/N".

// Limits of the xattr system calls (XATTR_NAME_MAX, XATTR_SIZE_MAX).
const (
	xattrNameMax = 255
	xattrSizeMax = 1 << 16
)

// procPath is "/proc/self/fd/N" NUL-terminated, built on the stack.
type procPath [32]byte

func (p *procPath) set(fd int) *byte {
	putFd(p[copy(p[:], "/proc/self/fd/"):], fd)
	return &p[0]
}

// fdName is "N" NUL-terminated, fd N's name in f.procFd, built on the
// stack.
type fdName [24]byte

func (p *fdName) set(fd int) *byte {
	putFd(p[:], fd)
	return &p[0]
}

// putFd writes fd in decimal, NUL-terminated, at the start of b.
func putFd(b []byte, fd int) {
	var d [20]byte
	i := len(d)
	for v := uint(fd); ; v /= 10 {
		i--
		d[i] = byte('0' + v%10)
		if v < 10 {
			break
		}
	}
	b[copy(b, d[i:])] = 0
}

func (p *procPath) String() string {
	for i, c := range p {
		if c == 0 {
			return string(p[:i])
		}
	}
	return string(p[:])
}

// xattrName is a NUL-terminated xattr name, built on the stack.
type xattrName [xattrNameMax + 1]byte

func (x *xattrName) set(name []byte) (*byte, fs.Errno) {
	if len(name) == 0 {
		return nil, syscall.ERANGE // as getxattr(2) with ""
	}
	if len(name) > xattrNameMax {
		return nil, syscall.ERANGE
	}
	for _, c := range name {
		if c == 0 {
			return nil, syscall.EINVAL
		}
	}
	n := copy(x[:], name)
	x[n] = 0
	return &x[0], fs.OK
}

// SetXattr sets name to value (flags: XATTR_CREATE, XATTR_REPLACE).
func (f *FS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	if !f.opts.Xattr {
		return syscall.ENOSYS
	}
	if flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return syscall.EINVAL
	}
	if len(value) > xattrSizeMax {
		return syscall.E2BIG
	}
	var xn xattrName
	cn, e := xn.set(name)
	if e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	defer f.inodes.put(in)
	return f.setxattrFd(in.fd, cn, name, value, int(flags))
}

// setxattrFd sets name (also given NUL-terminated as cn) on the inode fd
// holds, any kind of fd, through its /proc/self/fd link.
func (f *FS) setxattrFd(fd int, cn *byte, name, value []byte, flags int) fs.Errno {
	if f.xattrAt {
		var n fdName
		return sys.Setxattrat(f.procFd, n.set(fd), cn, value, flags)
	}
	var p procPath
	p.set(fd)
	return errno(unix.Setxattr(p.String(), string(name), value, flags))
}

// setLabel stores the security label a creating request carries
// (ctx.SecLabelName and SecLabel: the label the client's LSM chose,
// FUSE_SECURITY_CTX, its name already mapped by fs/xattrmap) on the inode
// just created, which fd holds (any kind of fd), of type typ (S_IFMT
// bits). It runs as the daemon, after the switch to the caller's identity
// is undone, as virtiofsd does: the client's kernel chose the label for
// an inode its caller was allowed to create, and the host may demand
// privilege for a security.* name (an LSM's consent; CAP_SYS_ADMIN where
// the kernel asks for it) that the caller's identity would not have. The host kernel keeps user.* xattrs on regular files and
// directories only (EPERM elsewhere): a label mapped into user.* (the
// default map) is not stored on a symlink, FIFO, socket or device, which
// the client then sees unlabelled, as it would see one created before it
// labelled anything. On any other failure the caller removes what it
// created and fails the request with the errno. No label: nothing to do.
func (f *FS) setLabel(ctx *fs.Context, fd int, typ uint32) fs.Errno {
	if ctx == nil || ctx.SecLabelName == nil {
		return fs.OK
	}
	if !f.opts.Xattr {
		return syscall.EOPNOTSUPP // labels are xattrs
	}
	if typ != unix.S_IFREG && typ != unix.S_IFDIR && len(ctx.SecLabelName) >= 5 && string(ctx.SecLabelName[:5]) == "user." {
		return fs.OK
	}
	if len(ctx.SecLabel) > xattrSizeMax {
		return syscall.E2BIG
	}
	var xn xattrName
	cn, e := xn.set(ctx.SecLabelName)
	if e != 0 {
		return e
	}
	return f.setxattrFd(fd, cn, ctx.SecLabelName, ctx.SecLabel, 0)
}

// GetXattr copies name's value to dst, or returns its size if dst is
// empty; ERANGE if dst is too small. Allocation-free.
func (f *FS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	if !f.opts.Xattr {
		return 0, syscall.ENOSYS
	}
	return f.getXattr(ino, name, dst)
}

// aclAccessName is the xattr holding a POSIX access ACL.
var aclAccessName = []byte("system.posix_acl_access")

// AccessACL copies ino's POSIX access ACL (system.posix_acl_access, the
// kernel's xattr format) to dst, or returns its size if dst is empty;
// ERANGE if dst is too small, ENODATA if ino has none, EOPNOTSUPP if the
// host filesystem keeps none. It reads the host's ACL whether or not
// Options.Xattr serves extended attributes to clients: it is for a server
// that checks its clients' permissions itself (p9.Options.ACLs), which
// must see the ACLs the host kernel would apply. Allocation-free.
func (f *FS) AccessACL(ino fs.Inode, dst []byte) (int, fs.Errno) {
	return f.getXattr(ino, aclAccessName, dst)
}

// getXattr is GetXattr without the Options.Xattr check.
func (f *FS) getXattr(ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	var xn xattrName
	cn, e := xn.set(name)
	if e != 0 {
		return 0, e
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return 0, e
	}
	var n int
	if f.xattrAt {
		var fn fdName
		n, e = sys.Getxattrat(f.procFd, fn.set(in.fd), cn, dst)
	} else {
		var p procPath
		n, e = sys.Getxattr(p.set(in.fd), cn, dst)
	}
	f.inodes.put(in)
	return n, e
}

// ListXattr copies the NUL-separated list of names to dst, or returns
// its size if dst is empty; ERANGE if dst is too small.
func (f *FS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	if !f.opts.Xattr {
		return 0, syscall.ENOSYS
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return 0, e
	}
	defer f.inodes.put(in)
	if f.xattrAt {
		var fn fdName
		return sys.Listxattrat(f.procFd, fn.set(in.fd), dst)
	}
	var p procPath
	p.set(in.fd)
	n, err := unix.Listxattr(p.String(), dst)
	if err != nil {
		return 0, errno(err)
	}
	return n, fs.OK
}

// RemoveXattr removes name.
func (f *FS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	if !f.opts.Xattr {
		return syscall.ENOSYS
	}
	var xn xattrName
	cn, e := xn.set(name)
	if e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	defer f.inodes.put(in)
	if f.xattrAt {
		var fn fdName
		return sys.Removexattrat(f.procFd, fn.set(in.fd), cn)
	}
	var p procPath
	p.set(in.fd)
	return errno(unix.Removexattr(p.String(), string(name)))
}
