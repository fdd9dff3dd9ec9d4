package passthrough

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// FileHandleMode says whether inodes are kept as file handles, with the
// meaning virtiofsd gives --inode-file-handles.
type FileHandleMode int

const (
	// FileHandlesNever keeps an O_PATH fd open for every inode the client
	// knows: the number of open fds grows with the client's inode cache,
	// bounded only by RLIMIT_NOFILE.
	FileHandlesNever FileHandleMode = iota
	// FileHandlesPrefer keeps an inode's O_PATH fd only in a bounded
	// cache; when the cache closes it, the inode keeps a file handle
	// (name_to_handle_at, made then, so that the many inodes forgotten
	// while still cached cost no handle) and is reopened from it with
	// open_by_handle_at on a miss. Inodes on a filesystem that cannot
	// make handles keep their fd, as with never; if the daemon cannot
	// open handles at all (no CAP_DAC_READ_SEARCH), New falls back to
	// never and FileHandles says why.
	FileHandlesPrefer
	// FileHandlesMandatory is prefer with no fallback: New fails if
	// handles do not work on the shared directory, and a lookup of an
	// inode that has no handle fails (EOPNOTSUPP or the host's errno), so
	// each inode's handle is made at its lookup.
	FileHandlesMandatory
)

// String returns the name ParseFileHandleMode accepts.
func (m FileHandleMode) String() string {
	switch m {
	case FileHandlesNever:
		return "never"
	case FileHandlesPrefer:
		return "prefer"
	case FileHandlesMandatory:
		return "mandatory"
	}
	return fmt.Sprintf("FileHandleMode(%d)", int(m))
}

// ParseFileHandleMode parses "never", "prefer" or "mandatory".
func ParseFileHandleMode(s string) (FileHandleMode, error) {
	switch s {
	case "never":
		return FileHandlesNever, nil
	case "prefer", "":
		return FileHandlesPrefer, nil
	case "mandatory":
		return FileHandlesMandatory, nil
	}
	return 0, fmt.Errorf("passthrough: inode file handles %q: want never, prefer or mandatory", s)
}

// Fd cache sizing (Options.FdCache 0).
const (
	// MaxFdCache caps the automatic size. A LOOKUP needs only its parent
	// directory's fd and a GETATTR only its own inode's, so the cache has
	// to hold the directories being walked and the files being worked on,
	// not the client's whole inode cache; 8192 covers wide and deep walks,
	// and a miss costs one open_by_handle_at (plus, for a directory, the
	// walk up to the root that proves it is still inside the share).
	MaxFdCache = 8192
	// MinFdCache is the smallest cache New accepts.
	MinFdCache = 16
)

// AutoFdCache is the cache size New uses for a process whose RLIMIT_NOFILE
// soft limit is nofile: a quarter of it, so open files, lock fds, pipes and
// sockets keep three quarters, capped at MaxFdCache (4096 → 1024,
// 1048576 → 8192).
func AutoFdCache(nofile uint64) int {
	n := nofile / 4
	if n > MaxFdCache {
		n = MaxFdCache
	}
	if n < MinFdCache {
		n = MinFdCache
	}
	return int(n)
}

// autoFdCache is AutoFdCache for this process.
func autoFdCache() int { return AutoFdCache(nofileLimit()) }

// Inode fds and file handles.
//
// With file handles on, an inode's O_PATH fd is open only while the inode
// is in the fd cache or in use. inode.refs carries, besides the reference
// count, the fdClosed bit: set, in.fd is closed and the first user
// reopens it from in.fh (reopen, under in.fdMu) before touching it. A user
// who takes a reference with the bit clear may use in.fd until it drops
// the reference: the cache closes an fd only by a compare-and-swap of refs
// from exactly 1 (the table's own reference, so no user) to 1|fdClosed, so
// no fd is closed under a user. Lock order: inode.fdMu, then fdCache.mu,
// then the shards' mutexes are never held with either.
const (
	fdClosed = int64(1) << 40
	refMask  = fdClosed - 1
)

