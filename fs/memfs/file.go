package memfs

import (
	"math"
	"slices"
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
)

const pageSize = 4096

// maxFileSize is the largest file size, tmpfs's (MAX_LFS_FILESIZE): a
// file is sparse, so any offset costs one page.
const maxFileSize = math.MaxInt64

// page is 4 KiB of a file's data; a page never written is a hole and
// reads as zeros.
type page [pageSize]byte

var zeroPage page

// file is a regular file, sparse: its data is the pages written.
type file struct {
	node
	// +checklocks:mu
	size int64
	// pages maps page index → data.
	// +checklocks:mu
	pages map[int64]*page
	// opens counts the opens not yet released: the data of a file with no
	// name left (nlink 0) is freed when the last one ends.
	// +checklocks:mu
	opens int
}

// Release ends an open; the last one of a file without names frees its
// data.
func (f *file) Release(_ *fs.Context, fh nodefs.FileHandle) fs.Errno {
	f.dropLocksOf(fh)
	f.mu.Lock()
	f.opens--
	f.freeIfGone()
	f.mu.Unlock()
	return 0
}

// freeIfGone drops the data of a file no name and no open refer to (a
// client may still stat it).
// +checklocks:f.mu
func (f *file) freeIfGone() {
	if f.attr.Nlink == 0 && f.opens <= 0 {
		f.truncate(0)
	}
}

func (f *file) Getattr(_ *fs.Context, _ nodefs.FileHandle, out *fs.Attr) fs.Errno {
	f.mu.Lock()
	*out = f.attr
	out.Size = uint64(f.size)
	out.Blocks = uint64(len(f.pages)) * (pageSize / 512)
	f.mu.Unlock()
	return 0
}

// Open truncates with O_TRUNC (the FUSE engine offers ATOMIC_O_TRUNC).
func (f *file) Open(ctx *fs.Context, flags, openFlags uint32, _ *fs.OpenOut) (nodefs.FileHandle, fs.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		f.truncate(0)
		f.touch(false, true, true) // as open(2) with O_TRUNC does, even of an empty file
		if openFlags&fs.OpenKillSuidGid != 0 {
			f.killSuidGid(ctx)
		}
	}
	return &openFile{}, 0
}

func (f *file) Setattr(ctx *fs.Context, _ nodefs.FileHandle, in *fs.SetAttrIn, out *fs.Attr) fs.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.Valid&fs.SetSize != 0 {
		if in.Size > maxFileSize {
			return syscall.EFBIG
		}
		f.truncate(int64(in.Size))
		f.touch(false, in.Valid&(fs.SetMtime|fs.SetMtimeNow) == 0, false)
		if in.Valid&fs.SetKillSuidGid != 0 {
			f.killSuidGid(ctx)
		}
	}
	f.setattr(in)
	*out = f.attr
	out.Size = uint64(f.size)
	out.Blocks = uint64(len(f.pages)) * (pageSize / 512)
	return 0
}

// truncate sets the size, dropping the pages past it and zeroing the
// tail of the last one.
// +checklocks:f.mu
func (f *file) truncate(size int64) {
	if size < f.size {
		for i, p := range f.pages {
			if i*pageSize >= size {
				delete(f.pages, i)
				f.fs.used.Add(-pageSize)
			} else if end := (i + 1) * pageSize; end > size {
				clear(p[size-i*pageSize:])
			}
		}
	}
	f.size = size
}

// pageAt returns page i, allocating it (ENOSPC past the cap).
// +checklocks:f.mu
func (f *file) pageAt(i int64) (*page, fs.Errno) {
	if p := f.pages[i]; p != nil {
		return p, 0
	}
	if used := f.fs.used.Add(pageSize); f.fs.max > 0 && used > f.fs.max {
		f.fs.used.Add(-pageSize)
		return nil, syscall.ENOSPC
	}
	if f.pages == nil {
		f.pages = map[int64]*page{}
	}
	p := new(page)
	f.pages[i] = p
	return p, 0
}

