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

// withLockFd runs op on the fd that carries owner's OFD locks on h's
// inode, creating it if create (and then recording pid as the owner's and
// owner as one that locked through h). The fd is opened read-write if the
// host allows (a lock of either type can then be taken), else with the
// handle's access mode. op runs under in.lockMu so that a racing Flush
// cannot close the fd under it; op must not block.
func (f *FS) withLockFd(h *handle, owner uint64, pid uint32, create bool, op func(fd int) error) fs.Errno {
	in := h.in
	in.lockMu.Lock()
	defer in.lockMu.Unlock()
	o, ok := in.lockOwners[owner]
	if !ok {
		if !create {
			return fs.OK
		}
		fd, e := f.reopen(in, unix.O_RDWR|unix.O_NONBLOCK)
		if e != 0 {
			if fd, e = f.reopen(in, h.flags&unix.O_ACCMODE|unix.O_NONBLOCK); e != 0 {
				return e
			}
		}
		if in.lockOwners == nil {
			in.lockOwners = make(map[uint64]lockOwner)
		}
		o = lockOwner{fd: fd}
		h.lockMu.Lock()
		h.lockOwners = append(h.lockOwners, owner)
		h.lockMu.Unlock()
	}
	if create && pid != 0 {
		o.pid = pid
	}
	in.lockOwners[owner] = o
	return errno(op(o.fd))
}

// holderPid finds which other owner holds the lock l that conflicts with
// owner's request, and returns its pid (0 if none of ours: a host process
// holds it). From the holder's own fd its lock is no conflict, so asking
// there reports something else or nothing.
func (f *FS) holderPid(in *inode, owner uint64, l *unix.Flock_t) uint32 {
	in.lockMu.Lock()
	defer in.lockMu.Unlock()
	for id, o := range in.lockOwners {
		if id == owner {
			continue
		}
		probe := unix.Flock_t{Type: unix.F_WRLCK, Whence: unix.SEEK_SET, Start: l.Start, Len: l.Len}
		if unix.FcntlFlock(uintptr(o.fd), unix.F_OFD_GETLK, &probe) != nil {
			continue
		}
		if probe.Type == unix.F_UNLCK || probe.Start != l.Start || probe.Len != l.Len {
			return o.pid
		}
	}
	return 0
}

// forgetLockOwner removes owner from the owners Release drops. Flush
// carries POSIX lock owners (one per process) and drops them itself;
// what remains at Release are the OFD owners (one per open file, which
// the client only ever unlocks by closing it: its kernel keeps no local
// record of a FUSE file's locks to unlock at close).
func (h *handle) forgetLockOwner(owner uint64) {
	h.lockMu.Lock()
	defer h.lockMu.Unlock()
	for i, o := range h.lockOwners {
		if o == owner {
			h.lockOwners = append(h.lockOwners[:i], h.lockOwners[i+1:]...)
			return
		}
	}
}

// dropLockOwner closes owner's lock fd on in, releasing its locks.
func (f *FS) dropLockOwner(in *inode, owner uint64) {
	in.lockMu.Lock()
	if o, ok := in.lockOwners[owner]; ok {
		unix.Close(o.fd)
		delete(in.lockOwners, owner)
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
	e = f.withLockFd(h, owner, 0, true, func(fd int) error {
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
	out.Pid = f.holderPid(h.in, owner, &l)
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
			return f.withLockFd(h, owner, lk.Pid, !unlock, func(fd int) error {
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
