package passthrough

import (
	"bytes"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/sys"
)

// nShards is the number of shards of the inode and handle tables: enough
// that workers on different CPUs rarely meet on one lock.
const nShards = 64

// cacheLinePad keeps shards on separate cache lines (the architecture's
// line, checked against cpuid by dataplane's TestCacheLinePad).
type cacheLinePad = cpu.CacheLinePad

// inodeKey is a host inode's identity.
type inodeKey struct {
	dev, ino uint64
}

func keyOf(st *unix.Stat_t) inodeKey { return inodeKey{dev: st.Dev, ino: st.Ino} }

// inode is one host inode the client may name.
//
// Lifetime: refs counts one reference for the table (held while the inode
// is in the table, i.e. while nlookup > 0 or it is the root) plus one per
// request or handle using it. The fd is closed when refs reaches 0, which
// can happen only after the inode left the table, so no new reference can
// be taken then. With file handles the fd cache may close the fd of an
// inode nobody uses earlier (fdcache.go: refs then carries fdClosed, and
// get reopens it from fh).
type inode struct {
	id  fs.Inode
	key inodeKey
	// fd is an O_PATH|O_NOFOLLOW fd, valid for whoever holds a reference
	// taken by get (not ref). Written only by reopen, under fdMu, while
	// refs carries fdClosed (no user then).
	fd int
	// typ is the S_IFMT bits; a host inode never changes type. Immutable.
	typ uint32
	// slot is the inode's fd cache slot, -1 if none. +checklocks:fdCache.mu
	slot int32
	// mountFd is the fd open_by_handle_at needs for fh; -1 without a
	// handle. Set with fh.
	mountFd int32
	// fh is the file handle the fd is reopened from; the zero value (no
	// handle: the fd stays open for the inode's life). With
	// FileHandlesMandatory it is made by insert, before the inode is
	// visible; with FileHandlesPrefer it is made only when the fd cache
	// first closes the fd (fhPending until then), since most inodes are
	// forgotten while their fd is still cached and never need one. Either
	// way it is written before fdClosed is first set and never again, and
	// read only while fdClosed is set (reopen) or by whoever wrote it.
	fh unix.FileHandle
	// fhPending: fh has not been tried yet (FileHandlesPrefer).
	// +checklocks:fdCache.mu after insert.
	fhPending bool

	// refs is the reference count (refMask bits) and fdClosed.
	refs atomic.Int64
	// fdMu serialises reopening the fd.
	fdMu sync.Mutex
	// used is the fd cache's CLOCK reference bit; set by get.
	used atomic.Bool
	// uncached: the fd is open without a cache slot (the inode was in
	// use when its slot was taken); put closes it when the last user is
	// done. Written under fdCache.mu.
	uncached atomic.Bool

	// nlookup is the client's lookup count. +checklocks:keyShard.mu of
	// this inode's key shard.
	nlookup uint64

	lockMu sync.Mutex
	// lockOwners holds, per lock owner, the fd that carries its OFD locks
	// and the pid it last locked with. +checklocks:lockMu
	lockOwners map[uint64]lockOwner

	ptMu sync.Mutex
	// ptFd is the file every passthrough open of this inode shares (the
	// kernel refuses a second, different backing file for an inode that
	// is open in passthrough mode), read-only (getPassthroughFd), -1 if
	// none; ptRefs counts the handles using it. +checklocks:ptMu
	ptFd   int
	ptRefs int // +checklocks:ptMu
}

// lockOwner is one lock owner's state on an inode (see ops_lock.go).
type lockOwner struct {
	fd      int
	acc     int    // fd's access mode (O_ACCMODE bits): which lock types it may hold
	uid     uint32 // the caller fd is counted for in the budget
	pid     uint32
	gen     uint64 // tells this owner's fd from a later one's
	waiting int    // blocking calls in progress on a dup of fd
	held    []span // ranges the owner holds locked; empty: fd is closed
}

func (in *inode) isDir() bool     { return in.typ == unix.S_IFDIR }
func (in *inode) isSymlink() bool { return in.typ == unix.S_IFLNK }

// hasHandle reports whether the inode can be reopened from a file handle.
func (in *inode) hasHandle() bool { return in.fh != unix.FileHandle{} }

