package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// readSink is the fs.Sink of a READ served into Out: the data goes right
// after the out header. buf is Out[16:16+size]; n bytes are filled.
type readSink struct {
	buf []byte
	n   int
}

var _ fs.Sink = (*readSink)(nil)

func (k *readSink) reset(buf []byte) { k.buf, k.n = buf, 0 }

func (k *readSink) Cap() int { return len(k.buf) - k.n }
func (k *readSink) Len() int { return k.n }

func (k *readSink) Append(p []byte) int {
	c := copy(k.buf[k.n:], p)
	k.n += c
	return c
}

// ReadFrom preads up to n bytes of fd at off straight into the reply; it
// stops early only at end of file.
func (k *readSink) ReadFrom(fd int, off int64, n int) (int, fs.Errno) {
	if n < 0 || off < 0 {
		return 0, syscall.EINVAL
	}
	n = min(n, k.Cap())
	done := 0
	for done < n {
		c, err := syscall.Pread(fd, k.buf[k.n:k.n+n-done], off+int64(done))
		if err == syscall.EINTR {
			continue // a signal before any byte moved; pread is restartable
		}
		if err != nil {
			return done, errnoOf(err)
		}
		if c == 0 {
			break // end of file
		}
		k.n += c
		done += c
	}
	return done, 0
}

// BytesSource is an fs.Source over a payload in memory: the engine's for a
// WRITE whose payload is in Request.In, and a transport's for one in a
// buffer of its own (an io_uring entry's payload buffer).
type BytesSource struct {
	B []byte
}

var _ fs.Source = (*BytesSource)(nil)

func (w *BytesSource) Len() int            { return len(w.B) }
func (w *BytesSource) CopyTo(p []byte) int { return copy(p, w.B) }

// WriteTo pwrites the whole payload to fd at off.
func (w *BytesSource) WriteTo(fd int, off int64) (int, fs.Errno) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	done := 0
	for done < len(w.B) {
		c, err := syscall.Pwrite(fd, w.B[done:], off+int64(done))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, errnoOf(err)
		}
		if c == 0 {
			return done, syscall.EIO
		}
		done += c
	}
	return done, 0
}

func errnoOf(err error) fs.Errno {
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}

// dirSink encodes READDIR (fuse_dirent) or READDIRPLUS (fuse_direntplus)
// records into buf, Out[16:16+size]. Records are 8-byte aligned with zero
// padding; a record that does not fit whole is refused.
type dirSink struct {
	buf  []byte
	n    int
	plus bool
	// bad is set when the filesystem handed an entry the kernel would
	// reject (empty name, '/', NUL, too long, cookie 0); the sink then
	// refuses it and every later one.
	bad bool
}

var _ fs.DirSink = (*dirSink)(nil)

func (d *dirSink) reset(buf []byte, plus bool) { *d = dirSink{buf: buf, plus: plus} }

func (d *dirSink) Plus() bool { return d.plus }

func (d *dirSink) Add(e fs.DirEntry, plus *fs.Entry) bool {
	if d.bad {
		return false
	}
	if len(e.Name) == 0 || len(e.Name) > abi.NameLowMax || e.Off == 0 || !direntName(e.Name) {
		d.bad = true
		return false
	}
	hdr := abi.DirentHeaderSize
	if d.plus {
		hdr = abi.DirentplusHeaderSize
	}
	rec := abi.DirentAlign(hdr + len(e.Name))
	if rec > len(d.buf)-d.n {
		return false
	}
	b := d.buf[d.n : d.n+rec]
	de := b
	if d.plus {
		if plus != nil {
			putEntry(b, plus)
		} else {
			clear(b[:abi.EntryOutSize])
		}
		de = b[abi.EntryOutSize:]
	}
	ne.PutUint64(de[0:], e.Ino)
	ne.PutUint64(de[8:], e.Off)
	ne.PutUint32(de[16:], uint32(len(e.Name)))
	ne.PutUint32(de[20:], e.Type)
	c := copy(de[abi.DirentHeaderSize:], e.Name)
	clear(de[abi.DirentHeaderSize+c:])
	d.n += rec
	return true
}

// direntName reports whether the kernel accepts n in a dirent: no '/' and
// no NUL ("." and ".." are fine here).
func direntName(n []byte) bool {
	for _, c := range n {
		if c == '/' || c == 0 {
			return false
		}
	}
	return true
}