// fdCache bounds the O_PATH fds of inodes that have a file handle: at
// most len(slots) of them are open while unused. A new inode takes a free
// slot while there is one; only a full cache replaces, by CLOCK (second
// chance): a slot whose inode was used since the hand last passed is
// spared once. (Running the hand while slots were free evicted live
// inodes from a nearly empty cache: every inode added and forgotten, a
// READDIRPLUS entry that did not fit or a created file, moved the hand
// one slot on, and once round it closed whatever it met.) An inode in use
// when its slot is taken keeps its fd, marked uncached, until its last
// user is done (put closes it then), so open fds ≤ cache size + inodes in
// use by requests or open handles.
type fdCache struct {
	// h makes the handles of inodes whose handle is pending. Immutable.
	h *handles

	mu sync.Mutex
	// slots hold cached inodes; nil is free. +checklocks:mu
	slots []*inode
	// free is the indices of the nil slots, taken from the end.
	// +checklocks:mu
	free []int32
	// hand is the CLOCK hand. +checklocks:mu
	hand int
}

func newFdCache(n int) *fdCache {
	c := &fdCache{slots: make([]*inode, n), free: make([]int32, n)}
	for i := range c.free {
		c.free[i] = int32(n - 1 - i) // slot 0 first
	}
	return c
}

// freeSlot makes slot i nil and free.
//
// Preconditions: c.mu is held; slot i holds an inode whose slot field the
// caller resets.
func (c *fdCache) freeSlot(i int32) {
	c.slots[i] = nil
	c.free = append(c.free, i) // within cap: at most len(slots) are free
}

// add gives in, whose fd was just opened and which the caller holds (or
// the table holds, after insert), a slot, taking one from another inode
// if none is free.
func (c *fdCache) add(in *inode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in.uncached.Store(false)
	if in.slot >= 0 {
		return
	}
	if n := len(c.free); n > 0 {
		i := c.free[n-1]
		c.free = c.free[:n-1]
		c.slots[i], in.slot = in, i
		return
	}
	// Full: two sweeps clear every reference bit; the bound also holds when
	// users keep setting them meanwhile.
	i := -1
	for range 2*len(c.slots) + 1 {
		j := c.hand
		c.hand++
		if c.hand == len(c.slots) {
			c.hand = 0
		}
		v := c.slots[j] // not nil: a nil slot is on the free list
		if !v.used.Load() {
			i = j
			break
		}
		v.used.Store(false)
	}
	if i < 0 {
		// Every slot was used again during two sweeps: take the hand's.
		i = c.hand
	}
	v := c.slots[i]
	c.slots[i], in.slot = in, int32(i)
	v.slot = -1
	c.evict(v)
}

// evict closes the fd of v, which just lost its slot, or marks it
// uncached if it is in use (its last put closes it).
//
// Preconditions: c.mu is held.
func (c *fdCache) evict(v *inode) {
	// Stored before loading refs, as put adds before loading uncached: of
	// an evict and a put racing, at least one sees the other, and the
	// compare-and-swap lets only one close. A swap, not Store: under -race
	// an atomic store has no fence after it (golang/go#58020) and the refs
	// load could pass it, leaving an evicted fd open for good.
	v.uncached.Swap(true)
	c.closeIfIdle(v)
}

// closeIfIdle closes v's fd if v is uncached and unused.
//
// Preconditions: c.mu is held.
func (c *fdCache) closeIfIdle(v *inode) {
	if v.slot >= 0 || !v.uncached.Load() {
		return
	}
	if v.refs.Load() != 1 {
		return // in use (its last put comes back here), released, or closed
	}
	// refs was 1 with fdClosed clear: no reopen can be running (it needs
	// the bit set), so reading fd here races with nothing.
	fd := v.fd
	if v.fhPending {
		// The handle is made now, from the fd about to be closed. Users
		// who take a reference meanwhile only read fd; the CAS below
		// then fails and the handle waits for the next eviction.
		v.fhPending = false
		fh, m, ok, _ := c.h.handleOf(fd, v.typ)
		if !ok {
			// No handle (prefer mode): the fd stays open for the
			// inode's life, without a slot, as FileHandlesPrefer says.
			v.uncached.Store(false)
			return
		}
		v.fh, v.mountFd = fh, int32(m)
	}
	if v.refs.CompareAndSwap(1, 1|fdClosed) {
		v.uncached.Store(false)
		unix.Close(fd)
	}
}

