package sys

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlPtr issues ioctl(fd, req, arg) and returns its result and errno.
// None of the /dev/fuse ioctls sleeps interruptibly, so EINTR is not
// retried here: it would be a real error worth seeing.
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) (uintptr, syscall.Errno) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	return r, e
}

// FuseDevClone attaches newFd (a /dev/fuse fd opened but not mounted) to the
// connection that oldFd belongs to (FUSE_DEV_IOC_CLONE). Requests read from
// newFd must be answered on newFd. EINVAL: newFd already attached, or oldFd
// is not a connected /dev/fuse fd.
func FuseDevClone(newFd, oldFd int) syscall.Errno {
	old := uint32(oldFd)
	_, e := ioctlPtr(newFd, FuseDevIocClone, unsafe.Pointer(&old))
	runtime.KeepAlive(&old)
	return e
}

// FuseBackingOpen registers backingFd as a FUSE passthrough backing file on
// the connection of devFd (FUSE_DEV_IOC_BACKING_OPEN) and returns its id,
// to be put in fuse_open_out.backing_id with FOPEN_PASSTHROUGH.
// EPERM: no CAP_SYS_ADMIN or passthrough not negotiated; EOPNOTSUPP: kernel
// built without CONFIG_FUSE_PASSTHROUGH; ELOOP: stacking too deep.
func FuseBackingOpen(devFd, backingFd int) (int32, syscall.Errno) {
	m := FuseBackingMap{Fd: int32(backingFd)}
	r, e := ioctlPtr(devFd, FuseDevIocBackingOpen, unsafe.Pointer(&m))
	runtime.KeepAlive(&m)
	if e != 0 {
		return 0, e
	}
	return int32(r), 0
}

// FuseBackingClose drops the server's reference to backing id
// (FUSE_DEV_IOC_BACKING_CLOSE). Files the kernel opened in passthrough mode
// keep the backing file until they are released.
func FuseBackingClose(devFd int, id int32) syscall.Errno {
	v := uint32(id)
	_, e := ioctlPtr(devFd, FuseDevIocBackingClose, unsafe.Pointer(&v))
	runtime.KeepAlive(&v)
	return e
}

// FuseSyncInit asks the kernel to process FUSE_INIT during mount(2)
// (FUSE_DEV_IOC_SYNC_INIT, Linux 6.18+). ENOTTY: unsupported.
func FuseSyncInit(devFd int) syscall.Errno {
	_, e := ioctlPtr(devFd, FuseDevIocSyncInit, nil)
	return e
}
