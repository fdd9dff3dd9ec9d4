package dax

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// Mapper is what a Window needs from the front-end (the VMM): map a file
// range into the window and unmap a range again. Offsets are relative to
// the window's start. Both must return in bounded time.
//
// Unmap is only ever called with exactly the range of one earlier
// successful Map, and Map never over a range that is still mapped.
type Mapper interface {
	// Map maps [fdOffset, fdOffset+length) of fd at shmOffset, read-only
	// or read-write. fd stays the caller's: the Mapper copies it (passes it
	// on) before returning.
	Map(shmOffset, length uint64, fd int, fdOffset uint64, writable bool) error
	// Unmap makes [shmOffset, shmOffset+length) unmapped again.
	Unmap(shmOffset, length uint64) error
}

// SETUPMAPPING flag bits (fuse_setupmapping_in.flags, abi.SetupmappingWrite
// and abi.SetupmappingRead).
const (
	FlagWrite = 1 << 0
	FlagRead  = 1 << 1
)

// NoHandle is the fh Linux puts in every SETUPMAPPING (fs/fuse/dax.c,
// fuse_setup_one_mapping: inarg.fh = -1): no open handle, the inode is the
// request header's node id.
const NoHandle fs.Handle = ^fs.Handle(0)

// FS is what a Window needs from the filesystem: the fd behind an open
// handle (fs.Mapper), and Open and Release (as in fs.FileSystem) to get a
// handle of its own when the request names none (NoHandle, which is what
// Linux sends).
type FS interface {
	fs.Mapper
	Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno
	Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno
}

// MaxAlignShift is the largest map_alignment Linux accepts (FUSE_DAX_SHIFT:
// it maps in 2 MiB chunks and fails INIT beyond).
const MaxAlignShift = 21

// ErrNoMapper is returned (as EOPNOTSUPP to the guest) when no front-end
// able to map is attached.
var ErrNoMapper = errors.New("dax: no front-end that can map into the window")

// Mapping is one entry of the table.
type Mapping struct {
	Offset, Length uint64 // in the window
	FdOffset       uint64 // in the file
	Writable       bool
	// File identifies the SETUPMAPPING the entry came from: the pieces of
	// one split mapping share it.
	File int
}

// file is one duplicated fd, shared by every entry split from the same
// SETUPMAPPING.
type file struct {
	fd   int
	id   int
	refs int // entries using it; the fd is closed when it drops to 0
}

type entry struct {
	off, len uint64
	fdOff    uint64
	writable bool
	f        *file
}

func (e *entry) end() uint64 { return e.off + e.len }

// Window is the mapping table of one DAX window.
type Window struct {
	size  uint64
	align uint64
	shift uint16
	fsys  FS

	// dup duplicates an fd for the table to keep; close closes one. Tests
	// replace them to count fds.
	dup   func(fd int) (int, error)
	close func(fd int) error

	mu sync.Mutex
	// m is the front-end; nil: none attached (EOPNOTSUPP). +checklocks:mu
	m Mapper
	// entries are sorted by off and never overlap; each one is mapped at
	// the front-end exactly as recorded. +checklocks:mu
	entries []entry
	// nextID numbers files. +checklocks:mu
	nextID int
}

// New returns an empty window of size bytes whose mappings must be aligned
// to 1<<alignShift bytes, taking fds from fsys. size must be a non-zero
// multiple of the alignment; alignShift at least 12 (a page) and at most
// MaxAlignShift.
func New(size uint64, alignShift uint16, fsys FS) (*Window, error) {
	if alignShift < 12 || alignShift > MaxAlignShift {
		return nil, fmt.Errorf("dax: alignment 2^%d: must be 2^12 to 2^%d", alignShift, MaxAlignShift)
	}
	align := uint64(1) << alignShift
	if size == 0 || size%align != 0 {
		return nil, fmt.Errorf("dax: window size %d: must be a non-zero multiple of %d", size, align)
	}
	if fsys == nil {
		return nil, errors.New("dax: no filesystem to take fds from")
	}
	return &Window{size: size, align: align, shift: alignShift, fsys: fsys, dup: dupCloexec, close: syscall.Close}, nil
}

// Size is the window's size in bytes.
func (w *Window) Size() uint64 { return w.size }

// AlignShift is log2 of the required alignment: the map_alignment to offer.
func (w *Window) AlignShift() uint16 { return w.shift }

// SetMapper attaches the front-end's mapper, or detaches it with nil. Any
// change drops the whole table without unmapping: a new or vanished
// front-end holds none of the old mappings.
func (w *Window) SetMapper(m Mapper) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m = m
	w.dropLocked()
}

// Reset unmaps every mapping through the attached front-end (best effort:
// errors are ignored) and empties the table. It returns the number of
// unmaps the front-end refused.
func (w *Window) Reset() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	failed := 0
	if w.m != nil {
		for i := range w.entries {
			if w.m.Unmap(w.entries[i].off, w.entries[i].len) != nil {
				failed++
			}
		}
	}
	w.dropLocked()
	return failed
}

// dropLocked empties the table and closes its fds.
//
// Preconditions: w.mu is held.
func (w *Window) dropLocked() {
	for i := range w.entries {
		w.release(w.entries[i].f)
	}
	w.entries = w.entries[:0]
}

func (w *Window) release(f *file) {
	f.refs--
	if f.refs == 0 {
		w.close(f.fd)
		f.fd = -1
	}
}

// Mappings returns a copy of the table, sorted by offset.
func (w *Window) Mappings() []Mapping {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Mapping, len(w.entries))
	for i, e := range w.entries {
		out[i] = Mapping{Offset: e.off, Length: e.len, FdOffset: e.fdOff, Writable: e.writable, File: e.f.id}
	}
	return out
}