// release closes the inode's fds. Called once, when refs reaches 0; v is
// refs then (fdClosed: the fd is closed already).
func (in *inode) release(t *inodeTable, v int64) {
	if t.fh != nil {
		// Not only inodes with a handle: one whose handle is pending
		// has a slot too, and the cache may be making its handle now
		// (it holds the cache's lock then, and finds refs 0).
		t.fh.cache.remove(in)
	}
	in.lockMu.Lock()
	for _, o := range in.lockOwners {
		unix.Close(o.fd)
		t.budget.give(o.uid)
	}
	in.lockOwners = nil
	in.lockMu.Unlock()
	in.ptMu.Lock()
	if in.ptFd >= 0 {
		unix.Close(in.ptFd)
		in.ptFd = -1
	}
	in.ptMu.Unlock()
	if v&fdClosed == 0 {
		unix.Close(in.fd)
	}
}

type idShard struct {
	mu sync.RWMutex
	// +checklocks:mu
	m map[fs.Inode]*inode
	_ cacheLinePad
}

type keyShard struct {
	mu sync.Mutex
	// +checklocks:mu
	m map[inodeKey]*inode
	_ cacheLinePad
}

// inodeTable maps IDs and host keys to inodes. Lock order: a keyShard's mu
// before an idShard's mu.
type inodeTable struct {
	ids  [nShards]idShard
	keys [nShards]keyShard
	// next is the last ID handed out; IDs are never reused. insert bumps
	// it under the key shard's lock, together with adding the inode, so
	// that a reader who loaded it before a lookup that missed knows the
	// miss is stale once it changes (the watcher's negative cache).
	next atomic.Uint64
	// fh keeps inodes as file handles with a bounded fd cache; nil: every
	// inode keeps its fd (FileHandlesNever). Set before first use.
	fh *handles
	// budget is FS.budget, which release gives lock-owner fds back to.
	// Set before first use.
	budget *OpenBudget
}

func (t *inodeTable) init() {
	for i := range t.ids {
		t.ids[i].m = make(map[fs.Inode]*inode)
		t.keys[i].m = make(map[inodeKey]*inode)
	}
	t.next.Store(uint64(fs.RootInode))
}

func (t *inodeTable) idShard(id fs.Inode) *idShard { return &t.ids[uint64(id)%nShards] }

func (t *inodeTable) keyShard(k inodeKey) *keyShard {
	h := k.ino*0x9e3779b97f4a7c15 ^ k.dev
	return &t.keys[(h>>32)%nShards]
}

// get returns the inode with the given ID with a reference the caller
// must drop with put, or nil if the ID is unknown or its fd cannot be
// reopened (acquire says why).
func (t *inodeTable) get(id fs.Inode) *inode {
	in, _ := t.acquire(id)
	return in
}

// acquire returns the inode with the given ID and its fd open, with a
// reference the caller must drop with put: ESTALE if the ID is unknown,
// or the error of reopening the fd from its file handle (ESTALE: the
// host deleted the inode; EACCES: a directory the host moved out of the
// share). Known inode with its fd cached: two atomic operations under a
// shard's read lock, no allocation.
func (t *inodeTable) acquire(id fs.Inode) (*inode, fs.Errno) {
	s := t.idShard(id)
	s.mu.RLock()
	in := s.m[id]
	var v int64
	if in != nil {
		// The table's own reference is held while in is in s.m, so
		// refs > 0 here and in cannot be released under us.
		v = in.refs.Add(1)
	}
	s.mu.RUnlock()
	if in == nil {
		return nil, syscall.ESTALE
	}
	if v&fdClosed != 0 {
		if e := t.reopen(in); e != 0 {
			t.put(in)
			return nil, e
		}
	} else if t.fh != nil && !in.used.Load() {
		in.used.Store(true)
	}
	return in, fs.OK
}

// reopen opens in's fd again (fdcache.go) unless another user did first.
//
// Preconditions: the caller holds a reference on in.
func (t *inodeTable) reopen(in *inode) fs.Errno {
	in.fdMu.Lock()
	defer in.fdMu.Unlock()
	if in.refs.Load()&fdClosed == 0 {
		return fs.OK // reopened by another user meanwhile
	}
	fd, e := t.fh.reopen(in)
	if e != 0 {
		return e
	}
	in.fd = fd
	in.refs.Add(-fdClosed) // publishes fd to users who add after this
	t.fh.cache.add(in)
	return fs.OK
}

// ref takes a reference on id without needing its fd (forget, tests).
func (t *inodeTable) ref(id fs.Inode) *inode {
	s := t.idShard(id)
	s.mu.RLock()
	in := s.m[id]
	if in != nil {
		in.refs.Add(1)
	}
	s.mu.RUnlock()
	return in
}

// put drops a reference taken by get, ref or insert.
func (t *inodeTable) put(in *inode) {
	v := in.refs.Add(-1)
	if v&refMask == 0 {
		in.release(t, v)
	} else if v == 1 && in.uncached.Load() {
		// The last user of an inode whose cache slot was taken while
		// it was in use: close its fd now (fdcache.go).
		t.fh.cache.putIdle(in)
	}
}

