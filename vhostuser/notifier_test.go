package vhostuser

import (
	"encoding/binary"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEventfdKinds: isEventfd, by /proc and by its write of 0, takes an
// eventfd (a blocking one at its maximum too, without blocking and
// without changing its counter) and no other file of the anonymous
// inode: epoll, inotify, timerfd and signalfd fds pass checkNotifier's
// inode check but are no eventfds.
func TestEventfdKinds(t *testing.T) {
	mk := func(fd int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	ev := mk(unix.Eventfd(0, unix.EFD_CLOEXEC))
	full := mk(unix.Eventfd(0, unix.EFD_CLOEXEC)) // blocking
	var top [8]byte
	binary.NativeEndian.PutUint64(top[:], 0xfffffffffffffffe)
	if _, err := unix.Write(full, top[:]); err != nil {
		t.Fatal(err)
	}
	others := map[string]int{
		"epoll":    mk(unix.EpollCreate1(unix.EPOLL_CLOEXEC)),
		"inotify":  mk(unix.InotifyInit1(unix.IN_CLOEXEC)),
		"timerfd":  mk(unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)),
		"signalfd": mk(unix.Signalfd(-1, &unix.Sigset_t{}, unix.SFD_CLOEXEC)),
	}
	want, err := anonInode()
	if err != nil {
		t.Fatal(err)
	}
	for name, fd := range others {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		if [2]uint64{uint64(st.Dev), st.Ino} != want {
			t.Errorf("%s: not of the anonymous inode; the case tests nothing", name)
		}
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Errorf("/proc/self/fd: %v: isEventfd's /proc way is not tested", err)
	}
	for way, fn := range map[string]func(int) (bool, error){"/proc": isEventfd, "write": eventfdByWrite} {
		for name, fd := range map[string]int{"eventfd": ev, "full blocking eventfd": full} {
			if ok, err := fn(fd); !ok || err != nil {
				t.Errorf("%s: %s: %v, %v; want an eventfd", way, name, ok, err)
			}
		}
		for name, fd := range others {
			if ok, err := fn(fd); ok || err != nil {
				t.Errorf("%s: %s: %v, %v; want no eventfd, no error", way, name, ok, err)
			}
		}
	}
	var b [8]byte
	if _, err := unix.Read(full, b[:]); err != nil || binary.NativeEndian.Uint64(b[:]) != 0xfffffffffffffffe {
		t.Errorf("full eventfd's counter after the checks: %#x, %v; want it unchanged", binary.NativeEndian.Uint64(b[:]), err)
	}
}
