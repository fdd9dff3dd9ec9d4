package dax

import "syscall"

// dupCloexec duplicates fd with FD_CLOEXEC set atomically (F_DUPFD_CLOEXEC),
// so a child the daemon starts never inherits a mapped file. dax owns these
// duplicates (see the package doc), which is why it, and not internal/sys,
// makes this one call; fcntl(F_DUPFD_CLOEXEC) cannot block, hence
// RawSyscall.
func dupCloexec(fd int) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
