package virtiofs

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// preadv and pwritev take a caller-owned iovec array, so the hot path
// allocates nothing (unix.Preadv builds one per call). EINTR is retried:
// regular-file I/O is rarely interrupted, but a signal to the worker thread
// must not surface as an error to the guest.

func preadv(fd int, iov []unix.Iovec, off int64) (int, syscall.Errno) {
	if len(iov) == 0 {
		return 0, 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_PREADV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)),
			uintptr(off), uintptr(uint64(off)>>32), 0)
		if e == unix.EINTR {
			continue
		}
		return int(n), e
	}
}

func pwritev(fd int, iov []unix.Iovec, off int64) (int, syscall.Errno) {
	if len(iov) == 0 {
		return 0, 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_PWRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)),
			uintptr(off), uintptr(uint64(off)>>32), 0)
		if e == unix.EINTR {
			continue
		}
		return int(n), e
	}
}

// signal adds 1 to an eventfd. EAGAIN (counter saturated) means the reader
// already has a wake-up pending.
func signal(fd int, one *[8]byte) {
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&one[0])), 8)
		if e != unix.EINTR {
			return
		}
	}
}

// drain resets a non-blocking eventfd's counter.
func drain(fd int, buf *[8]byte) {
	unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), 8)
}
