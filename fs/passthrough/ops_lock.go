package passthrough

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/sys"
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

// maxSpans bounds the disjoint ranges one owner may hold locked on one
// inode (the daemon mirrors them to know when the owner's last lock goes):
// one more lock that would need a new range fails with ENOLCK.
const maxSpans = 1024

// lockGen numbers lock-owner fds, so that a blocking call that ran on a
// dup can tell whether the owner it started for still exists.
var lockGen atomic.Uint64

// Owner fds: a lock owner's OFD locks on an inode live on an fd of its
// own, opened at its first lock and closed when its last lock goes (held
// becomes empty), at FLUSH of that owner, or at RELEASE of a handle it
// locked through. GETLK never opens one: an owner without an fd holds no
// lock, so any fd without OFD locks (the handle's own) answers for it.

// ownerFd returns owner's fd on h's inode, opening it if need be (and then
// recording owner as one that locked through h). The fd is opened
// read-write if the host allows (a lock of either type can then be taken),
// else with the handle's access mode. A new fd is counted for uid, the
// caller, in the budget: ENOLCK if uid is at its limit. Preconditions:
// in.lockMu is held.
func (f *FS) ownerFd(h *handle, owner uint64, pid, uid uint32) (lockOwner, fs.Errno) {
	in := h.in
	o, ok := in.lockOwners[owner]
	if !ok {
		if !f.budget.take(uid) {
			return o, syscall.ENOLCK
		}
		fd, e := f.reopen(in, unix.O_RDWR|unix.O_NONBLOCK)
		if e != 0 {
			if fd, e = f.reopen(in, h.flags&unix.O_ACCMODE|unix.O_NONBLOCK); e != 0 {
				f.budget.give(uid)
				return o, e
			}
		}
		if in.lockOwners == nil {
			in.lockOwners = make(map[uint64]lockOwner)
		}
		o = lockOwner{fd: fd, uid: uid, gen: lockGen.Add(1)}
		h.addLockOwner(owner)
	}
	if pid != 0 {
		o.pid = pid
	}
	in.lockOwners[owner] = o
	return o, fs.OK
}

// settle records the outcome of a lock call for owner on l's range and
// closes the owner's fd if that left it holding nothing (and nobody waits
// on it). Preconditions: in.lockMu is held.
func (f *FS) settle(in *inode, owner uint64, l *unix.Flock_t) {
	o, ok := in.lockOwners[owner]
	if !ok {
		return
	}
	sp := toSpan(l)
	if l.Type == unix.F_UNLCK {
		o.held = subSpan(o.held, sp)
	} else {
		o.held = addSpan(o.held, sp)
	}
	in.lockOwners[owner] = o
	f.tidy(in, owner)
}

// tidy closes owner's fd if it holds nothing and nobody waits on it, and
// gives it back to the budget. Preconditions: in.lockMu is held.
func (f *FS) tidy(in *inode, owner uint64) {
	if o, ok := in.lockOwners[owner]; ok && len(o.held) == 0 && o.waiting == 0 {
		unix.Close(o.fd)
		f.budget.give(o.uid)
		delete(in.lockOwners, owner)
	}
}

// spanRoom reports whether owner may take a lock on l's range without
// exceeding maxSpans. Preconditions: in.lockMu is held.
func spanRoom(in *inode, owner uint64, l *unix.Flock_t) bool {
	o := in.lockOwners[owner]
	return len(o.held) < maxSpans || len(addSpan(append([]span(nil), o.held...), toSpan(l))) <= maxSpans
}

// setLkNow takes or releases a POSIX lock for owner without waiting; uid
// is the caller's (ownerFd).
func (f *FS) setLkNow(h *handle, owner uint64, pid, uid uint32, l unix.Flock_t) fs.Errno {
	in := h.in
	in.lockMu.Lock()
	defer in.lockMu.Unlock()
	if l.Type == unix.F_UNLCK {
		o, ok := in.lockOwners[owner]
		if !ok {
			return fs.OK // holds nothing to unlock
		}
		if e := errno(unix.FcntlFlock(uintptr(o.fd), unix.F_OFD_SETLK, &l)); e != 0 {
			return e
		}
		f.settle(in, owner, &l)
		return fs.OK
	}
	if !spanRoom(in, owner, &l) {
		return syscall.ENOLCK
	}
	o, e := f.ownerFd(h, owner, pid, uid)
	if e != 0 {
		return e
	}
	lc := l // F_OFD_SETLK may write to it
	e = errno(unix.FcntlFlock(uintptr(o.fd), unix.F_OFD_SETLK, &lc))
	if e == 0 {
		f.settle(in, owner, &l)
	} else {
		f.tidy(in, owner) // closes a fd opened for nothing
	}
	return e
}

