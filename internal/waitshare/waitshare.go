// Package waitshare counts the waits a door's bounded wait slots hold,
// per caller uid, and decides whether one more may wait: one rule for
// every door: dataplane.LockWaits for the FUSE doors' lock waits and
// opens that must break a host lease, and p9's connections for the latter.
// p9 applies the same rule to another bounded slot one uid could take
// from the others: the fids of a connection that serves several uids
// (Options.MaxFids, a Counter of that many slots made by NewFloor: one
// fid does nothing). A leaf: it imports
// nothing of the module.
package waitshare

import "sync"

// Fraction is the fraction of a door's wait slots one uid other
// than 0 may hold (1/Fraction), and the fraction kept for root: with
// 1,024 slots a user waits in at most 128, and non-root waits stop at 896.
const Fraction = 8

// Counter counts the waits one door's bounded wait slots hold, per
// caller uid, and decides whether one more may wait. A wait is a request
// that may last as long as another process likes: a lock wait
// (fuse.WaitingLock: SETLKW asking for a read or write lock), or an open
// or truncate that must break a lease another process holds on the host
// file (fs.WouldWait). So no one caller may hold many slots with them
// (issue 10: 128 lock waits of one uid took every slot of a /dev/fuse
// connection, and with them every other user's blocking locks, root's
// unlocks included):
//
//   - a uid other than 0 waits in at most Share slots (an eighth, at
//     least 1);
//   - no uid other than 0 waits once Slots − Reserve slots wait (Reserve
//     is an eighth, kept for root, who can stop the daemon anyway);
//   - nobody waits in more than Slots.
//
// Unlocks (SETLKW with F_UNLCK) never wait, and a door never counts them
// here: they must work with every slot taken. Where the uid comes from
// decides what the share is worth: on a FUSE mount the host kernel sets
// it (one local user cannot take the others' blocking locks away); on
// virtio-fs the guest's kernel claims it (fairness among the guest's
// users); on 9P the uid the connection attached as.
//
// A door calls Take when a wait arrives, and Put with the same uid once
// its reply is sent (or Take's slot was not used after all). Take and Put
// may be called from any goroutine; they allocate nothing once the map
// has held as many uids at once.
type Counter struct {
	// slots, perUid and reserve are immutable.
	slots, perUid, reserve int

	mu sync.Mutex
	// waiting counts the waits taken and not yet put. +checklocks:mu
	waiting int
	// byUid counts each non-root uid's; no entry is zero (deleted at
	// zero), so it holds only uids that wait. +checklocks:mu
	byUid map[uint32]int
}

// New returns the count for a door with slots wait slots.
func New(slots int) *Counter {
	slots = max(slots, 0)
	return &Counter{slots: slots, perUid: max(1, slots/Fraction), reserve: slots / Fraction,
		byUid: make(map[uint32]int)}
}

// NewFloor returns the count for slots that one uid needs several of
// at once to do anything: New's rule, except that a uid other than 0
// may hold at least floor slots (as many as Slots − Reserve when fewer
// remain: root's reserve comes first), and root keeps at least one slot
// once there are two. Where slots/Fraction is floor or more the bounds
// are New's; below, fairness among uids gives way to each uid's being
// able to work at all: a share of floor lets ⌊(slots − Reserve)/floor⌋
// uids fill what root leaves (rather than Fraction − 1), and once
// slots − Reserve is floor or fewer one uid may take all of it. p9 gives the fids of a connection shared by
// several uids by this rule (a fid per directory of a path a v9fs user
// has open: one fid walks nowhere).
func NewFloor(slots, floor int) *Counter {
	l := New(slots)
	if l.reserve == 0 && l.slots >= 2 {
		l.reserve = 1
	}
	l.perUid = max(l.perUid, min(floor, l.slots-l.reserve))
	return l
}

// Slots, Share and Reserve return the bounds: the slots, one non-root
// uid's share of them, and the slots non-root waits leave to root.
func (l *Counter) Slots() int   { return l.slots }
func (l *Counter) Share() int   { return l.perUid }
func (l *Counter) Reserve() int { return l.reserve }

// Take counts one wait of uid, or reports false (nothing counted) if
// uid may not wait in one more slot: its share, all but the reserve (uid
// other than 0), or every slot is taken.
func (l *Counter) Take(uid uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting >= l.slots {
		return false
	}
	if uid != 0 {
		n := l.byUid[uid]
		if n >= l.perUid || l.waiting >= l.slots-l.reserve {
			return false
		}
		l.byUid[uid] = n + 1
	}
	l.waiting++
	return true
}

// Put gives back one wait Take counted for uid.
func (l *Counter) Put(uid uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting <= 0 {
		panic("waitshare: more put back than taken")
	}
	l.waiting--
	if uid != 0 {
		switch n := l.byUid[uid]; {
		case n > 1:
			l.byUid[uid] = n - 1
		case n == 1:
			delete(l.byUid, uid)
		default:
			panic("waitshare: a uid put back more than it took")
		}
	}
}

// Held returns the slots uid holds now (0 for uid 0, which is not
// counted per uid): a door tells by it whether a refused Take hit the
// uid's own share (Held(uid) == Share()) or the slots as a whole.
func (l *Counter) Held(uid uint32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byUid[uid]
}

// Waiting returns the waits counted now, and how many non-root uids
// they come from.
func (l *Counter) Waiting() (waits, uids int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting, len(l.byUid)
}
