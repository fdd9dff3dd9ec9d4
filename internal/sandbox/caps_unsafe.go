package sandbox

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// capsetAllThreads runs capset(2) with hdr and data on every thread of the
// process (psx); the kernel reads both before it returns.
func capsetAllThreads(hdr *unix.CapUserHeader, data *[2]unix.CapUserData) syscall.Errno {
	_, _, e := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(hdr)
	runtime.KeepAlive(data)
	return e
}
