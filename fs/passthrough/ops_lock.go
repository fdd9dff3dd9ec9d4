package passthrough

import (
	"math"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// Backoff of a waiting SetLk between attempts: short first (most locks are
// held briefly), capped so that an interrupt is noticed quickly.
const (
	lockWaitMin = 100 * time.Microsecond
	lockWaitMax = 20 * time.Millisecond
)

// toFlock converts a lock from the client; End is inclusive and
// math.MaxUint64 or anything ≥ math.MaxInt64 means "to end of file".
func toFlock(lk *fs.Lock) (unix.Flock_t, fs.Errno) {
	var l unix.Flock_t
	switch lk.Type {
	case unix.F_RDLCK, unix.F_WRLCK, unix.F_UNLCK:
	default:
		return l, syscall.EINVAL
	}
	if lk.Start > math.MaxInt64 {
		return l, syscall.EINVAL
	}
	l.Type = int16(lk.Type)
	l.Whence = unix.SEEK_SET
	l.Start = int64(lk.Start)
	switch {
	case lk.End >= math.MaxInt64:
		l.Len = 0 // to end of file
	case lk.End < lk.Start:
		return l, syscall.EINVAL
	default:
		l.Len = int64(lk.End - lk.Start + 1)
	}
	return l, fs.OK
}

// fromFlock converts a lock the host reported. OFD locks have no pid (the
// host says -1); the client gets 0.
func fromFlock(l *unix.Flock_t, out *fs.Lock) {
	out.Type = uint32(l.Type)
	out.Start = uint64(l.Start)
	if l.Len == 0 {
		out.End = math.MaxInt64
	} else {
		out.End = uint64(l.Start + l.Len - 1)
	}
	out.Pid = 0
	if l.Pid > 0 {
		out.Pid = uint32(l.Pid)
	}
}

// withLockFd runs op on the fd that carries owner's OFD locks on in,
// creating it if create. The fd is opened read-write if the host allows
// (a lock of either type can then be taken), else with the handle's
// access mode. op runs under in.lockMu so that a racing Flush cannot close
// the fd under it; op must not block.
func (f *FS) withLockFd(in *inode, owner uint64, hflags int, create bool, op func(fd int) error) fs.Errno {
	in.lockMu.Lock()
	defer in.lockMu.Unlock()
	fd, ok := in.lockFds[owner]
	if !ok {
		if !create {
			return fs.OK
		}
		var e fs.Errno
		fd, e = f.reopen(in, unix.O_RDWR|unix.O_NONBLOCK)
		if e != 0 {
			if fd, e = f.reopen(in, hflags&unix.O_ACCMODE|unix.O_NONBLOCK); e != 0 {
				return e
			}
		}
		if in.lockFds == nil {
			in.lockFds = make(map[uint64]int)
		}
		in.lockFds[owner] = fd
	}
	return errno(op(fd))
}

// dropLockOwner closes owner's lock fd on in, releasing its locks.
func (f *FS) dropLockOwner(in *inode, owner uint64) {
	in.lockMu.Lock()
	if fd, ok := in.lockFds[owner]; ok {
		unix.Close(fd)
		delete(in.lockFds, owner)
	}
	in.lockMu.Unlock()
}

// GetLk reports the first lock of another owner that conflicts with lk.
func (f *FS) GetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	l, e := toFlock(lk)
	if e != 0 {
		return e
	}
	if l.Type == unix.F_UNLCK {
		return syscall.EINVAL
	}
	h, e := f.getHandle(fh)
	if e != 0 {
		return e
	}
	defer f.putHandle(h)
	e = f.withLockFd(h.in, owner, h.flags, true, func(fd int) error {
		return unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &l)
	})
	if e != 0 {
		return e
	}
	if l.Type == unix.F_UNLCK {
		*out = *lk
		out.Type = unix.F_UNLCK
		return fs.OK
	}
	fromFlock(&l, out)
	return fs.OK
}

// SetLk takes or releases a POSIX record lock (an OFD lock on owner's fd)
// or, with flock, a flock(2) lock on the handle. With wait it retries
// until the lock is free or ctx is interrupted (EINTR).
func (f *FS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	h, e := f.getHandle(fh)
	if e != 0 {
		return e
	}
	defer f.putHandle(h)
	var try func() fs.Errno
	if flock {
		var how int
		switch lk.Type {
		case unix.F_RDLCK:
			how = unix.LOCK_SH
		case unix.F_WRLCK:
			how = unix.LOCK_EX
		case unix.F_UNLCK:
			how = unix.LOCK_UN
		default:
			return syscall.EINVAL
		}
		try = func() fs.Errno { return errno(unix.Flock(h.fd, how|unix.LOCK_NB)) }
	} else {
		l, e := toFlock(lk)
		if e != 0 {
			return e
		}
		unlock := l.Type == unix.F_UNLCK
		try = func() fs.Errno {
			return f.withLockFd(h.in, owner, h.flags, !unlock, func(fd int) error {
				lc := l // F_OFD_SETLK may write to it
				return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lc)
			})
		}
		if unlock {
			wait = false
		}
	}
	delay := lockWaitMin
	for {
		e := try()
		if e != syscall.EAGAIN && e != syscall.EACCES {
			return e
		}
		if !wait {
			return syscall.EAGAIN
		}
		if ctx != nil && ctx.Interrupted() {
			return syscall.EINTR
		}
		time.Sleep(delay)
		if delay *= 2; delay > lockWaitMax {
			delay = lockWaitMax
		}
	}
}