// lookupKey raises the lookup count of the inode with key k, if the table
// has it and it is certainly the host inode k names now, and returns its
// ID. The caller found k by a stat of name (NUL-terminated) in the
// directory dirFd made before the call (dirFd -1: of an inode the caller
// holds; name nil).
//
// A host inode number is reused once its inode is freed, and the table's
// entry pins its host inode only while its fd is open: one whose fd the
// cache closed (fdClosed; the sweeper closes those of deleted files) may
// name a deleted inode whose (dev, ino) now belongs to another file. Such
// an entry is matched only if name's file handle, which carries the
// inode's generation, is its handle (sameName); otherwise false, and the
// caller opens the name and insert tells the two apart. An entry whose fd
// is open, or whose handle name has, names an inode alive now and so
// alive since the entry was made (an fd pins it; a handle stops opening
// once its inode is gone): the only inode that had k meanwhile, which
// includes the caller's stat.
func (t *inodeTable) lookupKey(k inodeKey, dirFd int, name *byte) (fs.Inode, bool) {
	s := t.keyShard(k)
	s.mu.Lock()
	in := s.m[k]
	if in == nil {
		s.mu.Unlock()
		return 0, false
	}
	if in.refs.Load()&fdClosed == 0 {
		in.nlookup++
		s.mu.Unlock()
		return in.id, true
	}
	if dirFd < 0 {
		s.mu.Unlock()
		return 0, false
	}
	in.refs.Add(1) // held in s.m: not released yet
	s.mu.Unlock()
	defer t.put(in)
	if !sameName(in, dirFd, name) {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k] != in { // forgotten or unhashed meanwhile
		return 0, false
	}
	in.nlookup++
	return in.id, true
}

// sameName reports whether in, whose fd the cache closed, is the inode
// name (NUL-terminated) in the directory dirFd names: their file handles
// are equal. It follows no symlink.
//
// Preconditions: in.refs carries fdClosed (observed by the caller), so
// in.fh is written and immutable.
func sameName(in *inode, dirFd int, name *byte) bool {
	return handleIs(in, dirFd, name, 0)
}

// emptyPath is "" for *at calls with AT_EMPTY_PATH.
var emptyPath = [1]byte{}

// sameInode reports whether in, whose fd the cache closed, is the host
// inode the O_PATH fd is open on, whose key is in's: their file handles
// are equal. false if fd has no handle: an entry that cannot be told from
// a new inode is not reused.
//
// Preconditions: as sameName's.
func sameInode(in *inode, fd int) bool {
	return handleIs(in, fd, &emptyPath[0], unix.AT_EMPTY_PATH)
}

// handleIs reports whether name_to_handle_at(dirFd, name, flags) names
// in's handle. The handle is made on the stack: nothing is allocated.
func handleIs(in *inode, dirFd int, name *byte, flags int) bool {
	var fh sys.FileHandle
	if sys.NameToHandleAt(dirFd, name, &fh, flags) != 0 {
		return false
	}
	return uint32(fh.Type) == uint32(in.fh.Type()) && bytes.Equal(fh.F[:fh.Bytes], in.fh.Bytes())
}

// adopt gives in, whose fd the cache closed, the O_PATH fd just opened on
// its host inode (sameInode), as reopen would give it one from its handle;
// if in's fd is open again meanwhile, fd is closed. It takes ownership of
// fd.
//
// Preconditions: the caller holds a reference on in.
func (t *inodeTable) adopt(in *inode, fd int) {
	in.fdMu.Lock()
	defer in.fdMu.Unlock()
	if in.refs.Load()&fdClosed == 0 {
		unix.Close(fd)
		return
	}
	in.fd = fd
	in.refs.Add(-fdClosed) // publishes fd to users who add after this
	t.fh.cache.add(in)
}