// putIdle is put's slow path: in's last user is done and in has no slot.
func (c *fdCache) putIdle(in *inode) {
	c.mu.Lock()
	c.closeIfIdle(in)
	c.mu.Unlock()
}

// remove frees in's slot (the inode is being released).
func (c *fdCache) remove(in *inode) {
	c.mu.Lock()
	if in.slot >= 0 {
		c.freeSlot(in.slot)
		in.slot = -1
	}
	in.uncached.Store(false)
	c.mu.Unlock()
}

// Deleted files in the cache.
//
// The client kernel sends FORGET for an inode only when it drops the
// inode, and it keeps the dentry (and so the inode) of a file deleted on
// the host behind its back until a lookup finds the name gone or memory
// pressure prunes its dcache. Meanwhile the cached O_PATH fd keeps the
// deleted file's blocks allocated on the host. The sweeper closes such
// fds: every sweepPeriod it fstats the cached fds of unused regular
// files, at most sweepChunk of them per hold of the cache's lock, and
// evicts those with no link left. The inode stays in the table (the client still
// knows its ID); a later use reopens it from its handle, which fails with
// ESTALE, as the file is gone. Directories are left alone: a client
// process may still stand in one (its cwd) and expects its attributes.
const (
	sweepPeriod = 5 * time.Second
	sweepChunk  = 32
)

// sweepDeleted closes the cached fds of unused regular files whose host
// inode has no link left (or, if one is in use after all, leaves it to
// its last user's put) and returns how many it evicted.
func (c *fdCache) sweepDeleted() int {
	n, fstats := 0, 0
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		if fstats == sweepChunk {
			// Let lookups and puts in between. Unlock readies the
			// first waiter to run next on this P, and Gosched lets it
			// run before this goroutine locks again; without it the
			// waiter would find the lock taken again and get it only
			// after waiting 1 ms (sync.Mutex's starvation mode).
			fstats = 0
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		v := c.slots[i]
		if v == nil || v.typ != unix.S_IFREG || v.refs.Load() != 1 {
			continue
		}
		fstats++
		// refs 1 and a slot: the fd is open and only this cache (under
		// c.mu, held) or release (which takes c.mu first) closes it.
		var st unix.Stat_t
		if unix.Fstat(v.fd, &st) != nil || st.Nlink != 0 {
			continue
		}
		c.freeSlot(int32(i))
		v.slot = -1
		c.evict(v)
		n++
	}
	return n
}

// sweep runs sweepDeleted every sweepPeriod until stop is closed.
func (c *fdCache) sweep(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(sweepPeriod)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.sweepDeleted()
		}
	}
}

// open counts the fds the cache holds (tests).
func (c *fdCache) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.slots {
		if v != nil {
			n++
		}
	}
	return n
}

// handles is the file-handle side of the inode table: the mount fds
// open_by_handle_at needs and the fd cache. nil in the table when handles
// are off.
type handles struct {
	mandatory bool
	cache     *fdCache
	// procFd is the FS's /proc/self/fd. Immutable.
	procFd int
	// verifyDir reports OK if the directory fd is the shared directory or
	// beneath it (FS.beneathRoot). Immutable.
	verifyDir func(fd int) fs.Errno

	mountsMu sync.RWMutex
	// mounts maps a mount ID (name_to_handle_at) to an fd of a directory
	// on that mount, opened O_RDONLY (open_by_handle_at refuses O_PATH
	// mount fds: EBADF). Grows with the mounts under the shared directory
	// only. +checklocks:mountsMu
	mounts map[int]int
}

