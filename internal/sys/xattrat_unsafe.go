package sys

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The *xattrat calls (Linux 6.13+) name the file as dirfd + path, so an
// xattr of the inode an O_PATH fd holds can be reached as (procFd, "N")
// through a /proc/self/fd directory fd, without /proc being reachable by
// path (inside a sandbox whose root is the shared directory). Same
// preconditions as the path calls above; ENOSYS on older kernels.

// xattrArgs is the kernel's struct xattr_args.
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// Getxattrat is getxattrat(2) with at_flags 0 (a final symlink — the
// /proc/self/fd/N magic link — is followed). With len(dst) == 0 it returns
// the value's size.
func Getxattrat(dirfd int, path, name *byte, dst []byte) (int, syscall.Errno) {
	var a xattrArgs
	if len(dst) > 0 {
		a.value = uint64(uintptr(unsafe.Pointer(&dst[0])))
		a.size = uint32(len(dst))
	}
	r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)), 0,
		uintptr(unsafe.Pointer(name)), uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a))
	runtime.KeepAlive(path)
	runtime.KeepAlive(name)
	runtime.KeepAlive(dst)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// Setxattrat is setxattrat(2) with at_flags 0; flags are XATTR_CREATE or
// XATTR_REPLACE.
func Setxattrat(dirfd int, path, name *byte, value []byte, flags int) syscall.Errno {
	a := xattrArgs{size: uint32(len(value)), flags: uint32(flags)}
	if len(value) > 0 {
		a.value = uint64(uintptr(unsafe.Pointer(&value[0])))
	}
	_, _, e := unix.Syscall6(unix.SYS_SETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)), 0,
		uintptr(unsafe.Pointer(name)), uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a))
	runtime.KeepAlive(path)
	runtime.KeepAlive(name)
	runtime.KeepAlive(value)
	return e
}

// Listxattrat is listxattrat(2) with at_flags 0. With len(dst) == 0 it
// returns the list's size.
func Listxattrat(dirfd int, path *byte, dst []byte) (int, syscall.Errno) {
	var p unsafe.Pointer
	if len(dst) > 0 {
		p = unsafe.Pointer(&dst[0])
	}
	r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)), 0,
		uintptr(p), uintptr(len(dst)), 0)
	runtime.KeepAlive(path)
	runtime.KeepAlive(dst)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// Removexattrat is removexattrat(2) with at_flags 0.
func Removexattrat(dirfd int, path, name *byte) syscall.Errno {
	_, _, e := unix.Syscall6(unix.SYS_REMOVEXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)), 0,
		uintptr(unsafe.Pointer(name)), 0, 0)
	runtime.KeepAlive(path)
	runtime.KeepAlive(name)
	return e
}
