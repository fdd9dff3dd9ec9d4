package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fs"
)

// Inode ID layout (see the package comment).
const (
	slotShift = 56
	genShift  = 40
	genBits   = 16
	genMask   = 1<<genBits - 1
	// MaxBackendIno is the largest backend inode ID the VFS can carry.
	MaxBackendIno = 1<<genShift - 1
	// MaxShares is how many shares may be mounted (and draining) at once.
	MaxShares = 1<<(64-slotShift) - 1
	// MaxNameLen is the longest share name.
	MaxNameLen = 255
	// stInoMask keeps the backend's bits of an attribute inode number.
	stInoMask = 1<<slotShift - 1
)

// Slot state word: bits 0..31 count the requests inside the backend (and
// those about to find out they must not enter), bit 32 says the slot
// serves requests, bits 40..55 hold its generation.
const (
	stateCount = 1<<32 - 1
	stateOpen  = 1 << 32
)

func stateGen(v uint64) uint64 { return v >> genShift & genMask }

// Options configure a VFS. The zero value is ready to use.
type Options struct {
	// EntryTimeout is how long a client may cache a share's name in the
	// pseudo root (default 1 s; a negative value: 0, never). An unmounted
	// share's cached name answers ESTALE until then, and the kernel then
	// looks it up again.
	EntryTimeout time.Duration
	// AttrTimeout is how long a client may cache the pseudo root's
	// attributes (default 1 s; negative: 0).
	AttrTimeout time.Duration
	// Mode is the pseudo root's permission bits (default 0555).
	Mode uint32
	// Uid and Gid own the pseudo root (default 0, root).
	Uid, Gid uint32
}

// ShareInfo describes one mounted share.
type ShareInfo struct {
	Name string
	// Lookups is the lookup count the client holds on the share's inodes
	// (its root included): raised by every entry returned, lowered by
	// FORGET.
	Lookups int64
}

// VFS is an fs.FileSystem made of shares. Its methods are safe for
// concurrent use; the fs.FileSystem methods are called by the transport.
type VFS struct {
	opts  Options
	birth time.Time

	// mu is held for reading by lookups of share names in the pseudo
	// root (every path walk whose cached entry has expired).
	mu sync.RWMutex
	// names maps a mounted share's name to its slot. +checklocks:mu
	names map[string]int
	// started: the session called Init (and not yet Destroy); info is
	// what it agreed on. +checklocks:mu
	started bool
	info    fs.InitInfo // +checklocks:mu
	// busy marks slots mounted or still draining. +checklocks:mu
	busy [MaxShares + 1]bool
	// next is where the search for a free slot starts, so that a freed
	// slot is not taken again at once. +checklocks:mu
	next int

	slots [MaxShares + 1]slot
}

// slot is one share's place in the inode space. slots[0] is unused (the
// pseudo root).
type slot struct {
	// state is the word described above. Requests add and subtract 1;
	// Mount stores generation|stateOpen after writing fsys and name (the
	// store publishes them); Unmount clears stateOpen.
	state atomic.Uint64
	// fsys and name are written by Mount while no request can enter the
	// slot (not open, and every request of the previous share gone), and
	// read by requests that entered with the matching generation.
	fsys fs.FileSystem
	name string
	// lookups is the lookup count the client holds on this share's
	// backend inodes; rootLookups on its root (counted here only).
	lookups     atomic.Int64
	rootLookups atomic.Int64
	// drained is closed by the request that leaves a closed slot empty
	// (set by Unmount before it clears stateOpen).
	drained atomic.Pointer[chan struct{}]
	_       [64]byte
}

// New returns an empty VFS: a pseudo root with no share.
func New(opts Options) *VFS {
	if opts.EntryTimeout == 0 {
		opts.EntryTimeout = time.Second
	} else if opts.EntryTimeout < 0 {
		opts.EntryTimeout = 0
	}
	if opts.AttrTimeout == 0 {
		opts.AttrTimeout = time.Second
	} else if opts.AttrTimeout < 0 {
		opts.AttrTimeout = 0
	}
	if opts.Mode == 0 {
		opts.Mode = 0o555
	}
	opts.Mode &= 0o7777
	return &VFS{opts: opts, birth: time.Now(), names: make(map[string]int), next: 1}
}

