package splice

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// errno turns an x/sys error into the Errno it wraps (EIO if it wraps
// none, which x/sys never does for these calls). No allocation.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}

// Splice moves up to n bytes from in to out (one of them a pipe), with
// offsets as splice(2) takes them (nil: use and advance the file position).
// It retries EINTR and returns the count moved, which may be short.
func Splice(in int, inOff *int64, out int, outOff *int64, n int, flags int) (int, syscall.Errno) {
	for {
		m, err := unix.Splice(in, inOff, out, outOff, n, flags)
		if err == syscall.EINTR {
			continue
		}
		return int(m), errno(err)
	}
}

// Vmsplice maps or copies the user memory described by iov into the pipe
// fd. Without unix.SPLICE_F_GIFT the kernel copies; the memory may be
// reused when the call returns. Retries EINTR.
func Vmsplice(fd int, iov []unix.Iovec, flags int) (int, syscall.Errno) {
	for {
		m, err := unix.Vmsplice(fd, iov, flags)
		if err == syscall.EINTR {
			continue
		}
		return m, errno(err)
	}
}

// Tee duplicates up to n bytes from pipe in to pipe out without consuming
// them. Retries EINTR.
func Tee(in, out int, n int, flags int) (int, syscall.Errno) {
	for {
		m, err := unix.Tee(in, out, n, flags)
		if err == syscall.EINTR {
			continue
		}
		return int(m), errno(err)
	}
}

// read and write retry EINTR on plain fds.
func read(fd int, p []byte) (int, syscall.Errno) {
	for {
		n, err := unix.Read(fd, p)
		if err == syscall.EINTR {
			continue
		}
		return n, errno(err)
	}
}

func write(fd int, p []byte) (int, syscall.Errno) {
	for {
		n, err := unix.Write(fd, p)
		if err == syscall.EINTR {
			continue
		}
		return n, errno(err)
	}
}
