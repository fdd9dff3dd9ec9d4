package sys

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WakeSignal is the signal that wakes a thread blocked in an interruptible
// system call (a blocking fcntl F_OFD_SETLKW or flock): a real-time signal
// neither the Go runtime (SIGURG, 32, 33) nor fastfsd's os/signal use.
// After InstallWakeSignal, tgkill(WakeSignal) on a thread makes such a call
// return EINTR instead of being restarted.
const WakeSignal = syscall.Signal(62)

// saRestart is SA_RESTART (uapi asm-generic/signal-defs.h; x/sys lacks it).
const saRestart = 0x10000000

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64
// (both define __ARCH_HAS_SA_RESTORER): handler, flags, restorer, mask.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// InstallWakeSignal makes WakeSignal interrupt system calls. The Go
// runtime installs its own handler for every signal with SA_RESTART, so a
// blocked F_OFD_SETLKW would be restarted transparently; this keeps the
// runtime's handler (which ignores a real-time signal no os/signal channel
// asked for: tgkill'd, it is a no-op) and clears SA_RESTART on it, as
// libfuse does for the signal it sends to interrupt a lock wait. The
// signal must never be passed to os/signal (Notify would reinstall the
// handler with SA_RESTART). Idempotent; safe to call from any goroutine.
func InstallWakeSignal() syscall.Errno {
	var sa kernelSigaction
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(WakeSignal), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0)
	if e != 0 {
		return e
	}
	if sa.handler == 0 || sa.handler == 1 {
		// SIG_DFL (would kill the process) or SIG_IGN (would not
		// interrupt anything): not the runtime's handler, so do not use
		// the signal at all.
		return syscall.EINVAL
	}
	if sa.flags&saRestart == 0 {
		return 0
	}
	sa.flags &^= saRestart
	_, _, e = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(WakeSignal), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
	runtime.KeepAlive(&sa)
	return e
}