// ErrBadName is returned by Mount for a name that cannot be a directory
// entry of the pseudo root.
var ErrBadName = errors.New("vfs: a share name must be 1 to 255 bytes, not \".\" or \"..\", with no '/' or NUL")

// CheckName reports whether name can name a share (ErrBadName if not).
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > MaxNameLen || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// ErrExist is returned by Mount when the name is taken.
var ErrExist = errors.New("vfs: a share of that name is mounted")

// ErrNotMounted is returned by Unmount for an unknown name.
var ErrNotMounted = errors.New("vfs: no share of that name is mounted")

// ErrFull is returned by Mount when every slot is mounted or draining.
var ErrFull = fmt.Errorf("vfs: all %d share slots are in use", MaxShares)

// Mount adds fsys as the share name. If the session has started, fsys's
// Init is called first (with the session's InitInfo) and a failure is
// returned. On success the VFS owns fsys (see Unmount); on error the
// caller still does.
func (v *VFS) Mount(name string, fsys fs.FileSystem) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if fsys == nil {
		return errors.New("vfs: mount: nil filesystem")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.names[name]; ok {
		return fmt.Errorf("%w: %q; unmount it first", ErrExist, name)
	}
	i := v.freeSlot()
	if i == 0 {
		return ErrFull
	}
	if v.started {
		info := v.info
		if e := fsys.Init(&fs.Context{}, &info); e != 0 {
			return fmt.Errorf("vfs: mount %q: init: %w", name, e)
		}
	}
	s := &v.slots[i]
	gen := stateGen(s.state.Load())%genMask + 1 // 1..genMask, never 0
	s.fsys, s.name = fsys, name
	s.lookups.Store(0)
	s.rootLookups.Store(0)
	s.drained.Store(nil)
	// Requests of an earlier share of this slot may still add and
	// subtract 1 (they find the generation wrong and leave): keep their
	// count.
	for {
		old := s.state.Load()
		if s.state.CompareAndSwap(old, gen<<genShift|stateOpen|old&stateCount) {
			break
		}
	}
	v.busy[i] = true
	v.names[name] = i
	v.next = i%MaxShares + 1
	return nil
}

// freeSlot returns a slot that is neither mounted nor draining, 0 if none.
// +checklocks:v.mu
func (v *VFS) freeSlot() int {
	for k := 0; k < MaxShares; k++ {
		i := (v.next-1+k)%MaxShares + 1
		if !v.busy[i] {
			return i
		}
	}
	return 0
}

// Unmount removes the share name: the name is free at once, and every
// later request on its inodes answers ESTALE. It then waits for the
// requests inside the backend to return and destroys the backend (Destroy,
// then Close if it has one). If ctx ends first, Unmount returns ctx's
// error; the share is gone all the same and its backend is destroyed when
// its last request returns.
func (v *VFS) Unmount(ctx context.Context, name string) error {
	v.mu.Lock()
	i, ok := v.names[name]
	if !ok {
		v.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotMounted, name)
	}
	delete(v.names, name)
	started := v.started
	v.mu.Unlock()

	s := &v.slots[i]
	ch := make(chan struct{})
	s.drained.Store(&ch)
	// Close the slot; if nothing is inside, it is drained now.
	for {
		old := s.state.Load()
		if s.state.CompareAndSwap(old, old&^stateOpen) {
			if old&stateCount == 0 {
				v.closeDrained(s)
			}
			break
		}
	}
	done := make(chan struct{})
	go func() {
		<-ch
		if started {
			s.fsys.Destroy()
		}
		if c, ok := s.fsys.(io.Closer); ok {
			c.Close()
		}
		v.mu.Lock()
		s.fsys = nil
		v.busy[i] = false
		v.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vfs: unmount %q: the share is gone, its backend is still serving %d requests and will be closed when they end: %w", name, s.state.Load()&stateCount, ctx.Err())
	}
}

