package splice

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Pipe is a non-blocking, close-on-exec pipe with a known capacity that
// tracks how many bytes it holds.
//
// Invariant: 0 <= Len() <= Cap(), provided every byte enters and leaves
// through the Pipe's methods.
type Pipe struct {
	r, w int // read and write ends; -1 after Close
	cap  int // capacity in bytes (F_GETPIPE_SZ)
	n    int // bytes currently in the pipe
}

// New returns a pipe that holds at least size bytes (0: the kernel default,
// 64 KiB). Sizes above /proc/sys/fs/pipe-max-size need CAP_SYS_RESOURCE.
func New(size int) (*Pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("splice: pipe2: %w; raise the open file limit (ulimit -n)", err)
	}
	p := &Pipe{r: fds[0], w: fds[1]}
	if size > 0 {
		if _, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, size); err != nil {
			p.Close()
			return nil, fmt.Errorf("splice: F_SETPIPE_SZ %d: %w; raise /proc/sys/fs/pipe-max-size or run as root", size, err)
		}
	}
	c, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("splice: F_GETPIPE_SZ: %w", err)
	}
	p.cap = c
	return p, nil
}

// ReadFd and WriteFd return the pipe's ends, for calls this package does
// not wrap. A caller that moves bytes through them must fix the count with
// Added or Removed.
func (p *Pipe) ReadFd() int  { return p.r }
func (p *Pipe) WriteFd() int { return p.w }

// Cap returns the pipe's capacity in bytes.
func (p *Pipe) Cap() int { return p.cap }

// Len returns the bytes the pipe holds.
func (p *Pipe) Len() int { return p.n }

// Added and Removed adjust Len after a transfer done outside this package.
func (p *Pipe) Added(n int)   { p.n += n }
func (p *Pipe) Removed(n int) { p.n -= n }

// SpliceFrom moves up to n bytes from fd (at *off, or its file position if
// off is nil) into the pipe.
func (p *Pipe) SpliceFrom(fd int, off *int64, n int) (int, syscall.Errno) {
	m, e := Splice(fd, off, p.w, nil, n, unix.SPLICE_F_MOVE)
	if m > 0 {
		p.n += m
	}
	return m, e
}

// SpliceTo moves up to n bytes from the pipe to fd (at *off, or its file
// position if off is nil).
func (p *Pipe) SpliceTo(fd int, off *int64, n int, flags int) (int, syscall.Errno) {
	m, e := Splice(p.r, nil, fd, off, n, flags)
	if m > 0 {
		p.n -= m
	}
	return m, e
}

// SpliceToAll moves exactly n bytes from the pipe to fd, looping over
// short transfers; it stops at the first error or when nothing moves.
func (p *Pipe) SpliceToAll(fd int, off *int64, n int) (int, syscall.Errno) {
	done := 0
	for done < n {
		m, e := p.SpliceTo(fd, off, n-done, unix.SPLICE_F_MOVE)
		done += m
		if e != 0 {
			return done, e
		}
		if m == 0 {
			return done, syscall.EIO
		}
	}
	return done, 0
}

// MoveFrom moves n bytes from pipe q into p without copying the data
// (pipe buffers change hands).
func (p *Pipe) MoveFrom(q *Pipe, n int) (int, syscall.Errno) {
	done := 0
	for done < n {
		m, e := Splice(q.r, nil, p.w, nil, n-done, unix.SPLICE_F_MOVE)
		if m > 0 {
			done += m
			q.n -= m
			p.n += m
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

// Write copies b into the pipe; short if the pipe fills.
func (p *Pipe) Write(b []byte) (int, syscall.Errno) {
	m, e := write(p.w, b)
	if m > 0 {
		p.n += m
	}
	return m, e
}

// Read copies up to len(b) bytes out of the pipe.
func (p *Pipe) Read(b []byte) (int, syscall.Errno) {
	m, e := read(p.r, b)
	if m > 0 {
		p.n -= m
	}
	return m, e
}

// ReadFull reads exactly len(b) bytes, which the pipe must hold.
func (p *Pipe) ReadFull(b []byte) syscall.Errno {
	for len(b) > 0 {
		m, e := p.Read(b)
		if e != 0 {
			return e
		}
		if m == 0 {
			return syscall.EIO
		}
		b = b[m:]
	}
	return 0
}

// devNull is /dev/null opened once, raw (no *os.File finalizer), kept open
// for the life of the process: every Pipe's Drain splices into it.
var devNull = sync.OnceValues(func() (int, error) {
	return unix.Open(os.DevNull, unix.O_WRONLY|unix.O_CLOEXEC, 0)
})

// OpenDevNull opens the /dev/null fd Drain splices into now rather than
// at its first use: for a process about to lose /dev (a pivot_root into
// the served directory, Landlock). Without it, Drain there reads the
// pipe out into a buffer instead.
func OpenDevNull() error {
	_, err := devNull()
	return err
}

// Drain discards everything in the pipe (splice to /dev/null, so nothing
// is copied), leaving Len() == 0.
func (p *Pipe) Drain() syscall.Errno {
	if p.n == 0 {
		return 0
	}
	null, err := devNull()
	if err != nil {
		var buf [4096]byte
		for p.n > 0 {
			if _, e := p.Read(buf[:min(len(buf), p.n)]); e != 0 {
				return e
			}
		}
		return 0
	}
	_, e := p.SpliceToAll(null, nil, p.n)
	return e
}

// Close closes both ends. It is safe to call twice.
func (p *Pipe) Close() error {
	var err error
	if p.r >= 0 {
		err = unix.Close(p.r)
		p.r = -1
	}
	if p.w >= 0 {
		if e := unix.Close(p.w); err == nil {
			err = e
		}
		p.w = -1
	}
	p.n = 0
	return err
}

// MaxSize returns /proc/sys/fs/pipe-max-size: the largest pipe a process
// without CAP_SYS_RESOURCE may ask for.
func MaxSize() (int, error) {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return 0, fmt.Errorf("splice: read pipe-max-size: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("splice: pipe-max-size %q is not a size", b)
	}
	return v, nil
}
