package sys

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BlockDeviceSize returns the size in bytes of the block device open as fd
// (ioctl BLKGETSIZE64, which x/sys has as a constant but no typed call
// for: it writes a u64 whatever the word size).
func BlockDeviceSize(fd int) (uint64, syscall.Errno) {
	var n uint64
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n)))
	runtime.KeepAlive(&n)
	return n, e
}