func (f *file) Read(_ *fs.Context, _ nodefs.FileHandle, off int64, size uint32, dst fs.Sink) fs.Errno {
	if off < 0 {
		return syscall.EINVAL
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	end := min(off+int64(size), f.size)
	for off < end {
		i, o := off/pageSize, off%pageSize
		n := min(pageSize-o, end-off)
		src := zeroPage[o : o+n]
		if p := f.pages[i]; p != nil {
			src = p[o : o+n]
		}
		if dst.Append(src) < int(n) {
			break
		}
		off += n
	}
	f.accessed()
	return 0
}

// scratch holds a write's payload on its way into pages that may not be
// contiguous (fs.Source copies only from its start).
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 128<<10); return &b }}

func (f *file) Write(ctx *fs.Context, _ nodefs.FileHandle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	n := int64(src.Len())
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if off > maxFileSize-n {
		return 0, syscall.EFBIG
	}
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	if int64(cap(*bp)) < n {
		*bp = make([]byte, n)
	}
	b := (*bp)[:n]
	src.CopyTo(b)

	f.mu.Lock()
	defer f.mu.Unlock()
	var done int64
	for done < n {
		i, o := (off+done)/pageSize, (off+done)%pageSize
		p, e := f.pageAt(i)
		if e != 0 {
			if done == 0 {
				return 0, e
			}
			break // a short write; the next fails ENOSPC
		}
		done += int64(copy(p[o:], b[done:]))
	}
	f.size = max(f.size, off+done)
	f.touch(false, true, true)
	if flags&fs.WriteKillSuidGid != 0 {
		f.killSuidGid(ctx)
	}
	return uint32(done), 0
}

// Fallocate allocates (mode 0, or FALLOC_FL_KEEP_SIZE) or punches holes
// (PUNCH_HOLE|KEEP_SIZE); other modes are EOPNOTSUPP, as on tmpfs.
func (f *file) Fallocate(_ *fs.Context, _ nodefs.FileHandle, off, length uint64, mode uint32) fs.Errno {
	const keepSize, punchHole = 0x1, 0x2
	if off > maxFileSize || length > maxFileSize-off {
		return syscall.EFBIG
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	start, end := int64(off), int64(off+length)
	switch mode {
	case 0, keepSize:
		for i := start / pageSize; i*pageSize < end; i++ {
			if _, e := f.pageAt(i); e != 0 {
				return e
			}
		}
		if mode&keepSize == 0 && end > f.size {
			f.size = end
		}
	case punchHole | keepSize:
		for i := start / pageSize; i*pageSize < end && i*pageSize < f.size; i++ {
			p := f.pages[i]
			if p == nil {
				continue
			}
			ps, pe := max(start-i*pageSize, 0), min(end-i*pageSize, pageSize)
			if ps == 0 && pe == pageSize {
				delete(f.pages, i)
				f.fs.used.Add(-pageSize)
			} else {
				clear(p[ps:pe])
			}
		}
	default:
		return syscall.EOPNOTSUPP
	}
	f.touch(false, true, true)
	return 0
}

// Lseek finds data (a page held) or a hole (a page not held, or the end).
func (f *file) Lseek(_ *fs.Context, _ nodefs.FileHandle, off int64, whence uint32) (int64, fs.Errno) {
	const seekData, seekHole = 3, 4
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 || off >= f.size {
		return 0, syscall.ENXIO
	}
	idx := make([]int64, 0, len(f.pages))
	for i := range f.pages {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	switch whence {
	case seekData:
		k, _ := slices.BinarySearch(idx, off/pageSize)
		if k == len(idx) {
			return 0, syscall.ENXIO
		}
		return max(off, idx[k]*pageSize), 0
	case seekHole:
		i := off / pageSize
		k, found := slices.BinarySearch(idx, i)
		if !found {
			return off, 0
		}
		for k+1 < len(idx) && idx[k+1] == idx[k]+1 {
			k++
		}
		return min((idx[k]+1)*pageSize, f.size), 0
	}
	return 0, syscall.EINVAL
}