func (v *VFS) closeDrained(s *slot) {
	if p := s.drained.Swap(nil); p != nil {
		close(*p)
	}
}

// Shares lists the mounted shares by name.
func (v *VFS) Shares() []ShareInfo {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]ShareInfo, 0, len(v.names))
	for name, i := range v.names {
		s := &v.slots[i]
		out = append(out, ShareInfo{Name: name, Lookups: s.lookups.Load() + s.rootLookups.Load()})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// ClientIDs returns the function that maps the share name's backend inode
// IDs to the IDs the client knows them by, for notifications the backend
// sends on its own (fastfsd mount --watch). It maps for the share mounted
// now: after an Unmount its IDs name nothing the client can use (a
// request on them answers ESTALE, a notification finds no inode). The
// function's ok is false for an ID the VFS cannot carry (above
// MaxBackendIno, which no client was given).
func (v *VFS) ClientIDs(name string) (func(b fs.Inode) (fs.Inode, bool), error) {
	v.mu.RLock()
	i, ok := v.names[name]
	v.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotMounted, name)
	}
	sh := share{slot: uint64(i), gen: stateGen(v.slots[i].state.Load())}
	return func(b fs.Inode) (fs.Inode, bool) {
		if b == 0 || b > MaxBackendIno {
			return 0, false
		}
		return sh.id(b), true
	}, nil
}

// share is a request's view of the share its inode names, returned by
// enter; leave must be called once the backend's call returns.
type share struct {
	s    *slot
	slot uint64
	gen  uint64
}

// split returns the slot, generation and backend ID of a client ID.
func split(ino fs.Inode) (slotIdx, gen uint64, b fs.Inode) {
	return uint64(ino) >> slotShift, uint64(ino) >> genShift & genMask, fs.Inode(uint64(ino) & MaxBackendIno)
}

// enter admits a request to the share ino names: ESTALE if that share is
// gone (or never was). On success the caller must call v.leave(sh).
func (v *VFS) enter(ino fs.Inode) (share, fs.Inode, fs.Errno) {
	i, gen, b := split(ino)
	if i == 0 || gen == 0 || b == 0 {
		return share{}, 0, syscall.ESTALE
	}
	s := &v.slots[i]
	st := s.state.Add(1)
	if st&stateOpen == 0 || stateGen(st) != gen {
		v.leaveSlot(s)
		return share{}, 0, syscall.ESTALE
	}
	return share{s: s, slot: i, gen: gen}, b, 0
}

func (v *VFS) leave(sh share) { v.leaveSlot(sh.s) }

func (v *VFS) leaveSlot(s *slot) {
	st := s.state.Add(^uint64(0))
	if st&stateCount == 0 && st&stateOpen == 0 {
		v.closeDrained(s)
	}
}

// id is the client ID of backend inode b of sh.
func (sh share) id(b fs.Inode) fs.Inode {
	return fs.Inode(sh.slot<<slotShift | sh.gen<<genShift | uint64(b))
}

// stIno is the attribute inode number of a backend's st_ino.
func (sh share) stIno(ino uint64) uint64 { return sh.slot<<slotShift | ino&stInoMask }

// entry translates an Entry the backend filled (e is its answer): IDs
// and st_ino, and the lookup count. A backend ID that does not fit is
// forgotten at once (EOVERFLOW).
func (sh share) entry(e fs.Errno, out *fs.Entry) fs.Errno {
	if e != 0 || out.Ino == 0 {
		return e
	}
	if out.Ino > MaxBackendIno {
		sh.s.fsys.Forget(out.Ino, 1)
		out.Ino = 0
		return syscall.EOVERFLOW
	}
	if out.Ino == fs.RootInode {
		// The backend's root reached by a name inside the share (a
		// synthetic backend could do it): a backend never counts its
		// root, so the VFS does.
		sh.s.rootLookups.Add(1)
	} else {
		sh.s.lookups.Add(1)
	}
	out.Ino = sh.id(out.Ino)
	out.Attr.Ino = sh.stIno(out.Attr.Ino)
	return 0
}
