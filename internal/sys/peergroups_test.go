package sys

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPeerGroups: the groups of a socketpair's peer are this process's.
func TestPeerGroups(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	got, e := PeerGroups(fds[0])
	if e != 0 {
		t.Fatal(e)
	}
	gs, _ := os.Getgroups()
	want := make([]uint32, len(gs))
	for i, g := range gs {
		want[i] = uint32(g)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PeerGroups = %v, getgroups %v", got, want)
	}
}

// TestPeerGroupsMany: more groups than the first buffer holds (the ERANGE
// retry), set on a thread of its own (raw setgroups changes that thread
// only; it ends with its goroutine, locked).
func TestPeerGroupsMany(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (setgroups)")
	}
	want := make([]uint32, 100)
	for i := range want {
		want[i] = uint32(5000 + i)
	}
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(want)), uintptr(unsafe.Pointer(&want[0])), 0); e != 0 {
			done <- e
			return
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
		got, e := PeerGroups(fds[0])
		if e != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
			done <- fmt.Errorf("PeerGroups = %v %v, want %v", got, e, want)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