// check validates a window range and a file offset against the window and
// the alignment.
func (w *Window) check(off, length, foff uint64) bool {
	return length != 0 && (off|length|foff)&(w.align-1) == 0 && off+length > off &&
		off+length <= w.size && foff+length > foff
}

// SetupMapping implements fuse.DAX: it maps [foffset, foffset+length) of
// the file open as fh (or of ino, for NoHandle) at moffset, replacing what
// was mapped there.
func (w *Window) SetupMapping(ctx *fs.Context, ino fs.Inode, fh fs.Handle, foffset, length, moffset, flags uint64) fs.Errno {
	if flags&^uint64(FlagRead|FlagWrite) != 0 || !w.check(moffset, length, foffset) {
		return syscall.EINVAL
	}
	writable := flags&FlagWrite != 0
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		return syscall.EOPNOTSUPP
	}
	nfd, e := w.fileFd(ctx, ino, fh, writable)
	if e != 0 {
		return e
	}
	w.nextID++
	f := &file{fd: nfd, id: w.nextID, refs: 1} // the ref is ours until the new entry takes it
	defer w.release(f)
	if err := w.punchLocked(moffset, length); err != nil {
		return Errno(err)
	}
	if err := w.m.Map(moffset, length, f.fd, foffset, writable); err != nil {
		return Errno(err)
	}
	f.refs++
	w.insertLocked(entry{off: moffset, len: length, fdOff: foffset, writable: writable, f: f})
	return 0
}

// fileFd returns a duplicate of the fd to map, which the caller owns: the
// handle's (fs.Mapper.MapFd), or, for NoHandle, that of a handle the window
// opens (read-write for a writable mapping, read-only otherwise) as the
// requesting process and releases again before returning. The duplicate
// keeps the file open for as long as it is mapped.
//
// Preconditions: w.mu is held.
func (w *Window) fileFd(ctx *fs.Context, ino fs.Inode, fh fs.Handle, writable bool) (int, fs.Errno) {
	if fh == NoHandle {
		flags := uint32(syscall.O_RDONLY)
		if writable {
			flags = syscall.O_RDWR
		}
		var out fs.OpenOut
		if e := w.fsys.Open(ctx, ino, flags, 0, &out); e != 0 {
			return -1, e
		}
		defer w.fsys.Release(ctx, ino, out.Handle, flags)
		fh = out.Handle
	}
	fd, e := w.fsys.MapFd(ctx, ino, fh, writable)
	if e != 0 {
		return -1, e
	}
	nfd, err := w.dup(fd)
	if err != nil {
		return -1, Errno(err)
	}
	return nfd, 0
}

// RemoveMapping implements fuse.DAX: it unmaps [moffset, moffset+length),
// splitting mappings that straddle its edges. A range with nothing mapped
// is not an error.
func (w *Window) RemoveMapping(ctx *fs.Context, moffset, length uint64) fs.Errno {
	if !w.check(moffset, length, 0) {
		return syscall.EINVAL
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		return syscall.EOPNOTSUPP
	}
	return Errno(w.punchLocked(moffset, length))
}

// punchLocked makes [off, off+length) unmapped: every entry overlapping it
// is unmapped whole at the front-end, and its parts outside the range are
// mapped back. It stops at the first refusal; the table then still equals
// the front-end's state.
//
// Preconditions: w.mu is held; the range is valid.
func (w *Window) punchLocked(off, length uint64) error {
	end := off + length
	for {
		// The first entry that ends after off; it overlaps the range if
		// it starts before end. Pieces mapped back below end at off or
		// above start at end, so each pass makes progress.
		i, _ := slices.BinarySearchFunc(w.entries, off, func(e entry, off uint64) int {
			if e.end() <= off {
				return -1
			}
			return 1
		})
		if i == len(w.entries) || w.entries[i].off >= end {
			return nil
		}
		old := w.entries[i]
		if err := w.m.Unmap(old.off, old.len); err != nil {
			return err
		}
		w.entries = slices.Delete(w.entries, i, i+1)
		var err error
		if old.off < off {
			err = w.remapLocked(old, old.off, off-old.off)
		}
		if old.end() > end && err == nil {
			err = w.remapLocked(old, end, old.end()-end)
		}
		w.release(old.f)
		if err != nil {
			return err
		}
	}
}

// remapLocked maps the piece [at, at+n) of old back and records it.
//
// Preconditions: w.mu is held; [at, at+n) lies inside old and is unmapped.
func (w *Window) remapLocked(old entry, at, n uint64) error {
	fdOff := old.fdOff + (at - old.off)
	if err := w.m.Map(at, n, old.f.fd, fdOff, old.writable); err != nil {
		return err
	}
	old.f.refs++
	w.insertLocked(entry{off: at, len: n, fdOff: fdOff, writable: old.writable, f: old.f})
	return nil
}

// insertLocked inserts e, which overlaps no entry, keeping the order.
//
// Preconditions: w.mu is held.
func (w *Window) insertLocked(e entry) {
	i, _ := slices.BinarySearchFunc(w.entries, e.off, func(x entry, off uint64) int {
		if x.off < off {
			return -1
		}
		return 1
	})
	w.entries = slices.Insert(w.entries, i, e)
}

// Errno maps an error from a Mapper or the fd duplication to the errno the
// guest gets: a syscall.Errno found in the chain, EOPNOTSUPP for
// ErrNoMapper, EIO otherwise. nil is 0.
func Errno(err error) fs.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	if errors.Is(err, ErrNoMapper) {
		return syscall.EOPNOTSUPP
	}
	return syscall.EIO
}
