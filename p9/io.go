package p9

import (
	"encoding/binary"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// readSink is the fs.Sink of Tread: it fills the Rread reply buffer right
// after its 11-byte header, so file data goes from pread(2) into the bytes
// written to the connection with no copy in between.
//
// Invariant: buf is the data area (len 0, cap = the count granted), and
// len(buf) ≤ cap(buf) always.
type readSink struct {
	buf []byte
}

var _ fs.Sink = (*readSink)(nil)

func (s *readSink) Cap() int { return cap(s.buf) - len(s.buf) }
func (s *readSink) Len() int { return len(s.buf) }

func (s *readSink) Append(p []byte) int {
	n := min(len(p), s.Cap())
	s.buf = append(s.buf, p[:n]...)
	return n
}

func (s *readSink) ReadFrom(fd int, off int64, n int) (int, fs.Errno) {
	n = min(n, s.Cap())
	if n <= 0 {
		return 0, 0
	}
	l := len(s.buf)
	dst := s.buf[l : l+n]
	got := 0
	for got < n {
		k, err := syscall.Pread(fd, dst[got:], off+int64(got))
		if err == syscall.EINTR {
			continue // a signal, not an answer: retry the same range
		}
		if err != nil {
			s.buf = s.buf[:l+got]
			if got > 0 {
				return got, 0
			}
			return 0, errnoOf(err)
		}
		if k == 0 {
			break // end of file
		}
		got += k
	}
	s.buf = s.buf[:l+got]
	return got, 0
}

// writeSource is the fs.Source of Twrite: a view of the payload in the
// request's receive buffer, written to a file with pwrite(2) from there.
type writeSource struct {
	data []byte
}

var _ fs.Source = (*writeSource)(nil)

func (s *writeSource) Len() int            { return len(s.data) }
func (s *writeSource) CopyTo(p []byte) int { return copy(p, s.data) }

func (s *writeSource) WriteTo(fd int, off int64) (int, fs.Errno) {
	done := 0
	for done < len(s.data) {
		k, err := syscall.Pwrite(fd, s.data[done:], off+int64(done))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if done > 0 {
				return done, 0
			}
			return 0, errnoOf(err)
		}
		if k == 0 {
			break
		}
		done += k
	}
	return done, 0
}

// dirSink encodes fs.DirEntry values as 9P dirents —
// qid[13] offset[8] type[1] name[s] — into the Rreaddir reply after its
// header, whole entries only, up to the count granted.
type dirSink struct {
	buf []byte // len = bytes encoded, cap = count granted
}

var _ fs.DirSink = (*dirSink)(nil)

func (s *dirSink) Plus() bool { return false }

func (s *dirSink) Add(e fs.DirEntry, _ *fs.Entry) bool {
	need := QIDSize + 8 + 1 + 2 + len(e.Name)
	if len(e.Name) > 0xFFFF || need > cap(s.buf)-len(s.buf) {
		return false
	}
	l := len(s.buf)
	b := s.buf[l : l+need]
	q := QID{Type: qidTypeOfDT(e.Type), Path: e.Ino}
	putQID(b, &q)
	binary.LittleEndian.PutUint64(b[13:], e.Off)
	b[21] = uint8(e.Type)
	binary.LittleEndian.PutUint16(b[22:], uint16(len(e.Name)))
	copy(b[24:], e.Name)
	s.buf = s.buf[:l+need]
	return true
}

// d_type values.
const (
	dtDir = 4
	dtLnk = 10
)

func qidTypeOfDT(t uint32) uint8 {
	switch t {
	case dtDir:
		return QTDir
	case dtLnk:
		return QTSymlink
	}
	return QTFile
}

// errnoOf maps an error of a syscall made here to an errno; anything that
// is not one is EIO.
func errnoOf(err error) fs.Errno {
	if e, ok := err.(syscall.Errno); ok && e != 0 {
		return e
	}
	return syscall.EIO
}
