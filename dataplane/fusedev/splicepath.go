package fusedev

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/splice"
)

// The splice path (fuse.md §10). Per worker, two pipes of at least
// bufSize bytes:
//
//	request: /dev/fuse ──splice──► in ──read──► buf (header + args)
//	         WRITE payload stays in `in` → pipeSource → splice → file
//	READ:    file ──splice──► data (pipeSink; the header's length is not
//	         known until the filesystem is done) ; then header ──write──► in,
//	         data ──splice (buffers move)──► in, in ──splice──► /dev/fuse
//
// Invariant between requests: both pipes are empty (leftovers are drained).

func (w *worker) setupSplice(bufSize int, read, write bool) error {
	// One page for the header and arguments, one for payload data that
	// straddles a page boundary (Serve shrank max_write so this fits
	// pipe-max-size).
	size := bufSize - inHeaderSize - writeInSize + 2*unix.Getpagesize()
	var err error
	if w.in, err = splice.New(size); err != nil {
		return err
	}
	if read {
		if w.data, err = splice.New(size); err != nil {
			return err
		}
		w.sink.p = w.data
	}
	w.spliceRead, w.spliceWrite = read, write
	w.src.p = w.in
	return nil
}

// serveSpliced runs the request of n bytes sitting in w.in.
func (w *worker) serveSpliced(n int) bool {
	r := w.req
	r.Src, r.Dst = nil, nil
	// Small requests (all but large WRITEs) leave the pipe with one read;
	// a WRITE payload below spliceMin is not worth keeping in the pipe.
	first := n
	if n > inHeaderSize+writeInSize+spliceMin {
		first = inHeaderSize + writeInSize
	}
	if e := w.in.ReadFull(w.buf[:first]); e != 0 {
		w.in.Drain()
		return false // cannot even read the header: nothing to answer
	}
	h, _ := readHdr(w.buf[:first])
	if first < n && w.spliceWrite && h.opcode == opWrite {
		r.In = w.buf[:first]
		w.src.n = n - first
		r.Src = &w.src
	} else {
		if e := w.in.ReadFull(w.buf[first:n]); e != 0 {
			w.in.Drain()
			if noReply(h.opcode) {
				return false
			}
			putErrReply(w.errb[:], h.unique, int32(syscall.EIO))
			return w.send(w.errb[:])
		}
		r.In = w.buf[:n]
	}
	if w.spliceRead && h.opcode == opRead {
		// The engine writes only the out header into Out when Dst is
		// set, so small data may sit right behind it.
		w.sink.reset(r.Out[outHeaderSize:])
		r.Dst = &w.sink
	}
	if w.debug != nil {
		w.logRequest(r.In)
	}
	if r.Src == nil && w.pool.offload(w, r.In) {
		return false
	}
	out, handed := w.handleOrWait(r)
	if handed {
		return false
	}
	if w.in.Len() > 0 {
		// WRITE payload the filesystem did not consume.
		w.in.Drain()
	}
	if r.Src != nil {
		w.stats.spliced.Add(1)
	}
	if out <= 0 {
		if w.data != nil {
			w.data.Drain()
		}
		return false
	}
	dlen := 0
	if r.Dst != nil {
		dlen = w.sink.Len()
	}
	if dlen > 0 && out == outHeaderSize && int(binary.NativeEndian.Uint32(r.Out[0:])) == out+dlen {
		if w.sink.mode == sinkBuffer {
			return w.send(r.Out[:out+dlen])
		}
		w.stats.spliced.Add(1)
		return w.sendSpliced(r.Out[:out], dlen)
	}
	// No data, or the header does not count it (an error reply after a
	// partial read): drop the data, send the header-only reply.
	if w.data != nil && w.data.Len() > 0 {
		w.data.Drain()
	}
	return w.send(r.Out[:out])
}

// sendSpliced writes header + dlen bytes of w.data as one reply.
func (w *worker) sendSpliced(header []byte, dlen int) bool {
	if w.debug != nil {
		w.logReply(header)
	}
	total := len(header) + dlen
	if _, e := w.in.Write(header); e != 0 {
		return w.failSpliced(e)
	}
	if _, e := w.in.MoveFrom(w.data, dlen); e != 0 {
		return w.failSpliced(e)
	}
	// One splice = one reply: the kernel takes the whole reply or fails.
	m, e := w.in.SpliceTo(w.fd, nil, total, 0)
	switch {
	case e == syscall.ENOENT:
		// The kernel no longer has the request (resent, or the
		// connection aborted). Only READ replies leave this way, and
		// they carry no reference to give back (fuse.Server.NotDelivered).
		e = 0
	case e == syscall.ENODEV || e == syscall.ECONNABORTED:
		w.in.Drain()
		return true
	case e == 0 && m != total:
		e = syscall.EIO
	}
	if e != 0 {
		return w.failSpliced(e)
	}
	w.in.Drain()
	return false
}

// failSpliced drops a reply the pipes could not carry and answers EIO.
func (w *worker) failSpliced(e syscall.Errno) bool {
	w.in.Drain()
	if w.data != nil {
		w.data.Drain()
	}
	h, _ := readHdr(w.req.In)
	putErrReply(w.errb[:], h.unique, int32(syscall.EIO))
	return w.send(w.errb[:])
}

// spliceMin is the smallest READ that goes through the pipes: below it
// the two extra system calls of the splice reply cost more than the copy
// they save, so the data is copied into the reply buffer and leaves with
// the header in one write.
const spliceMin = 32 << 10

