package passthrough

import (
	"encoding/binary"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// dirBufSize is the getdents64 buffer of one READDIR call.
const dirBufSize = 8192

// dirBufs holds the getdents64 buffers between READDIR calls: a handle
// holds one only while a call runs, so an open directory costs its fd and
// no buffer (a 9P client may keep --max-fids of them open). The memory in
// use is bounded by the READDIR calls running at once; the pool only
// caches.
var dirBufs = sync.Pool{New: func() any { return new([dirBufSize]byte) }}

// dirStream is the state of one open directory: the entries getdents64
// returned that the client has not consumed yet.
//
// Invariant: when valid, the host fd's position is just past buf[:end],
// and buf[pos:end] are the entries that follow cookie next (the d_off of
// the last entry handed to the client, 0 at the start). Between calls buf
// is nil and pos == end == 0; a call that leaves entries unconsumed
// clears valid, so that the next one seeks back to next and reads them
// again.
type dirStream struct {
	mu sync.Mutex
	// bufp is buf's array, from dirBufs during a call. +checklocks:mu
	bufp *[dirBufSize]byte
	// +checklocks:mu
	buf []byte
	// +checklocks:mu
	pos, end int
	// +checklocks:mu
	next uint64
	// +checklocks:mu
	valid bool
	// plus is the READDIRPLUS entry handed to the sink, kept here so that
	// it does not escape to the heap on every entry. +checklocks:mu
	plus fs.Entry
}

// OpenDir opens the directory for reading with its own fd, so that each
// handle has its own position.
func (f *FS) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	in, e := f.getDir(ino)
	if e != 0 {
		return e
	}
	if e := f.budget.takeOpen(ctx.Uid); e != 0 {
		f.inodes.put(in)
		return e
	}
	fd, e := f.reopen(in, unix.O_RDONLY|unix.O_DIRECTORY)
	if e != 0 {
		f.budget.give(ctx.Uid)
		f.inodes.put(in)
		return e
	}
	h := &handle{fd: fd, in: in, flags: unix.O_RDONLY | unix.O_DIRECTORY, dir: &dirStream{}, uid: ctx.Uid}
	out.Handle = f.handles.add(h)
	if f.opts.Cache == CacheAlways || f.opts.Cache == CacheMetadata {
		out.Flags = fs.OpenKeepCache | fs.OpenCacheDir
	}
	return fs.OK
}

// ReleaseDir closes the directory handle.
func (f *FS) ReleaseDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno {
	return f.Release(ctx, ino, fh, 0)
}

// FsyncDir is fsync(2) or fdatasync(2) on the directory handle.
func (f *FS) FsyncDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	return f.Fsync(ctx, ino, fh, datasync)
}

// getdents64 record layout (linux_dirent64).
const (
	direntIno    = 0
	direntOff    = 8
	direntReclen = 16
	direntType   = 18
	direntName   = 19
)

// ReadDir hands dst the entries after cookie off. Cookies are the host's
// d_off values, so they stay valid across calls, handles and
// telldir/seekdir as far as the host filesystem keeps them valid. With
// dst.Plus(), every entry but "." and ".." is looked up (raising its
// lookup count) and the lookup is undone if dst does not take the entry.
func (f *FS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	h, e := f.getHandle(fh)
	if e != 0 {
		return e
	}
	defer f.putHandle(h)
	d := h.dir
	if d == nil {
		return syscall.ENOTDIR
	}
	if off > 1<<63-1 {
		return syscall.EINVAL
	}
	plus := dst.Plus()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bufp = dirBufs.Get().(*[dirBufSize]byte)
	d.buf = d.bufp[:]
	defer d.putBuf()
	if !d.valid || off != d.next {
		d.valid = false
		if _, err := unix.Seek(h.fd, int64(off), unix.SEEK_SET); err != nil {
			return errno(err)
		}
		d.pos, d.end, d.next, d.valid = 0, 0, off, true
	}
	added := 0
	for {
		if d.pos >= d.end {
			n, err := unix.Getdents(h.fd, d.buf)
			if err != nil {
				d.valid = false // position unknown: seek on the next call
				if added > 0 {
					return fs.OK
				}
				return errno(err)
			}
			if n <= 0 {
				return fs.OK // end of directory
			}
			d.pos, d.end = 0, n
		}
		rec := d.buf[d.pos:d.end]
		if len(rec) < direntName+1 {
			d.valid = false
			return syscall.EIO
		}
		reclen := int(binary.NativeEndian.Uint16(rec[direntReclen:]))
		if reclen < direntName+1 || reclen > len(rec) {
			d.valid = false
			return syscall.EIO
		}
		rec = rec[:reclen]
		name := rec[direntName:]
		nameLen := 0
		for nameLen < len(name) && name[nameLen] != 0 {
			nameLen++
		}
		if nameLen == len(name) { // no NUL inside the record
			d.valid = false
			return syscall.EIO
		}
		ent := fs.DirEntry{
			Ino:  binary.NativeEndian.Uint64(rec[direntIno:]),
			Off:  binary.NativeEndian.Uint64(rec[direntOff:]),
			Type: uint32(rec[direntType]),
			Name: name[:nameLen],
		}
		var entry *fs.Entry
		if plus && !isDotOrDotDot(ent.Name) {
			d.plus = fs.Entry{}
			// The name is NUL-terminated in the buffer: pass it as is.
			if e := f.lookupName(h.in, ent.Name, &name[0], &d.plus); e != 0 {
				if e != syscall.ENOENT {
					if added > 0 {
						return fs.OK // report the rest on the next call
					}
					return e
				}
				// Removed since getdents: skip it, as a later getdents
				// would have.
				d.pos += reclen
				d.next = ent.Off
				continue
			}
			entry = &d.plus
		}
		if !dst.Add(ent, entry) {
			if entry != nil {
				f.inodes.forget(entry.Ino, 1)
			}
			return fs.OK
		}
		added++
		d.pos += reclen
		d.next = ent.Off
	}
}

// putBuf returns the call's buffer to dirBufs (see dirStream).
// Preconditions: d.mu is held.
func (d *dirStream) putBuf() {
	if d.pos < d.end {
		d.valid = false // entries left unread: the next call seeks to next
	}
	d.pos, d.end = 0, 0
	dirBufs.Put(d.bufp)
	d.bufp, d.buf = nil, nil
}

func isDotOrDotDot(name []byte) bool {
	return len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.'
}
