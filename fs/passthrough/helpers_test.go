package passthrough

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// bufSink is a Sink over a byte slice; ReadFrom is pread(2), as a
// transport's would be preadv into client memory.
type bufSink struct {
	buf []byte
	n   int
}

func newSink(size int) *bufSink  { return &bufSink{buf: make([]byte, size)} }
func (s *bufSink) Cap() int      { return len(s.buf) - s.n }
func (s *bufSink) Len() int      { return s.n }
func (s *bufSink) Bytes() []byte { return s.buf[:s.n] }
func (s *bufSink) Append(p []byte) int {
	c := copy(s.buf[s.n:], p)
	s.n += c
	return c
}
func (s *bufSink) ReadFrom(fd int, off int64, n int) (int, fs.Errno) {
	if n > s.Cap() {
		n = s.Cap()
	}
	r, err := unix.Pread(fd, s.buf[s.n:s.n+n], off)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	s.n += r
	return r, 0
}

// bufSource is a Source over a byte slice; WriteTo is pwrite(2).
type bufSource struct{ data []byte }

func (s *bufSource) Len() int            { return len(s.data) }
func (s *bufSource) CopyTo(p []byte) int { return copy(p, s.data) }
func (s *bufSource) WriteTo(fd int, off int64) (int, fs.Errno) {
	n, err := unix.Pwrite(fd, s.data, off)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}

// dirEnt is a copied DirEntry with its READDIRPLUS entry.
type dirEnt struct {
	fs.DirEntry
	name  string
	entry *fs.Entry
}

// dirSink collects up to max entries (0: unlimited).
type dirSink struct {
	plus bool
	max  int
	ents []dirEnt
}

func (d *dirSink) Plus() bool { return d.plus }
func (d *dirSink) Add(e fs.DirEntry, plus *fs.Entry) bool {
	if d.max > 0 && len(d.ents) >= d.max {
		return false
	}
	de := dirEnt{DirEntry: e, name: string(e.Name)}
	de.Name = nil
	if plus != nil {
		c := *plus
		de.entry = &c
	}
	d.ents = append(d.ents, de)
	return true
}

var rootCtx = &fs.Context{}

// newTestFS exports a fresh temporary directory. Options that leave
// FileHandles at never get prefer with the smallest fd cache (see below).
func newTestFS(t testing.TB, opts Options) (*FS, string) {
	t.Helper()
	dir := t.TempDir()
	if opts.FileHandles == FileHandlesNever && os.Getenv("FASTFSD_TEST_FILE_HANDLES") != "never" {
		// Handles are the daemon's default: run every test with them and
		// the smallest fd cache, so reopening from handles is exercised
		// everywhere. FASTFSD_TEST_FILE_HANDLES=never runs the fd-per-inode
		// mode instead.
		opts.FileHandles, opts.FdCache = FileHandlesPrefer, MinFdCache
	}
	f, err := New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, dir
}

func writeFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func lookup(t testing.TB, f *FS, parent fs.Inode, name string) fs.Entry {
	t.Helper()
	var e fs.Entry
	if errno := f.Lookup(rootCtx, parent, []byte(name), &e); errno != 0 {
		t.Fatalf("Lookup(%d, %q): %v", parent, name, errno)
	}
	return e
}

func open(t testing.TB, f *FS, ino fs.Inode, flags uint32) fs.Handle {
	t.Helper()
	return openAs(t, f, rootCtx, ino, flags)
}

// openAs is open as the caller ctx.
func openAs(t testing.TB, f *FS, ctx *fs.Context, ino fs.Inode, flags uint32) fs.Handle {
	t.Helper()
	var out fs.OpenOut
	if e := f.Open(ctx, ino, flags, 0, &out); e != 0 {
		t.Fatalf("Open(%d, %#x) as uid %d: %v", ino, flags, ctx.Uid, e)
	}
	return out.Handle
}

// hostOpen opens path with flags (and O_CLOEXEC) as a host process
// would, not through the FS; the fd is closed when the test ends.
func hostOpen(t testing.TB, path string, flags int) int {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func hostErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

func wantErrno(t testing.TB, what string, got, want syscall.Errno) {
	t.Helper()
	if got != want {
		t.Errorf("%s: errno %v (%d), want %v (%d)", what, got, int(got), want, int(want))
	}
}

func lstat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func join(a ...string) string { return filepath.Join(a...) }

// openFds counts the process's open fds.
func openFds(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