// Sink modes: a READ's data goes either all to the reply buffer or all to
// the pipe, decided by the first call.
const (
	sinkUndecided = iota
	sinkBuffer
	sinkPipe
)

// pipeSink is the READ fs.Sink of the splice path. Large reads from a file
// are spliced file → data pipe; small ones and bytes are copied into the
// reply buffer right after the out header (buf), so the reply leaves with
// one write.
type pipeSink struct {
	p     *splice.Pipe
	limit int // most bytes one reply may carry (pipe capacity less slack)
	mode  int
	buf   []byte // Out[outHeaderSize:]: sinkBuffer data goes here
	n     int    // bytes in buf
}

func (s *pipeSink) reset(buf []byte) {
	s.limit = min(s.p.Cap()-2*4096, len(buf))
	s.mode = sinkUndecided
	s.buf = buf
	s.n = 0
}

func (s *pipeSink) Len() int {
	if s.mode == sinkPipe {
		return s.p.Len()
	}
	return s.n
}

func (s *pipeSink) Cap() int { return s.limit - s.Len() }

func (s *pipeSink) Append(b []byte) int {
	b = b[:min(len(b), s.Cap())]
	if s.mode == sinkUndecided {
		s.mode = sinkBuffer
	}
	if s.mode == sinkBuffer {
		s.n += copy(s.buf[s.n:], b)
		return len(b)
	}
	done := 0
	for done < len(b) {
		m, e := s.p.Write(b[done:])
		if e != 0 || m == 0 {
			break
		}
		done += m
	}
	return done
}

func (s *pipeSink) ReadFrom(fd int, off int64, n int) (int, syscall.Errno) {
	n = min(n, s.Cap())
	if s.mode == sinkUndecided {
		s.mode = sinkBuffer
		if n >= spliceMin {
			s.mode = sinkPipe
		}
	}
	if s.mode == sinkBuffer {
		return s.pread(fd, off, n)
	}
	done := 0
	for done < n {
		m, e := s.p.SpliceFrom(fd, &off, n-done)
		if e == syscall.EINVAL && done == 0 {
			// This file's filesystem cannot splice: copy through
			// the pipe (Append in pipe mode).
			return s.readCopy(fd, off, n)
		}
		if e != 0 {
			if done > 0 {
				return done, 0
			}
			return 0, e
		}
		if m == 0 {
			break // end of file
		}
		done += m
	}
	return done, 0
}

// pread reads into the reply buffer (sinkBuffer mode).
func (s *pipeSink) pread(fd int, off int64, n int) (int, syscall.Errno) {
	done := 0
	for done < n {
		m, err := unix.Pread(fd, s.buf[s.n:s.n+n-done], off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if done > 0 {
				return done, 0
			}
			return 0, errnoOf(err)
		}
		if m == 0 {
			break
		}
		s.n += m
		done += m
		off += int64(m)
	}
	return done, 0
}

// readCopy serves files whose filesystem cannot splice in pipe mode:
// pread into a stack chunk, copy into the pipe.
func (s *pipeSink) readCopy(fd int, off int64, n int) (int, syscall.Errno) {
	var chunk [4096]byte
	done := 0
	for done < n {
		m, err := unix.Pread(fd, chunk[:min(len(chunk), n-done)], off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if done > 0 {
				return done, 0
			}
			return 0, errnoOf(err)
		}
		if m == 0 {
			break
		}
		if s.Append(chunk[:m]) != m {
			return done, syscall.EIO
		}
		done += m
		off += int64(m)
	}
	return done, 0
}

func errnoOf(err error) syscall.Errno {
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}

// pipeSource is the WRITE fs.Source of the splice path: the payload left
// in the worker's request pipe after the header and fuse_write_in.
type pipeSource struct {
	p *splice.Pipe
	n int // payload bytes still in the pipe
}

func (s *pipeSource) Len() int { return s.n }

func (s *pipeSource) CopyTo(b []byte) int {
	b = b[:min(len(b), s.n)]
	if s.p.ReadFull(b) != 0 {
		return 0
	}
	s.n -= len(b)
	return len(b)
}

func (s *pipeSource) WriteTo(fd int, off int64) (int, syscall.Errno) {
	done := 0
	for s.n > 0 {
		m, e := s.p.SpliceTo(fd, &off, s.n, unix.SPLICE_F_MOVE)
		if m > 0 {
			s.n -= m
			done += m
		}
		if e == syscall.EINVAL && done == 0 {
			return s.writeCopy(fd, off)
		}
		if e != 0 {
			return done, e
		}
		if m == 0 {
			return done, syscall.EIO
		}
	}
	return done, 0
}

// writeCopy serves files that cannot take a splice: read the payload from
// the pipe in chunks, pwrite each.
func (s *pipeSource) writeCopy(fd int, off int64) (int, syscall.Errno) {
	var chunk [4096]byte
	done := 0
	for s.n > 0 {
		k := min(len(chunk), s.n)
		if e := s.p.ReadFull(chunk[:k]); e != 0 {
			return done, e
		}
		s.n -= k
		for w := 0; w < k; {
			m, err := unix.Pwrite(fd, chunk[w:k], off)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return done, errnoOf(err)
			}
			w += m
			off += int64(m)
			done += m
		}
	}
	return done, 0
}