// setLkWait takes a POSIX lock for owner, waiting for it in a blocking
// F_OFD_SETLKW on a dup of the owner's fd (the same open file description,
// so the same OFD owner) without holding in.lockMu, interruptible through
// ctx. The dup is one more fd the caller holds while it waits: it is
// counted for ctx.Uid in the budget (ENOLCK at its limit) until closed,
// so that waiting locks cannot take a uid past its budget of fds.
func (f *FS) setLkWait(ctx *fs.Context, h *handle, owner uint64, pid uint32, l unix.Flock_t) fs.Errno {
	in := h.in
	in.lockMu.Lock()
	if !spanRoom(in, owner, &l) {
		in.lockMu.Unlock()
		return syscall.ENOLCK
	}
	o, e := f.ownerFd(h, owner, pid, ctx.Uid)
	if e != 0 {
		in.lockMu.Unlock()
		return e
	}
	if !f.budget.take(ctx.Uid) {
		f.tidy(in, owner) // closes an owner fd opened for nothing
		in.lockMu.Unlock()
		return syscall.ENOLCK
	}
	dup, err := unix.FcntlInt(uintptr(o.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		f.budget.give(ctx.Uid)
		f.tidy(in, owner)
		in.lockMu.Unlock()
		return errno(err)
	}
	o.waiting++
	in.lockOwners[owner] = o
	gen := o.gen
	in.lockMu.Unlock()

	lc := l
	e = blockingCall(ctx, func() error { return unix.FcntlFlock(uintptr(dup), unix.F_OFD_SETLKW, &lc) })

	in.lockMu.Lock()
	defer in.lockMu.Unlock()
	// If the owner was dropped meanwhile (FLUSH, RELEASE), dup is the
	// last reference to its open file: closing it drops what was granted.
	unix.Close(dup)
	f.budget.give(ctx.Uid)
	if o, ok := in.lockOwners[owner]; ok && o.gen == gen {
		o.waiting--
		in.lockOwners[owner] = o
		if e == 0 {
			f.settle(in, owner, &l)
		} else {
			f.tidy(in, owner)
		}
	}
	return e
}

// addLockOwner records that owner locked through h (once).
func (h *handle) addLockOwner(owner uint64) {
	h.lockMu.Lock()
	defer h.lockMu.Unlock()
	for _, o := range h.lockOwners {
		if o == owner {
			return
		}
	}
	h.lockOwners = append(h.lockOwners, owner)
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
		f.budget.give(o.uid)
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
	in := h.in
	in.lockMu.Lock()
	fd := h.fd // holds no OFD lock: the answer for an owner that holds none
	if o, ok := in.lockOwners[owner]; ok {
		fd = o.fd // the owner's own locks are no conflict
	}
	e = errno(unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &l))
	in.lockMu.Unlock()
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
// or, with flock, a flock(2) lock on the handle. With wait it blocks in
// the host's own blocking call (F_OFD_SETLKW, flock without LOCK_NB) until
// the lock is granted or ctx is interrupted (EINTR): the caller must not
// be a transport's worker (see fs.FileSystem.SetLk).
func (f *FS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	h, e := f.getHandle(fh)
	if e != 0 {
		return e
	}
	defer f.putHandle(h)
	if flock {
		var how int
		switch lk.Type {
		case unix.F_RDLCK:
			how = unix.LOCK_SH
		case unix.F_WRLCK:
			how = unix.LOCK_EX
		case unix.F_UNLCK:
			how, wait = unix.LOCK_UN, false
		default:
			return syscall.EINVAL
		}
		if !wait {
			return lockErr(errno(unix.Flock(h.fd, how|unix.LOCK_NB)))
		}
		return blockingCall(ctx, func() error { return unix.Flock(h.fd, how) })
	}
	l, e := toFlock(lk)
	if e != 0 {
		return e
	}
	if !wait || l.Type == unix.F_UNLCK {
		return lockErr(f.setLkNow(h, owner, lk.Pid, ctx.Uid, l))
	}
	return f.setLkWait(ctx, h, owner, lk.Pid, l)
}

// lockErr maps the host's "conflicting lock" errnos to the EAGAIN the
// client expects.
func lockErr(e fs.Errno) fs.Errno {
	if e == syscall.EACCES {
		return syscall.EAGAIN
	}
	return e
}

// wakeSignal is 0 once sys.WakeSignal interrupts system calls; another
// errno if it could not be set up (blocking calls then cannot be
// interrupted, only granted).
var wakeSignal = sync.OnceValue(sys.InstallWakeSignal)

// blockingWait is one blocking system call in progress, for whoever
// interrupts it.
type blockingWait struct {
	tid int
	mu  sync.Mutex
	// inCall: the thread is in, or about to enter, the blocking call.
	// +checklocks:mu
	inCall bool
	// cancelled: the request was interrupted. +checklocks:mu
	cancelled bool
}

// blockingCall runs call, a system call that sleeps interruptibly (a
// blocking fcntl lock or flock), on the calling goroutine's thread, and
// returns its errno, or EINTR if ctx is interrupted first. The goroutine
// stays locked to its thread for the call, so that an interrupt can reach
// it: tgkill with sys.WakeSignal, whose handler (the Go runtime's no-op
// for it) is installed without SA_RESTART, so the call returns EINTR. A
// signal that lands between the check and the call would be lost, so the
// interrupter repeats it until the call has returned (libfuse does the
// same). Allocates: not for the hot path.
func blockingCall(ctx *fs.Context, call func() error) fs.Errno {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w := &blockingWait{tid: unix.Gettid()}
	if ctx != nil && ctx.CanInterrupt() && wakeSignal() == 0 {
		if !ctx.OnInterrupt(w.cancel) {
			return syscall.EINTR
		}
		defer ctx.StopOnInterrupt()
	}
	for {
		w.mu.Lock()
		if w.cancelled {
			w.mu.Unlock()
			return syscall.EINTR
		}
		w.inCall = true
		w.mu.Unlock()
		err := call()
		// A WakeSignal sent while inCall was set is delivered before this
		// thread runs anything else once it has taken mu (a pending signal
		// is delivered on the way back to user space), so no later system
		// call of this thread sees it.
		w.mu.Lock()
		w.inCall = false
		w.mu.Unlock()
		if err == syscall.EINTR {
			continue // ours (cancelled, seen above) or a stray signal: retry
		}
		return errno(err)
	}
}

// cancel is the OnInterrupt callback: it must not block.
func (w *blockingWait) cancel() {
	w.mu.Lock()
	w.cancelled = true
	in := w.inCall
	w.mu.Unlock()
	if in {
		go w.kick()
	}
}

// kick signals the waiting thread until its call has returned.
func (w *blockingWait) kick() {
	pid := unix.Getpid()
	for d := time.Millisecond; ; d = min(2*d, 100*time.Millisecond) {
		w.mu.Lock()
		if !w.inCall {
			w.mu.Unlock()
			return
		}
		unix.Tgkill(pid, w.tid, sys.WakeSignal)
		w.mu.Unlock()
		time.Sleep(d)
	}
}

// span is a locked byte range [start, end], end inclusive; end ==
// math.MaxInt64 reaches the end of file (the kernel's OFFSET_MAX).
type span struct{ start, end int64 }

// toSpan is the range l covers (Whence is always SEEK_SET here; Len 0
// reaches the end of file).
func toSpan(l *unix.Flock_t) span {
	if l.Len <= 0 {
		return span{l.Start, math.MaxInt64}
	}
	if l.Len-1 > math.MaxInt64-l.Start {
		return span{l.Start, math.MaxInt64}
	}
	return span{l.Start, l.Start + l.Len - 1}
}

// addSpan returns the sorted, disjoint set s with a added (merging ranges
// that overlap or touch, as the kernel merges one owner's locks).
func addSpan(s []span, a span) []span {
	out := s[:0:0]
	placed := false
	for _, x := range s {
		switch {
		case x.end < a.start && x.end+1 < a.start:
			out = append(out, x)
		case a.end < x.start && a.end+1 < x.start:
			if !placed {
				out, placed = append(out, a), true
			}
			out = append(out, x)
		default: // overlap or adjacent: merge into a
			a.start, a.end = min(a.start, x.start), max(a.end, x.end)
		}
	}
	if !placed {
		out = append(out, a)
	}
	return out
}

// subSpan returns s with a removed (splitting a range a cuts in two).
func subSpan(s []span, a span) []span {
	out := s[:0:0]
	for _, x := range s {
		if x.end < a.start || a.end < x.start {
			out = append(out, x)
			continue
		}
		if x.start < a.start {
			out = append(out, span{x.start, a.start - 1})
		}
		if a.end < x.end {
			out = append(out, span{a.end + 1, x.end})
		}
	}
	return out
}
