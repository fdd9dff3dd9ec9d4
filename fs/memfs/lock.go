package memfs

import (
	"math"
	"slices"
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
)

// lockTable holds a node's POSIX record locks (OFD locks among them: their
// owner is the open file) and flock locks, as the client asks for them
// when it does not keep locks itself (the 9P door always; FUSE with
// fuse.Options.Locks).
type lockTable struct {
	posix []heldLock
	flock []heldLock // whole-file
	// wake is closed (and cleared) when a lock is released or
	// downgraded, waking every waiter to try again; nil while no one
	// waits.
	wake chan struct{}
}

type heldLock struct {
	owner      uint64
	start, end uint64 // inclusive; end lockEOF: to the end of the file
	typ        uint32
	pid        uint32
}

// openFile is the FileHandle of one open of a node: it remembers the lock
// owners that took locks through it, whose locks go when the open ends.
// That is how OFD locks (owned by the open file description, which the
// client never unlocks at close) and flock locks end; POSIX locks have
// gone at the close(2) already (Flush).
type openFile struct {
	mu sync.Mutex
	// +checklocks:mu
	owners []uint64
}

// maxOwnersPerOpen bounds the lock owners one open remembers; a client
// using more through one open gets ENOLCK.
const maxOwnersPerOpen = 256

func (o *openFile) state() *openFile { return o }

// remember adds owner; false if the open has too many.
func (o *openFile) remember(owner uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if slices.Contains(o.owners, owner) {
		return true
	}
	if len(o.owners) >= maxOwnersPerOpen {
		return false
	}
	o.owners = append(o.owners, owner)
	return true
}

// lockOpen is any FileHandle of memfs.
type lockOpen interface{ state() *openFile }

// Release ends an open: the locks taken through it go.
func (n *node) Release(_ *fs.Context, fh nodefs.FileHandle) fs.Errno {
	n.dropLocksOf(fh)
	return 0
}

// dropLocksOf drops the locks of the owners that locked through fh.
func (n *node) dropLocksOf(fh nodefs.FileHandle) {
	h, ok := fh.(lockOpen)
	if !ok {
		return
	}
	o := h.state()
	o.mu.Lock()
	owners := o.owners
	o.owners = nil
	o.mu.Unlock()
	if len(owners) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	released := false
	for _, owner := range owners {
		var r1, r2 bool
		n.locks.posix, r1 = setPosix(n.locks.posix, heldLock{owner: owner, end: lockEOF, typ: syscall.F_UNLCK})
		n.locks.flock, r2 = setFlock(n.locks.flock, heldLock{owner: owner, end: lockEOF, typ: syscall.F_UNLCK})
		released = released || r1 || r2
	}
	if released {
		n.locks.wakeWaiters()
	}
}

// wakeWaiters wakes every waiter to try again (a lock was released or
// downgraded).
func (t *lockTable) wakeWaiters() {
	if t.wake != nil {
		close(t.wake)
		t.wake = nil
	}
}

const lockEOF = math.MaxInt64 // OFFSET_MAX, what the client means by "to EOF"

func overlaps(a, b *heldLock) bool { return a.start <= b.end && b.start <= a.end }

// conflict returns a lock of another owner that keeps l from being taken.
func conflict(held []heldLock, l *heldLock) *heldLock {
	for i := range held {
		h := &held[i]
		if h.owner != l.owner && overlaps(h, l) && (h.typ == syscall.F_WRLCK || l.typ == syscall.F_WRLCK) {
			return h
		}
	}
	return nil
}

func toHeld(owner uint64, lk *fs.Lock) (heldLock, fs.Errno) {
	l := heldLock{owner: owner, start: lk.Start, end: min(lk.End, lockEOF), typ: lk.Type, pid: lk.Pid}
	if l.start > l.end || (l.typ != syscall.F_RDLCK && l.typ != syscall.F_WRLCK && l.typ != syscall.F_UNLCK) {
		return l, syscall.EINVAL
	}
	return l, 0
}

