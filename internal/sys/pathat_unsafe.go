package sys

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The path-taking calls below take their path as a pointer to a
// NUL-terminated byte string instead of a Go string, so that a caller can
// build the name in a stack buffer: x/sys/unix converts every string to a
// fresh heap copy, which would make each LOOKUP and GETXATTR allocate.
//
// Preconditions for every function here: path (and name) point to a
// NUL-terminated string that stays valid until the call returns.

// Fstatat is fstatat(2) (newfstatat): it fills st for path relative to dirfd.
// Not retried on EINTR: stat never sleeps interruptibly on local
// filesystems, and a network filesystem's EINTR is the caller's to report.
func Fstatat(dirfd int, path *byte, st *unix.Stat_t, flags int) syscall.Errno {
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd),
		uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
	runtime.KeepAlive(path)
	runtime.KeepAlive(st)
	return e
}

// Getxattr is getxattr(2) (following a final symlink, which for a
// /proc/self/fd/N magic link lands on the inode the fd refers to, never
// further). With len(dst) == 0 it returns the value's size.
func Getxattr(path, name *byte, dst []byte) (int, syscall.Errno) {
	var p unsafe.Pointer
	if len(dst) > 0 {
		p = unsafe.Pointer(&dst[0])
	}
	r, _, e := unix.Syscall6(unix.SYS_GETXATTR, uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(name)), uintptr(p), uintptr(len(dst)), 0, 0)
	runtime.KeepAlive(path)
	runtime.KeepAlive(name)
	runtime.KeepAlive(dst)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// FileHandle is struct file_handle with room for the largest handle
// (MAX_HANDLE_SZ, 128 bytes), to be filled in place: x/sys's
// NameToHandleAt allocates a buffer and a Go string per call.
type FileHandle struct {
	Bytes uint32 // f_handle's length: set by NameToHandleAt
	Type  int32
	F     [128]byte
}

// NameToHandleAt is name_to_handle_at(2): it fills h with the handle of
// name relative to dirfd (flags: AT_EMPTY_PATH, AT_SYMLINK_FOLLOW). The
// mount id is discarded.
func NameToHandleAt(dirfd int, name *byte, h *FileHandle, flags int) syscall.Errno {
	h.Bytes = uint32(len(h.F))
	var mountID int32
	_, _, e := unix.Syscall6(unix.SYS_NAME_TO_HANDLE_AT, uintptr(dirfd),
		uintptr(unsafe.Pointer(name)), uintptr(unsafe.Pointer(h)),
		uintptr(unsafe.Pointer(&mountID)), uintptr(flags), 0)
	runtime.KeepAlive(name)
	runtime.KeepAlive(h)
	return e
}