// insert adds the inode (fd, st) with lookup count 1, or raises the count
// of the inode the table already has for st's key and closes fd. It takes
// ownership of fd either way. With file handles it makes the new inode's
// handle first; only FileHandlesMandatory makes that an error.
//
// The table's inode for st's key is fd's inode if its fd is open (both
// pinned alive, they cannot share a key otherwise) or, if the cache closed
// it, if their handles are equal (sameInode); then fd becomes its fd
// (adopt). If not, that inode is gone on the host and its number was
// reused: it leaves the key map (unhash) and a new inode is added for fd.
// The client may still name the old one by its ID, which answers ESTALE
// until the client forgets it.
func (t *inodeTable) insert(fd int, st *unix.Stat_t) (fs.Inode, fs.Errno) {
	k := keyOf(st)
	s := t.keyShard(k)
	for {
		s.mu.Lock()
		in := s.m[k]
		if in == nil {
			s.mu.Unlock()
			break
		}
		if in.refs.Load()&fdClosed == 0 {
			in.nlookup++
			s.mu.Unlock()
			unix.Close(fd)
			return in.id, fs.OK
		}
		in.refs.Add(1) // held in s.m: not released yet
		s.mu.Unlock()
		same := sameInode(in, fd)
		s.mu.Lock()
		if s.m[k] != in { // forgotten or unhashed meanwhile: look again
			s.mu.Unlock()
			t.put(in)
			continue
		}
		if same {
			in.nlookup++
			s.mu.Unlock()
			t.adopt(in, fd)
			t.put(in)
			return in.id, fs.OK
		}
		delete(s.m, k) // unhashed: stays in the ID map until forgotten
		s.mu.Unlock()
		t.put(in)
		break
	}
	in := &inode{
		key:     k,
		fd:      fd,
		typ:     st.Mode & unix.S_IFMT,
		slot:    -1,
		mountFd: -1,
		nlookup: 1,
		ptFd:    -1,
	}
	if t.fh != nil && t.fh.mandatory {
		fh, m, ok, e := t.fh.handleOf(fd, in.typ)
		if e != 0 {
			unix.Close(fd)
			return 0, e
		}
		if ok {
			in.fh, in.mountFd = fh, int32(m)
		}
	} else if t.fh != nil {
		in.fhPending = true // made when the fd cache first closes fd
	}
	in.refs.Store(1) // the table's
	s.mu.Lock()
	if old := s.m[k]; old != nil { // a racing lookup of the same inode won
		old.nlookup++
		s.mu.Unlock()
		unix.Close(fd)
		return old.id, fs.OK
	}
	in.id = fs.Inode(t.next.Add(1))
	s.m[k] = in
	is := t.idShard(in.id)
	is.mu.Lock()
	is.m[in.id] = in
	is.mu.Unlock()
	s.mu.Unlock()
	if in.hasHandle() || in.fhPending {
		// After the inode is visible: the cache may close the fd at once
		// (under pressure); get reopens it.
		t.fh.cache.add(in)
	}
	return in.id, fs.OK
}

// insertRoot adds the root with ID fs.RootInode.
func (t *inodeTable) insertRoot(fd int, st *unix.Stat_t) *inode {
	in := &inode{id: fs.RootInode, key: keyOf(st), fd: fd, typ: st.Mode & unix.S_IFMT, slot: -1, mountFd: -1, nlookup: 1, ptFd: -1}
	in.refs.Store(1)
	t.keyShard(in.key).m[in.key] = in
	t.idShard(in.id).m[in.id] = in
	return in
}

// forget lowers id's lookup count by n and removes the inode at zero. The
// root is never removed. Unknown IDs are ignored: a client may forget an
// ID twice, and must not be able to hurt the daemon by doing so.
func (t *inodeTable) forget(id fs.Inode, n uint64) {
	if id == fs.RootInode {
		return
	}
	in := t.ref(id)
	if in == nil {
		return
	}
	s := t.keyShard(in.key)
	s.mu.Lock()
	// The ID map says whether in is in the table: an inode insert found
	// stale is in it but no longer in the key map (unhashed). Only forget
	// and drop remove from it, both holding in's key shard lock.
	is := t.idShard(id)
	is.mu.RLock()
	inTable := is.m[id] == in
	is.mu.RUnlock()
	removed := false
	if inTable { // not removed by a racing forget or drop
		if n >= in.nlookup {
			in.nlookup = 0
			if s.m[in.key] == in { // not unhashed
				delete(s.m, in.key)
			}
			is.mu.Lock()
			delete(is.m, id)
			is.mu.Unlock()
			removed = true
		} else {
			in.nlookup -= n
		}
	}
	s.mu.Unlock()
	if removed {
		t.put(in) // the table's reference
	}
	t.put(in)
}

