package vhostuser

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Notifiers: the kick, call and error fds of SET_VRING_KICK, _CALL and
// _ERR. The back-end polls and reads the kick fd and writes 8 bytes to the
// others from queue workers and from the session goroutine, so a notifier
// that is not an eventfd, or one that blocks, is a front-end's way to hang
// or spin them: a blocking eventfd whose counter the front-end set to its
// maximum blocks a write for ever (the worker never answers GET_VRING_BASE;
// the session never reads another message); a pipe whose writer is gone
// polls readable for ever and reads nothing. So the session accepts only
// eventfds, and makes them non-blocking (O_NONBLOCK on the front-end's
// open file description: QEMU and Cloud Hypervisor create theirs
// non-blocking anyway). A signal then lost to a full counter is the
// front-end's own doing.

// anonInode is the (st_dev, st_ino) every eventfd has: eventfds are files
// of the kernel's one shared anonymous inode (so are a few other kinds —
// timerfd, epoll, signalfd — none of which can block or spin a
// non-blocking 8-byte read or write).
var anonInode = sync.OnceValues(func() ([2]uint64, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return [2]uint64{}, fmt.Errorf("eventfd: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return [2]uint64{}, fmt.Errorf("fstat of an eventfd: %w", err)
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, nil
})

var errNotEventfd = errors.New("not an eventfd")

// checkNotifier checks that fd, a notifier from the front-end, is an
// eventfd, and makes it non-blocking.
func checkNotifier(fd int) error {
	want, err := anonInode()
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != 0 || [2]uint64{uint64(st.Dev), st.Ino} != want {
		return errNotEventfd
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("setting O_NONBLOCK: %w", err)
	}
	return nil
}
