package virtiofs

import (
	"syscall"

	"github.com/fastfsd/fastfsd/ring"
	"golang.org/x/sys/unix"
)

// iovecs fills iov with the part [off, off+n) of bufs and returns it (fewer
// bytes if bufs end first). len(iov) ≥ len(bufs) always suffices.
func iovecs(iov []unix.Iovec, bufs []ring.Buffer, off, n uint64) []unix.Iovec {
	k := 0
	for i := range bufs {
		if n == 0 {
			break
		}
		b := bufs[i].Bytes
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		b = b[off:]
		off = 0
		if uint64(len(b)) > n {
			b = b[:n]
		}
		iov[k].Base = &b[0]
		iov[k].SetLen(len(b))
		k++
		n -= uint64(len(b))
	}
	return iov[:k]
}

// guestSink is READ's fs.Sink: the guest's writable descriptors after the
// 16-byte out header. ReadFrom preadv's from the file straight into them.
// One per worker, re-armed per request; owned by the worker.
type guestSink struct {
	bufs  []ring.Buffer // the chain's writable buffers
	start uint64        // where data starts in them (after the out header)
	room  int           // bytes available from start
	n     int           // bytes appended
	iov   *[ring.MaxBuffers]unix.Iovec
}

func (s *guestSink) reset(bufs []ring.Buffer, start uint64, room int) {
	s.bufs, s.start, s.room, s.n = bufs, start, room, 0
}

func (s *guestSink) Cap() int { return s.room - s.n }
func (s *guestSink) Len() int { return s.n }

func (s *guestSink) Append(p []byte) int {
	if len(p) > s.Cap() {
		p = p[:s.Cap()]
	}
	k := ring.Scatter(s.bufs, p, s.start+uint64(s.n))
	s.n += k
	return k
}

func (s *guestSink) ReadFrom(fd int, off int64, n int) (int, syscall.Errno) {
	n = min(n, s.Cap())
	if n <= 0 {
		return 0, 0
	}
	iov := iovecs(s.iov[:], s.bufs, s.start+uint64(s.n), uint64(n))
	k, e := preadv(fd, iov, off)
	if e != 0 {
		return 0, e
	}
	s.n += k
	return k, 0
}

// guestSource is WRITE's fs.Source: the payload stays in the guest's
// readable descriptors; WriteTo pwritev's it to the file.
type guestSource struct {
	bufs  []ring.Buffer // the chain's readable buffers
	start uint64        // where the payload starts in them
	n     int           // payload length
	iov   *[ring.MaxBuffers]unix.Iovec
}

func (s *guestSource) reset(bufs []ring.Buffer, start uint64, n int) {
	s.bufs, s.start, s.n = bufs, start, n
}

func (s *guestSource) Len() int { return s.n }

func (s *guestSource) CopyTo(p []byte) int {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return ring.Gather(s.bufs, p, s.start)
}

func (s *guestSource) WriteTo(fd int, off int64) (int, syscall.Errno) {
	done := 0
	for done < s.n {
		iov := iovecs(s.iov[:], s.bufs, s.start+uint64(done), uint64(s.n-done))
		k, e := pwritev(fd, iov, off+int64(done))
		if e != 0 {
			if done > 0 {
				return done, 0
			}
			return 0, e
		}
		if k == 0 {
			break
		}
		done += k
	}
	return done, 0
}