// drop forgets every inode but the root (Destroy, Close). It swaps every
// shard's map for an empty one with all shard locks held (key shards
// before ID shards, the table's lock order), so an insert racing it lands
// wholly in the old table or wholly in the new one, and it costs one
// release per inode rather than two map deletions and their locks: a
// client may have looked up millions.
func (t *inodeTable) drop(keepRoot bool) {
	for i := range t.keys {
		t.keys[i].mu.Lock()
	}
	for i := range t.ids {
		t.ids[i].mu.Lock()
	}
	var root *inode
	if keepRoot {
		root = t.idShard(fs.RootInode).m[fs.RootInode]
	}
	// The ID maps hold every inode in the table, unhashed ones too.
	old := make([]map[fs.Inode]*inode, len(t.ids))
	for i := range t.ids {
		old[i] = t.ids[i].m
		t.ids[i].m = make(map[fs.Inode]*inode)
	}
	for i := range t.keys {
		t.keys[i].m = make(map[inodeKey]*inode)
	}
	if root != nil {
		delete(old[uint64(fs.RootInode)%nShards], fs.RootInode) // kept, not released
		t.keyShard(root.key).m[root.key] = root
		t.idShard(root.id).m[root.id] = root
	}
	for i := range t.ids {
		t.ids[i].mu.Unlock()
	}
	for i := range t.keys {
		t.keys[i].mu.Unlock()
	}
	for _, m := range old {
		for _, in := range m {
			t.put(in) // the table's reference
		}
	}
}

// count reports the number of inodes in the table (tests).
func (t *inodeTable) count() int {
	n := 0
	for i := range t.ids {
		s := &t.ids[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// nlookupOf reports id's lookup count, or 0 if unknown (tests).
func (t *inodeTable) nlookupOf(id fs.Inode) uint64 {
	in := t.ref(id)
	if in == nil {
		return 0
	}
	defer t.put(in)
	s := t.keyShard(in.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return in.nlookup
}

// handle is an open file or directory.
type handle struct {
	// fd is opened for I/O; valid while refs > 0. Immutable.
	fd int
	// in is the inode opened, with a reference held until release.
	in *inode
	// flags are the open(2) flags fd was opened with.
	flags int
	refs  atomic.Int64
	// dir is the directory stream of an OpenDir handle, nil for files.
	dir *dirStream
	// passthrough: the handle holds a reference on in.ptFd. Immutable.
	passthrough bool
	// uid is the caller the handle is counted for in FS.budget (given
	// back when fd is closed). Immutable.
	uid uint32

	lockMu sync.Mutex
	// lockOwners are the owners that took POSIX locks through this
	// handle; Release drops them (see ops_lock.go). +checklocks:lockMu
	lockOwners []uint64
}

type handleShard struct {
	mu sync.RWMutex
	// +checklocks:mu
	m map[fs.Handle]*handle
	_ cacheLinePad
}

// handleTable maps handle IDs to handles; IDs are never reused.
type handleTable struct {
	shards [nShards]handleShard
	next   atomic.Uint64
}

func (t *handleTable) init() {
	for i := range t.shards {
		t.shards[i].m = make(map[fs.Handle]*handle)
	}
}

func (t *handleTable) shard(id fs.Handle) *handleShard { return &t.shards[uint64(id)%nShards] }

// add registers h (refs 1, the table's) and returns its ID.
func (t *handleTable) add(h *handle) fs.Handle {
	h.refs.Store(1)
	id := fs.Handle(t.next.Add(1))
	s := t.shard(id)
	s.mu.Lock()
	s.m[id] = h
	s.mu.Unlock()
	return id
}

// get returns the handle with a reference, or nil.
func (t *handleTable) get(id fs.Handle) *handle {
	s := t.shard(id)
	s.mu.RLock()
	h := s.m[id]
	if h != nil {
		h.refs.Add(1)
	}
	s.mu.RUnlock()
	return h
}

// remove takes id out of the table and returns it with the table's
// reference, which the caller drops with put; nil if unknown.
func (t *handleTable) remove(id fs.Handle) *handle {
	s := t.shard(id)
	s.mu.Lock()
	h := s.m[id]
	delete(s.m, id)
	s.mu.Unlock()
	return h
}

func (t *handleTable) count() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

func (t *handleTable) removeAll() []*handle {
	var hs []*handle
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for id, h := range s.m {
			hs = append(hs, h)
			delete(s.m, id)
		}
		s.mu.Unlock()
	}
	return hs
}

// idOf returns the ID of the inode with key k, if the table has it,
// without raising its lookup count (the watcher's mapping).
func (t *inodeTable) idOf(k inodeKey) (fs.Inode, bool) {
	s := t.keyShard(k)
	s.mu.Lock()
	in := s.m[k]
	var id fs.Inode
	if in != nil {
		id = in.id
	}
	s.mu.Unlock()
	return id, in != nil
}

// allIDs returns the IDs of every inode in the table.
func (t *inodeTable) allIDs() []fs.Inode {
	var out []fs.Inode
	for i := range t.ids {
		s := &t.ids[i]
		s.mu.RLock()
		for id := range s.m {
			out = append(out, id)
		}
		s.mu.RUnlock()
	}
	return out
}
