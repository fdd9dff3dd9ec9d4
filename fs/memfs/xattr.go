package memfs

import (
	"bytes"
	"slices"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// Limits on extended attributes, as Linux's: a name of at most 255 bytes,
// a value of at most 64 KiB; and at most 1 MiB of names and values per
// node, so that xattrs cannot grow without bound (ENOSPC past it).
const (
	xattrNameMax = 255
	xattrSizeMax = 64 << 10
	xattrNodeMax = 1 << 20
	xattrCreate  = 1 // XATTR_CREATE
	xattrReplace = 2 // XATTR_REPLACE
)

// Getxattr copies the value of name (the size only with an empty dst).
func (n *node) Getxattr(_ *fs.Context, name, dst []byte) (int, fs.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.xattrs[string(name)]
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

// Setxattr sets name to value, with XATTR_CREATE or XATTR_REPLACE. Names
// are in the user, trusted or security namespace (the client checks who
// may set which); others, system.* (POSIX ACLs) among them, are
// EOPNOTSUPP.
func (n *node) Setxattr(_ *fs.Context, name, value []byte, flags uint32) fs.Errno {
	switch {
	case !bytes.HasPrefix(name, []byte("user.")) && !bytes.HasPrefix(name, []byte("trusted.")) && !bytes.HasPrefix(name, []byte("security.")):
		return syscall.EOPNOTSUPP
	case len(name) > xattrNameMax: // not empty: it has a namespace prefix
		return syscall.ERANGE
	case len(value) > xattrSizeMax:
		return syscall.E2BIG
	case flags&^(xattrCreate|xattrReplace) != 0:
		return syscall.EINVAL
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old, ok := n.xattrs[string(name)]
	if ok && flags&xattrCreate != 0 {
		return syscall.EEXIST
	}
	if !ok && flags&xattrReplace != 0 {
		return syscall.ENODATA
	}
	total := len(value) - len(old)
	if !ok {
		total += len(name)
	}
	for k, v := range n.xattrs {
		total += len(k) + len(v)
	}
	if total > xattrNodeMax {
		return syscall.ENOSPC
	}
	if n.xattrs == nil {
		n.xattrs = map[string][]byte{}
	}
	n.xattrs[string(name)] = slices.Clone(value)
	n.touch(false, false, true)
	return 0
}

// Listxattr lists the names, each ending in NUL, in name order.
func (n *node) Listxattr(_ *fs.Context, dst []byte) (int, fs.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	names := make([]string, 0, len(n.xattrs))
	size := 0
	for k := range n.xattrs {
		names = append(names, k)
		size += len(k) + 1
	}
	if len(dst) == 0 {
		return size, 0
	}
	if len(dst) < size {
		return 0, syscall.ERANGE
	}
	slices.Sort(names)
	off := 0
	for _, k := range names {
		off += copy(dst[off:], k)
		dst[off] = 0
		off++
	}
	return off, 0
}

// Removexattr removes name.
func (n *node) Removexattr(_ *fs.Context, name []byte) fs.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.xattrs[string(name)]; !ok {
		return syscall.ENODATA
	}
	delete(n.xattrs, string(name))
	n.touch(false, false, true)
	return 0
}
