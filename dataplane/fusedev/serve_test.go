package fusedev

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// testFS is a tiny filesystem for the transport's tests: a root directory
// with a synthetic file ("hello", bytes through Sink.Append), a file backed
// by a real fd ("data", Sink.ReadFrom — the splice path), and a writable
// file backed by a real fd ("out", Source.WriteTo).
type testFS struct {
	fs.Base
	hello []byte
	data  *os.File
	out   *os.File
	// passthrough: open "data" with fs.OpenPassthrough.
	passthrough bool
}

const (
	inoHello = 2
	inoData  = 3
	inoOut   = 4
)

var testNames = map[string]fs.Inode{"hello": inoHello, "data": inoData, "out": inoOut}

func (t *testFS) attr(ino fs.Inode, a *fs.Attr) fs.Errno {
	a.Ino = uint64(ino)
	a.Nlink = 1
	a.Blksize = 4096
	switch ino {
	case fs.RootInode:
		a.Mode = syscall.S_IFDIR | 0o755
		a.Nlink = 2
	case inoHello:
		a.Mode = syscall.S_IFREG | 0o444
		a.Size = uint64(len(t.hello))
	case inoData, inoOut:
		f := t.data
		a.Mode = syscall.S_IFREG | 0o444
		if ino == inoOut {
			f = t.out
			a.Mode = syscall.S_IFREG | 0o644
		}
		st, err := f.Stat()
		if err != nil {
			return syscall.EIO
		}
		a.Size = uint64(st.Size())
	default:
		return syscall.ENOENT
	}
	a.Blocks = (a.Size + 511) / 512
	return 0
}

func (t *testFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	ino, ok := testNames[string(name)]
	if parent != fs.RootInode || !ok {
		return syscall.ENOENT
	}
	out.Ino = ino
	return t.attr(ino, &out.Attr)
}

func (t *testFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasFh bool, out *fs.AttrOut) fs.Errno {
	return t.attr(ino, &out.Attr)
}

func (t *testFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	if ino == fs.RootInode {
		return syscall.EISDIR
	}
	if ino != inoOut && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return syscall.EACCES
	}
	if t.passthrough && ino == inoData {
		out.Flags = fs.OpenPassthrough
		out.PassthroughFd = int(t.data.Fd())
		return 0
	}
	out.Flags = fs.OpenDirectIO // every read and write reaches the transport
	return 0
}

func (t *testFS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	return 0
}

func (t *testFS) Flush(ctx *fs.Context, ino fs.Inode, fh fs.Handle, lockOwner uint64) fs.Errno {
	return 0
}

func (t *testFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	switch ino {
	case inoHello:
		if off < int64(len(t.hello)) {
			dst.Append(t.hello[off:min(int64(len(t.hello)), off+int64(size))])
		}
		return 0
	case inoData, inoOut:
		f := t.data
		if ino == inoOut {
			f = t.out
		}
		_, e := dst.ReadFrom(int(f.Fd()), off, int(size))
		return e
	}
	return syscall.EISDIR
}

func (t *testFS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	if ino != inoOut {
		return 0, syscall.EBADF
	}
	n, e := src.WriteTo(int(t.out.Fd()), off)
	return uint32(n), e
}

func (t *testFS) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	if ino != fs.RootInode {
		return syscall.ENOTDIR
	}
	return 0
}

func (t *testFS) ReleaseDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno { return 0 }

func (t *testFS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	names := []string{".", "..", "data", "hello", "out"}
	inos := []fs.Inode{1, 1, inoData, inoHello, inoOut}
	for i := int(off); i < len(names); i++ {
		e := fs.DirEntry{Ino: uint64(inos[i]), Off: uint64(i + 1), Type: syscall.DT_REG, Name: []byte(names[i])}
		if i < 2 {
			e.Type = syscall.DT_DIR
		}
		var plus *fs.Entry
		if dst.Plus() && i >= 2 {
			plus = &fs.Entry{Ino: inos[i]}
			t.attr(inos[i], &plus.Attr)
		}
		if !dst.Add(e, plus) {
			break
		}
	}
	return 0
}

func (t *testFS) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	out.Bsize, out.NameLen, out.Frsize = 4096, 255, 4096
	return 0
}

