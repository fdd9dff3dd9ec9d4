package fuse

import (
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// defusePoll makes the kernel send its first FUSE_POLL for the mount at
// dir now (on the engine's PollHackName when hack is set, else on a file
// it creates), from a system call that releases its P, so that the engine's
// ENOSYS answer (which the kernel remembers) is in place before the test
// opens files with package os.
//
// Why: os.OpenFile registers every fd with the runtime's epoll through a
// raw epoll_ctl that keeps its P; on a FUSE file epoll_ctl sends POLL and
// waits for the server. When the server is this very process, a garbage
// collection that starts meanwhile waits for that P forever while the
// server goroutine waits for the collection: the process deadlocks.
// (go-fuse's "poll hack" exists for the same reason.)
func defusePoll(t *testing.T, dir string, hack bool) {
	t.Helper()
	name := filepath.Join(dir, PollHackName)
	flags := syscall.O_RDONLY | syscall.O_CLOEXEC
	if !hack {
		name = filepath.Join(dir, ".test-poll-hack")
		flags = syscall.O_CREAT | syscall.O_RDWR | syscall.O_CLOEXEC
		defer syscall.Unlink(name)
	}
	fd, err := syscall.Open(name, flags, 0o600)
	if err != nil {
		t.Fatalf("poll hack: open %s: %v", name, err)
	}
	defer syscall.Close(fd)
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatalf("poll hack: epoll_create1: %v", err)
	}
	defer syscall.Close(ep)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	// Syscall6, not syscall.EpollCtl (RawSyscall6): the call blocks until
	// the server answers.
	_, _, e := syscall.Syscall6(syscall.SYS_EPOLL_CTL, uintptr(ep), syscall.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if e != 0 && e != syscall.EPERM {
		t.Fatalf("poll hack: epoll_ctl: %v", e)
	}
}