// handleOf makes the file handle of the O_PATH fd of a new inode of type
// typ. ok false: the inode keeps its fd for life (prefer mode, no handle
// possible); an error only in mandatory mode.
func (h *handles) handleOf(fd int, typ uint32) (fh unix.FileHandle, mountFd int, ok bool, e fs.Errno) {
	fh, mid, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		if h.mandatory {
			return fh, -1, false, errno(err)
		}
		return fh, -1, false, fs.OK
	}
	mountFd = h.mountFd(mid, fd, typ)
	if mountFd < 0 {
		if h.mandatory {
			return fh, -1, false, syscall.EOPNOTSUPP
		}
		return fh, -1, false, fs.OK
	}
	return fh, mountFd, true, fs.OK
}

// mountFd returns the mount fd for mount ID mid, opening one from fd if
// fd is the first directory seen on that mount; -1 if there is none (a
// non-directory is the first inode seen on a mount: a file bind mount).
func (h *handles) mountFd(mid, fd int, typ uint32) int {
	h.mountsMu.RLock()
	m, ok := h.mounts[mid]
	h.mountsMu.RUnlock()
	if ok {
		return m
	}
	if typ != unix.S_IFDIR {
		return -1
	}
	h.mountsMu.Lock()
	defer h.mountsMu.Unlock()
	if m, ok := h.mounts[mid]; ok {
		return m
	}
	// A directory: reopening it for reading opens nothing else.
	m, err := unix.Openat(h.procFd, procName(fd), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	h.mounts[mid] = m
	return m
}

// reopen opens in's fd again from its handle, O_PATH|O_NOFOLLOW as a
// lookup opens it. A directory must still be the shared directory or
// beneath it: names are resolved beneath it, so a directory the host moved
// out of the share must not become a way out (EACCES, as ".." does). A
// non-directory is the very inode the client looked up inside the share
// (a handle names an inode, not a path, exactly as the pinned O_PATH fd
// of FileHandlesNever does); a handle whose inode was deleted and reused
// fails with ESTALE (the handle carries the generation).
func (h *handles) reopen(in *inode) (int, fs.Errno) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.OpenByHandleAt(int(in.mountFd), in.fh, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC)
		return err
	})
	if err != nil {
		return -1, errno(err)
	}
	if in.isDir() {
		if e := h.verifyDir(fd); e != 0 {
			unix.Close(fd)
			return -1, e
		}
	}
	return fd, fs.OK
}

// close releases the mount fds.
func (h *handles) close() {
	h.mountsMu.Lock()
	for _, m := range h.mounts {
		unix.Close(m)
	}
	h.mounts = nil
	h.mountsMu.Unlock()
}

// probeHandles checks that file handles work on the shared directory: the
// root has a handle, and it opens again (open_by_handle_at needs
// CAP_DAC_READ_SEARCH). It returns the handles state with the root's mount
// registered.
func probeHandles(rootFd int, root string, mandatory bool, cacheSize, procFd int) (*handles, error) {
	fh, mid, err := unix.NameToHandleAt(rootFd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return nil, fmt.Errorf("name_to_handle_at %q: %w (the filesystem does not export file handles)", root, err)
	}
	m, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %q for open_by_handle_at: %w", root, err)
	}
	fd, err := unix.OpenByHandleAt(m, fh, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		unix.Close(m)
		if err == syscall.EPERM {
			return nil, fmt.Errorf("open_by_handle_at: %w (needs CAP_DAC_READ_SEARCH)", err)
		}
		return nil, fmt.Errorf("open_by_handle_at: %w", err)
	}
	unix.Close(fd)
	h := &handles{mandatory: mandatory, cache: newFdCache(cacheSize), procFd: procFd, mounts: map[int]int{mid: m}}
	h.cache.h = h
	return h, nil
}