// setPosix replaces owner's locks over [l.start, l.end] with l (none for
// F_UNLCK), splitting the ones it covers in part and merging neighbours
// of the same type; it reports whether anything was released.
func setPosix(held []heldLock, l heldLock) ([]heldLock, bool) {
	out := held[:0:0]
	released := false
	for _, h := range held {
		if h.owner != l.owner || !overlaps(&h, &l) {
			out = append(out, h)
			continue
		}
		if h.typ != l.typ {
			released = true
		}
		if h.start < l.start {
			left := h
			left.end = l.start - 1
			out = append(out, left)
		}
		if h.end > l.end {
			right := h
			right.start = l.end + 1
			out = append(out, right)
		}
	}
	if l.typ == syscall.F_UNLCK {
		return out, true
	}
	// Merge with the owner's adjacent locks of the same type.
	merged := out[:0]
	for _, h := range out {
		if h.owner == l.owner && h.typ == l.typ && (h.end != lockEOF && h.end+1 == l.start || l.end != lockEOF && l.end+1 == h.start) {
			l.start, l.end = min(l.start, h.start), max(l.end, h.end)
			continue
		}
		merged = append(merged, h)
	}
	return append(merged, l), released
}

// Getlk reports the first lock conflicting with lk, or F_UNLCK.
func (n *node) Getlk(_ *fs.Context, _ nodefs.FileHandle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	l, e := toHeld(owner, lk)
	if e != 0 {
		return e
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := conflict(n.locks.posix, &l); c != nil {
		*out = fs.Lock{Start: c.start, End: c.end, Type: c.typ, Pid: c.pid}
		return 0
	}
	*out = *lk
	out.Type = syscall.F_UNLCK
	return 0
}

// Setlk takes or releases a lock, waiting if asked until it can be taken
// or the request is interrupted (EINTR).
func (n *node) Setlk(ctx *fs.Context, fh nodefs.FileHandle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	l, e := toHeld(owner, lk)
	if e != 0 {
		return e
	}
	if h, ok := fh.(lockOpen); ok && l.typ != syscall.F_UNLCK && !h.state().remember(owner) {
		return syscall.ENOLCK
	}
	if flock {
		l.start, l.end = 0, lockEOF
	}
	n.mu.Lock()
	for {
		held := &n.locks.posix
		if flock {
			held = &n.locks.flock
		}
		if l.typ == syscall.F_UNLCK || conflict(*held, &l) == nil {
			var released bool
			if flock {
				*held, released = setFlock(*held, l)
			} else {
				*held, released = setPosix(*held, l)
			}
			if released {
				n.locks.wakeWaiters()
			}
			n.mu.Unlock()
			return 0
		}
		if !wait {
			n.mu.Unlock()
			return syscall.EAGAIN
		}
		if n.locks.wake == nil {
			n.locks.wake = make(chan struct{})
		}
		wake := n.locks.wake
		n.mu.Unlock()
		if e := waitOrInterrupt(ctx, wake); e != 0 {
			return e
		}
		n.mu.Lock()
	}
}

// waitOrInterrupt waits until wake is closed (EINTR if the request is
// interrupted first). A request its transport cannot interrupt waits
// until the lock is released: the transports run lock waits off their
// workers (DESIGN.md, Requests that may block).
func waitOrInterrupt(ctx *fs.Context, wake chan struct{}) fs.Errno {
	intr := make(chan struct{})
	if !ctx.OnInterrupt(func() { close(intr) }) {
		if ctx.Interrupted() {
			return syscall.EINTR
		}
		<-wake
		return 0
	}
	defer ctx.StopOnInterrupt()
	select {
	case <-wake:
		return 0
	case <-intr:
		return syscall.EINTR
	}
}

// setFlock replaces owner's flock lock with l (none for F_UNLCK).
func setFlock(held []heldLock, l heldLock) ([]heldLock, bool) {
	out := held[:0:0]
	released := false
	for _, h := range held {
		if h.owner == l.owner {
			released = released || h.typ != l.typ
			continue
		}
		out = append(out, h)
	}
	if l.typ != syscall.F_UNLCK {
		out = append(out, l)
	}
	return out, released
}

// Flush drops the POSIX locks of lockOwner, as close(2) does (the client
// sends it at every close; the table is empty when the client keeps locks
// itself).
func (n *node) Flush(_ *fs.Context, _ nodefs.FileHandle, lockOwner uint64) fs.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.locks.posix) == 0 {
		return 0
	}
	held, released := setPosix(n.locks.posix, heldLock{owner: lockOwner, start: 0, end: lockEOF, typ: syscall.F_UNLCK})
	n.locks.posix = held
	if released {
		n.locks.wakeWaiters()
	}
	return 0
}
