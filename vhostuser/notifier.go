package vhostuser

import (
	"errors"
	"fmt"
	"strconv"
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
// of the kernel's one shared anonymous inode. So are many other kinds
// (epoll, inotify, timerfd, signalfd, userfaultfd, io_uring, …), and some
// of them poll readable for ever while an 8-byte read fails with EINVAL
// and consumes nothing (an epoll instance watching a ready fd, an inotify
// instance with an event queued): as a kick fd, a worker spinning for
// ever. So the inode only sorts out what is no anonymous file at all;
// isEventfd tells an eventfd from the rest.
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
	if ok, err := isEventfd(fd); err != nil {
		return err
	} else if !ok {
		return errNotEventfd
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("setting O_NONBLOCK: %w", err)
	}
	return nil
}

// isEventfd reports whether fd, a file of the anonymous inode, is an
// eventfd: its /proc/self/fd link names it "anon_inode:[eventfd]" (the
// name eventfd(2) gives the file; other kinds have theirs). Where /proc
// cannot be read, by what only an eventfd accepts: a write of the 8-byte
// value 0, which adds nothing to its counter and never blocks, even at
// its maximum (the kernel waits only when the sum would pass it), where
// every other anonymous file refuses a write (epoll, inotify, timerfd,
// signalfd, userfaultfd, io_uring: EINVAL) or the value (fanotify: no
// permission event 0). The write wakes the eventfd's pollers once, as a
// spurious signal would.
func isEventfd(fd int) (bool, error) {
	var b [64]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), b[:])
	if err == nil {
		return string(b[:n]) == "anon_inode:[eventfd]", nil
	}
	return eventfdByWrite(fd)
}

// eventfdByWrite is isEventfd without /proc: a write of 0.
func eventfdByWrite(fd int) (bool, error) {
	var zero [8]byte
	n, err := unix.Write(fd, zero[:])
	switch {
	case err == nil:
		return n == len(zero), nil
	case err == unix.EAGAIN || err == unix.EINTR:
		return false, fmt.Errorf("writing 0 to tell an eventfd: %w", err)
	}
	return false, nil
}
