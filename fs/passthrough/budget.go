package passthrough

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// Per-uid budget of open handles (issue 10: one unprivileged user opening
// one file 19,000 times exhausted the daemon's RLIMIT_NOFILE, and every
// other user's open failed with EMFILE until it let go).

// OpenBudget bounds, per caller uid, what the file systems counting into
// it hold open for that caller's requests:
//
//   - a handle, from Open, Create, Tmpfile or OpenDir until its Release or
//     ReleaseDir (and the last request still using it) is done;
//   - a lock owner's fd, from the owner's first lock on an inode until its
//     last lock goes, its FLUSH or the RELEASE of a handle it locked
//     through (ops_lock.go);
//   - a waiting POSIX lock's dup of its owner's fd, for as long as it
//     waits (setLkWait). A blocking flock waits on the handle's own fd.
//
// The caller is the request's fs.Context.Uid, as the file system sees it
// (after any uid translation in front of it). A request that would take
// its caller past the budget fails, for that caller alone: EMFILE for an
// open (what open(2) says when a process has too many files open) and
// ENOLCK for a lock that needs a new owner fd or a POSIX lock wait (what fcntl(2)
// and flock(2) say when no lock records are left). uid 0 is never counted: root can
// stop the daemon anyway, and must keep working when others hit their
// budgets.
//
// What is bounded is the uid's count, not its fds: a handle holds its own
// fd and may keep two more open, its inode's O_PATH fd while the inode is
// out of the fd cache (file handles) and the inode's shared passthrough
// file (Options.Passthrough). FdsPerHandle says how many for an FS, and
// AutoMaxOpenPerUid sizes the budget with it.
//
// Where the uid comes from decides what the budget is worth: on a FUSE
// mount the host kernel sets it (a bound one local user cannot escape);
// on virtio-fs the guest's kernel claims it (a fairness bound among the
// guest's users, not a security boundary: a guest can claim any uid).
//
// The counts are kept in shards of small maps whose entries are removed
// when they reach zero, so the maps hold only uids that hold something;
// counting allocates nothing once a shard's map has room (Go maps keep
// their memory after a delete), and the open that counts allocates its
// handle anyway. A shard's mutex is a leaf: it may be taken under any
// other lock (ownerFd takes it under inode.lockMu) and nothing is taken
// under it. A nil *OpenBudget counts nothing.
type OpenBudget struct {
	// max is the per-uid limit. Immutable.
	max    int64
	shards [budgetShards]budgetShard
}

// budgetShards spreads uids over locks; few uids hold files at once.
const budgetShards = 16

type budgetShard struct {
	mu sync.Mutex
	// held is what each uid holds; no entry is zero. +checklocks:mu
	held map[uint32]int64
	_    cacheLinePad
}

// NewOpenBudget returns a budget of perUid handles and lock-owner fds per
// uid (uid 0 excepted), which several FSes may share (Options.OpenBudget):
// one budget for all the directories a client is served, so that serving
// more of them does not multiply what one uid may hold. perUid < 1 is
// taken as 1.
func NewOpenBudget(perUid int) *OpenBudget {
	b := &OpenBudget{max: int64(max(perUid, 1))}
	for i := range b.shards {
		b.shards[i].held = make(map[uint32]int64)
	}
	return b
}

// Max returns the per-uid limit, 0 for a nil budget (no limit).
func (b *OpenBudget) Max() int {
	if b == nil {
		return 0
	}
	return int(b.max)
}

// Held returns what uid holds now (always 0 for uid 0 or a nil budget).
func (b *OpenBudget) Held(uid uint32) int {
	if b == nil {
		return 0
	}
	s := &b.shards[uid%budgetShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.held[uid])
}

// uids returns how many uids hold something (the entries in the maps).
func (b *OpenBudget) uids() int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += len(s.held)
		s.mu.Unlock()
	}
	return n
}

// take counts one more for uid: false if uid is at its limit (nothing
// counted then). Allocation-free once uid's shard has room.
func (b *OpenBudget) take(uid uint32) bool {
	if b == nil || uid == 0 {
		return true
	}
	s := &b.shards[uid%budgetShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.held[uid]
	if n >= b.max {
		return false
	}
	s.held[uid] = n + 1
	return true
}

// give returns one that take counted for uid.
func (b *OpenBudget) give(uid uint32) {
	if b == nil || uid == 0 {
		return
	}
	s := &b.shards[uid%budgetShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch n := s.held[uid]; {
	case n > 1:
		s.held[uid] = n - 1
	case n == 1:
		delete(s.held, uid)
	default:
		panic("passthrough: OpenBudget: more given back than taken")
	}
}

// takeOpen is take for an open: EMFILE over budget.
func (b *OpenBudget) takeOpen(uid uint32) fs.Errno {
	if !b.take(uid) {
		return syscall.EMFILE
	}
	return fs.OK
}

// Automatic sizing (Options.MaxOpenPerUid 0).
const (
	// BudgetReserve is the number of fds AutoMaxOpenPerUid leaves to the
	// daemon itself: /dev/fuse clones, pipes, sockets, the root, procfs.
	BudgetReserve = 256
	// BudgetShare is how many uids at their budget, each holding the most
	// fds its handles can, it takes to use up the fds left after the fd
	// cache and the reserve.
	BudgetShare = 8
	// MinOpenPerUid is the smallest automatic budget.
	MinOpenPerUid = 16
)

// AutoMaxOpenPerUid is the per-uid budget New uses for a process whose
// RLIMIT_NOFILE soft limit is nofile, with fdCache inode fds cached (0
// without file handles) and fdsPerHandle fds at most per handle
// (FdsPerHandle): the fds left after the cache and BudgetReserve, divided
// by BudgetShare×fdsPerHandle, so that it takes eight uids at their budget,
// every handle holding the most it can, to use up the fds the cache and the
// reserve leave; one uid never gets in the way of root or of the others.
// At least MinOpenPerUid. For example, 20,000 fds with a 5,000-fd cache
// and 3 fds per handle: 614; 1,048,576 fds, an 8,192-fd cache: 43,338.
func AutoMaxOpenPerUid(nofile uint64, fdCache, fdsPerHandle int) int {
	left := int64(nofile) - int64(fdCache) - BudgetReserve
	n := left / int64(BudgetShare*max(fdsPerHandle, 1))
	if n < MinOpenPerUid {
		n = MinOpenPerUid
	}
	return int(n)
}

// FdsPerHandle is how many fds one handle of an FS with these options may
// hold: its own, plus the inode's O_PATH fd while outside the fd cache
// with file handles, plus the inode's passthrough file with Passthrough.
// (Without file handles every inode the client remembers holds its fd
// anyway, whether open or not.)
func FdsPerHandle(o *Options) int {
	n := 1
	if o.FileHandles != FileHandlesNever {
		n++
	}
	if o.Passthrough {
		n++
	}
	return n
}

// nofileLimit is this process's RLIMIT_NOFILE soft limit (1024 if it
// cannot be read).
func nofileLimit() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return r.Cur
}
