package dataplane

import "github.com/fastfsd/fastfsd/internal/waitshare"

// LockWaits counts the waits one FUSE door's bounded wait slots hold, per
// caller uid, and decides whether one more may wait: the same rule on
// every door that serves FUSE (a /dev/fuse connection's helper pool, a
// FUSE io_uring queue's entries, a virtio-fs queue's slots), and on 9P's
// connections (p9). A wait is a lock wait (fuse.WaitingLock) or an open
// or truncate that must break a host lease (fs.WouldWait); unlocks are
// never counted. The rule and its reasons are waitshare.Counter's.
type LockWaits = waitshare.Counter

// NewLockWaits returns the count for a door with slots wait slots.
func NewLockWaits(slots int) *LockWaits { return waitshare.New(slots) }
