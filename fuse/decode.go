package fuse

import (
	"bytes"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// cstring splits b at its first NUL: the string before it and the bytes
// after. ok is false when b holds no NUL.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// name reads a NUL-terminated file name from b and validates it: not
// empty, not "." or "..", no '/', at most NAME_MAX bytes. The errno says
// what is wrong (EINVAL, or ENAMETOOLONG).
func name(b []byte) (n, rest []byte, e fs.Errno) {
	n, rest, ok := cstring(b)
	switch {
	case !ok:
		return nil, nil, syscall.EINVAL
	case len(n) > nameMax:
		return nil, nil, syscall.ENAMETOOLONG
	case !validName(n):
		return nil, nil, syscall.EINVAL
	}
	return n, rest, 0
}

// validName reports whether n can name a directory entry.
func validName(n []byte) bool {
	if len(n) == 0 || bytes.IndexByte(n, '/') >= 0 {
		return false
	}
	if n[0] == '.' && (len(n) == 1 || len(n) == 2 && n[1] == '.') {
		return false
	}
	return true
}

// lastName reads a name that must end the arguments exactly.
func lastName(b []byte) ([]byte, fs.Errno) {
	n, rest, e := name(b)
	if e == 0 && len(rest) != 0 {
		return nil, syscall.EINVAL
	}
	return n, e
}

// xattrName reads a NUL-terminated xattr name: non-empty, at most
// XATTR_NAME_MAX bytes (ERANGE beyond, as setxattr(2) answers).
func xattrName(b []byte) (n, rest []byte, e fs.Errno) {
	n, rest, ok := cstring(b)
	switch {
	case !ok || len(n) == 0:
		return nil, nil, syscall.EINVAL
	case len(n) > xattrNameMax:
		return nil, nil, syscall.ERANGE
	}
	return n, rest, 0
}
