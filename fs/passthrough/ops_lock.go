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
//
// Access mode. An owner fd is opened with the access its locks need, no
// more: O_RDONLY for a read lock, O_RDWR (O_WRONLY if the host refuses
// read access) for a write lock. An open for write breaks a read lease a
// host process holds on the file (Samba's oplocks are leases), keeps the
// file open for write (execve of it fails with ETXTBSY, no read lease can
// be taken) and is refused on a file only readable, none of which a native
// POSIX lock does: a read lock through a read-only handle must cost a
// read-only open. An O_RDONLY open breaks no read lease, and no write
// lease can exist while the handle the lock comes through is open. A lock
// needs its handle to have that access (EBADF else, as fcntl(2) checks
// the fd), so the owner fd never has an access no handle of the owner
// had (the one exception, read access added to a write-locking owner's
// fd, serves only locks). When an owner whose fd is read-only asks for a
// write lock, upgradeOwnerFd moves its locks to a read-write fd.
//
// Identity. Every open and fcntl here runs as the daemon (the FS's own
// fsuid and capabilities), as the handle's own open (Open, openForIO)
// does: the client checked the caller's access when it opened the handle,
// and the owner fd asks for no access the handles lack. asCaller would
// change nothing on a local file system (a non-root caller keeps
// CAP_DAC_OVERRIDE there), and a strict check with the caller's fsuid
// alone would refuse access the caller has through a supplementary group,
// which the request does not carry.

// lockNeeds reports whether an fd opened with access mode acc
// (O_ACCMODE bits) may hold a lock of type typ: F_RDLCK needs read
// access, F_WRLCK write access (fcntl(2): EBADF else); F_UNLCK none.
func lockNeeds(acc int, typ int16) bool {
	switch typ {
	case unix.F_RDLCK:
		return acc == unix.O_RDONLY || acc == unix.O_RDWR
	case unix.F_WRLCK:
		return acc == unix.O_WRONLY || acc == unix.O_RDWR
	}
	return true
}

// ownerFd returns owner's fd on h's inode able to hold a lock of type typ
// (F_RDLCK or F_WRLCK), opening it if need be (and then recording owner
// as one that locked through h) or upgrading a read-only one
// (upgradeOwnerFd). A new fd is counted for uid, the caller, in the
// budget: ENOLCK if uid is at its limit; an upgrade replaces the fd and
// counts nothing more. The caller has checked that h's access allows
// typ. Preconditions: in.lockMu is held.
func (f *FS) ownerFd(h *handle, owner uint64, pid, uid uint32, typ int16) (lockOwner, fs.Errno) {
	in := h.in
	o, ok := in.lockOwners[owner]
	switch {
	case !ok:
		if !f.budget.take(uid) {
			return o, syscall.ENOLCK
		}
		fd, acc, e := f.openOwnerFd(in, typ)
		if e != 0 {
			f.budget.give(uid)
			return o, e
		}
		if in.lockOwners == nil {
			in.lockOwners = make(map[uint64]lockOwner)
		}
		o = lockOwner{fd: fd, acc: acc, uid: uid, gen: lockGen.Add(1)}
		h.addLockOwner(owner)
	case !lockNeeds(o.acc, typ):
		if e := f.upgradeOwnerFd(in, &o); e != 0 {
			return o, e
		}
		h.addLockOwner(owner) // the write lock may come through another handle
	}
	if pid != 0 {
		o.pid = pid
	}
	in.lockOwners[owner] = o
	return o, fs.OK
}

// openOwnerFd opens a new owner fd on in for a lock of type typ and
// returns it with its access mode: O_RDONLY for F_RDLCK; O_RDWR for
// F_WRLCK, so that the owner's later read locks need no upgrade (its
// write access already costs what read access would), or O_WRONLY if the
// host refuses read access. O_NONBLOCK: an open a host lease would make
// wait fails with EWOULDBLOCK instead of sleeping with in.lockMu held
// (the kernel starts the lease break all the same). Runs as the daemon
// (see Identity above).
func (f *FS) openOwnerFd(in *inode, typ int16) (fd, acc int, e fs.Errno) {
	if typ != unix.F_WRLCK {
		fd, e = f.reopen(in, unix.O_RDONLY|unix.O_NONBLOCK)
		return fd, unix.O_RDONLY, e
	}
	fd, e = f.reopen(in, unix.O_RDWR|unix.O_NONBLOCK)
	if e == syscall.EACCES || e == syscall.EPERM {
		fd, e = f.reopen(in, unix.O_WRONLY|unix.O_NONBLOCK)
		return fd, unix.O_WRONLY, e
	}
	return fd, unix.O_RDWR, e
}

// upgradeOwnerFd gives o, whose read-only fd cannot hold the write lock
// it asks for, a read-write fd carrying the same locks, and closes the
// old one. On error o and its locks are as they were.
//
// Order. OFD locks of two open file descriptions conflict even within
// one process, so a write lock cannot be taken on the new fd while the
// old one read-locks the range, and releasing on the old fd before
// taking on the new one would leave the range unlocked for a moment, in
// which another process could lock it. But every lock a read-only fd
// holds is a read lock, and read locks do not conflict: each of o.held
// is read-locked on the new fd while the old fd still holds it (nothing
// else can write-lock a range the old fd read-locks, so this cannot
// fail for a conflict), then the old fd is closed. The owner's ranges
// stay read-locked throughout, with no window; the write lock is then
// asked on the new fd, where the kernel converts the owner's own read
// lock atomically (or refuses it for another owner's lock, leaving the
// read lock held, as natively).
//
// Refused with ENOLCK (no lock is lost; the client's lock fails): an owner
// with a request waiting on a dup of the old fd (o.waiting: that wait
// would be granted on the old open file description, which would then
// conflict with the owner's own locks on the new one), and a write-only
// fd asked for a read lock (only if the host refused read access when it
// was opened; its write locks cannot be moved without a window).
// Preconditions: in.lockMu is held (no other request of any owner of in
// changes the locks the daemon holds meanwhile).
func (f *FS) upgradeOwnerFd(in *inode, o *lockOwner) fs.Errno {
	if o.acc != unix.O_RDONLY || o.waiting > 0 {
		return syscall.ENOLCK
	}
	// As the daemon, like every owner fd; O_NONBLOCK as in openOwnerFd.
	// The new fd is not counted in the budget: it replaces o.fd below
	// before in.lockMu is let go.
	fd, e := f.reopen(in, unix.O_RDWR|unix.O_NONBLOCK)
	if e != 0 {
		return e
	}
	for _, s := range o.held {
		l := unix.Flock_t{Type: unix.F_RDLCK, Whence: unix.SEEK_SET, Start: s.start}
		if s.end != math.MaxInt64 {
			l.Len = s.end - s.start + 1
		}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &l); err != nil {
			unix.Close(fd) // drops the copies; o.fd still holds every range
			return errno(err)
		}
	}
	unix.Close(o.fd) // its last reference (no waiter holds a dup): its locks go
	o.fd, o.acc = fd, unix.O_RDWR
	return fs.OK
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
	o, e := f.ownerFd(h, owner, pid, uid, l.Type)
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
	o, e := f.ownerFd(h, owner, pid, ctx.Uid, l.Type)
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
	// As fcntl(2) checks the fd: a read lock needs a handle open for
	// reading, a write lock one open for writing (the client's kernel
	// checks it too; a 9P or virtio-fs client might not). The owner fd
	// then never needs an access the owner's handles lack.
	if !lockNeeds(h.flags&unix.O_ACCMODE, l.Type) {
		return syscall.EBADF
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