func newTestFS(t testing.TB) *testFS {
	dir := t.TempDir()
	data := make([]byte, 3<<20+123)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "data"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	df, err := os.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	of, err := os.OpenFile(filepath.Join(dir, "out"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { df.Close(); of.Close() })
	return &testFS{hello: []byte("hello, fuse\n"), data: df, out: of}
}

// The tests open regular files in their own mount with raw system calls,
// never os.Open: os.Open registers every file with Go's netpoller, whose
// epoll_ctl (made without releasing the P) sends FUSE_POLL, and a
// stop-the-world GC that starts meanwhile waits for that thread while the
// workers that would answer wait for the world: a deadlock. Directories
// are safe (FUSE directories have no poll).
func rawReadFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 256<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

func rawWriteAt(path string, b []byte, off int64) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

type served struct {
	c    *Conn
	mnt  string
	fsys *testFS
	done chan error
	stop context.CancelFunc
}

// serveTest mounts a testFS and serves it until the test ends.
func serveTest(t *testing.T, opts ServeOptions) *served {
	return serveTestFS(t, nil, opts)
}

func serveTestFS(t *testing.T, fsys *testFS, opts ServeOptions) *served {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	if fsys == nil {
		fsys = newTestFS(t)
	}
	mnt := t.TempDir()
	c, err := Mount(mnt, MountOptions{DefaultPermissions: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{c: c, mnt: mnt, fsys: fsys, done: make(chan error, 1), stop: cancel}
	go func() { s.done <- c.Serve(ctx, fsys, fuse.Options{}, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10 s after cancel")
		}
		if isMounted(t, mnt) {
			t.Errorf("%s still mounted after Serve returned", mnt)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		c.Close()
	})
	return s
}

func (s *served) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for Cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s")
		return nil
	}
}

func checkFiles(t *testing.T, s *served) {
	t.Helper()
	st, err := os.Stat(filepath.Join(s.mnt, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(s.fsys.hello)) || st.Mode() != 0o444 {
		t.Errorf("stat hello: size %d mode %v", st.Size(), st.Mode())
	}
	got, err := rawReadFile(filepath.Join(s.mnt, "hello"))
	if err != nil || !bytes.Equal(got, s.fsys.hello) {
		t.Errorf("read hello: %q, %v", got, err)
	}
	want, _ := os.ReadFile(s.fsys.data.Name())
	got, err = rawReadFile(filepath.Join(s.mnt, "data"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("read data: %d bytes, %v; want %d bytes equal", len(got), err, len(want))
	}
	// Small reads at odd offsets (the copy branch of the splice path).
	if fd, err := unix.Open(filepath.Join(s.mnt, "data"), unix.O_RDONLY, 0); err != nil {
		t.Error(err)
	} else {
		small := make([]byte, 1000)
		for _, off := range []int64{0, 5000, int64(len(want)) - 500} {
			n, err := unix.Pread(fd, small, off)
			if err != nil || !bytes.Equal(small[:n], want[off:min(off+1000, int64(len(want)))]) {
				t.Errorf("pread data at %d: %d, %v, equal %v", off, n, err, err == nil && bytes.Equal(small[:n], want[off:min(off+1000, int64(len(want)))]))
			}
		}
		unix.Close(fd)
	}
	ents, err := os.ReadDir(s.mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 3 || names[0] != "data" || names[1] != "hello" || names[2] != "out" {
		t.Errorf("readdir: %v", names)
	}
	if _, err := os.Stat(filepath.Join(s.mnt, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat missing: %v", err)
	}
	// Writes: through the transport to the backing file.
	payload := make([]byte, 1<<20+77)
	rand.Read(payload)
	if err := rawWriteAt(filepath.Join(s.mnt, "out"), payload, 4096); err != nil {
		t.Fatalf("write out: %v", err)
	}
	back, _ := os.ReadFile(s.fsys.out.Name())
	if len(back) != 4096+len(payload) || !bytes.Equal(back[4096:], payload) {
		t.Errorf("backing file after write: %d bytes, payload equal %v", len(back), len(back) == 4096+len(payload) && bytes.Equal(back[4096:], payload))
	}
	got, err = rawReadFile(filepath.Join(s.mnt, "out"))
	if err != nil || !bytes.Equal(got, back) {
		t.Errorf("read back out: %d bytes, %v", len(got), err)
	}
}

func TestServeReadWrite(t *testing.T) {
	for _, mode := range []struct {
		name string
		m    SpliceMode
	}{{"splice=off", SpliceOff}, {"splice=on", SpliceOn}} {
		t.Run(mode.name, func(t *testing.T) {
			s := serveTest(t, ServeOptions{Workers: 2, Splice: mode.m, Debug: testLogger(t)})
			checkFiles(t, s)
			var spliced uint64
			for _, st := range s.c.WorkerStats() {
				spliced += st.Spliced
			}
			if mode.m == SpliceOn && spliced == 0 {
				t.Errorf("splice=on moved no data by splice")
			}
			if mode.m == SpliceOff && spliced != 0 {
				t.Errorf("splice=off spliced %d times", spliced)
			}
		})
	}
}

func TestServeCancelUnmounts(t *testing.T) {
	s := serveTest(t, ServeOptions{Workers: 2})
	if _, err := os.Stat(filepath.Join(s.mnt, "hello")); err != nil {
		t.Fatal(err)
	}
	s.stop()
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if isMounted(t, s.mnt) {
		t.Fatalf("still mounted after cancel")
	}
	// No dead mount: the directory is an ordinary directory again.
	if _, err := os.Stat(s.mnt); err != nil {
		t.Fatalf("stat mountpoint after unmount: %v", err)
	}
}

func TestServeExternalUmount(t *testing.T) {
	s := serveTest(t, ServeOptions{Workers: 2})
	if _, err := os.Stat(filepath.Join(s.mnt, "hello")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", s.mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after external umount: %v, want nil (clean end)", err)
	}
}

func TestServeCancelBusy(t *testing.T) {
	s := serveTest(t, ServeOptions{Workers: 2})
	fd, err := unix.Open(filepath.Join(s.mnt, "hello"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	s.stop()
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after cancel with a file open: %v", err)
	}
	if isMounted(t, s.mnt) {
		t.Fatalf("still mounted after cancel")
	}
}

// Every worker, each on its own cloned fd, takes part under parallel load.
func TestServeAllWorkersServe(t *testing.T) {
	const workers = 2
	s := serveTest(t, ServeOptions{Workers: workers})
	if _, err := os.Stat(s.mnt); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			fd, err := unix.Open(filepath.Join(s.mnt, "data"), unix.O_RDONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer unix.Close(fd)
			for i := 0; i < 300; i++ {
				if _, err := unix.Pread(fd, buf, int64(i%40)*(64<<10)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := s.c.WorkerStats()
	if len(st) != workers {
		t.Fatalf("%d workers, want %d", len(st), workers)
	}
	for i, w := range st {
		if w.Requests == 0 {
			t.Errorf("worker %d served no request under parallel load: %+v", i, st)
		}
	}
	t.Logf("requests per worker: %+v", st)
}

func testLogger(t *testing.T) *log.Logger {
	if os.Getenv("FUSEDEV_DEBUG") == "" {
		return nil
	}
	return log.New(os.Stderr, t.Name()+": ", log.Lmicroseconds)
}

// With passthrough agreed, reads of a file opened with fs.OpenPassthrough
// never reach the transport.
func TestServePassthrough(t *testing.T) {
	fsys := newTestFS(t)
	fsys.passthrough = true
	s := serveTestFS(t, fsys, ServeOptions{Workers: 1, Passthrough: true})
	if _, err := os.Stat(filepath.Join(s.mnt, "data")); err != nil {
		t.Fatal(err)
	}
	before := s.c.WorkerStats()[0].Requests
	got, err := rawReadFile(filepath.Join(s.mnt, "data"))
	want, _ := os.ReadFile(fsys.data.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read data through passthrough: %d bytes, %v", len(got), err)
	}
	// OPEN, FLUSH, RELEASE and maybe a GETATTR; a served read of 3 MiB
	// would take at least 12 READs more.
	if n := s.c.WorkerStats()[0].Requests - before; n > 6 {
		t.Errorf("reading 3 MiB took %d requests: passthrough not in effect", n)
	}
}
