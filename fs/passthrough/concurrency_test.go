package passthrough

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// TestConcurrentLifecycle hammers lookup/forget/getattr/open/read/write/
// readdirplus on the same names from many goroutines (run with -race).
// Every lookup is balanced by a forget, so at the end only the root is
// left and every fd is closed. newTestFS keeps inodes as file handles with
// the smallest fd cache: "evicted" names 4 times more files than it holds,
// so lookups find inodes whose fd the cache closed (matched by handle and
// given the lookup's fd: thousands per run) while others forget them and
// the cache closes fds again.
func TestConcurrentLifecycle(t *testing.T) {
	t.Run("cached", func(t *testing.T) { testConcurrentLifecycle(t, 8) })
	t.Run("evicted", func(t *testing.T) { testConcurrentLifecycle(t, 4*MinFdCache) })
}

func testConcurrentLifecycle(t *testing.T, files int) {
	f, dir := newTestFS(t, Options{})
	for i := range files {
		writeFile(t, join(dir, fmt.Sprintf("f%d", i)), "0123456789", 0o644)
	}
	fds0 := openFds(t)
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				name := []byte(fmt.Sprintf("f%d", (i+w)%files))
				var e fs.Entry
				if errno := f.Lookup(rootCtx, fs.RootInode, name, &e); errno != 0 {
					errs <- fmt.Sprintf("Lookup %s: %v", name, errno)
					return
				}
				var ao fs.AttrOut
				if errno := f.GetAttr(rootCtx, e.Ino, 0, false, &ao); errno != 0 || ao.Attr.Size != 10 {
					errs <- fmt.Sprintf("GetAttr %s: %v size %d", name, errno, ao.Attr.Size)
					return
				}
				switch i % 3 {
				case 0:
					var oo fs.OpenOut
					if errno := f.Open(rootCtx, e.Ino, unix.O_RDWR, 0, &oo); errno != 0 {
						errs <- fmt.Sprintf("Open: %v", errno)
						return
					}
					s := newSink(16)
					if errno := f.Read(rootCtx, e.Ino, oo.Handle, 0, 16, s); errno != 0 || s.Len() != 10 {
						errs <- fmt.Sprintf("Read: %v %d", errno, s.Len())
					}
					f.Write(rootCtx, e.Ino, oo.Handle, 0, &bufSource{[]byte("0123")}, 0)
					f.Release(rootCtx, e.Ino, oo.Handle, 0)
				case 1:
					var oo fs.OpenOut
					if errno := f.OpenDir(rootCtx, fs.RootInode, 0, &oo); errno != 0 {
						errs <- fmt.Sprintf("OpenDir: %v", errno)
						return
					}
					s := &dirSink{plus: true, max: 4}
					f.ReadDir(rootCtx, fs.RootInode, oo.Handle, 0, s)
					for _, de := range s.ents {
						if de.entry != nil {
							f.Forget(de.entry.Ino, 1)
						}
					}
					f.ReleaseDir(rootCtx, fs.RootInode, oo.Handle)
				}
				f.Forget(e.Ino, 1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := f.inodes.count(); n != 1 {
		t.Errorf("%d inodes left, want only the root", n)
	}
	if n := f.handles.count(); n != 0 {
		t.Errorf("%d handles left", n)
	}
	if got := openFds(t); got != fds0 {
		t.Errorf("open fds %d, want %d", got, fds0)
	}
}

// TestHotPathAllocs proves the hot paths allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), string(make([]byte, 8192)), 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	fh := open(t, f, e.Ino, unix.O_RDWR)
	var ao fs.AttrOut
	var le fs.Entry
	name := []byte("f")
	sink := newSink(4096)
	src := &bufSource{make([]byte, 4096)}
	var xattrBuf [64]byte
	dh := openDir(t, f, fs.RootInode)
	ds := &countSink{}
	fx, _ := newTestFS(t, Options{Xattr: true})
	for what, fn := range map[string]func(){
		"GetAttr":        func() { f.GetAttr(rootCtx, e.Ino, 0, false, &ao) },
		"GetAttr handle": func() { f.GetAttr(rootCtx, e.Ino, fh, true, &ao) },
		"Lookup":         func() { f.Lookup(rootCtx, fs.RootInode, name, &le); f.Forget(e.Ino, 1) },
		"Read":           func() { sink.n = 0; f.Read(rootCtx, e.Ino, fh, 0, 4096, sink) },
		"Write":          func() { f.Write(rootCtx, e.Ino, fh, 0, src, 0) },
		"GetXattr":       func() { fx.GetXattr(rootCtx, fs.RootInode, []byte("security.capability"), xattrBuf[:]) },
		"ReadDirPlus": func() {
			ds.n, ds.ids = 0, ds.ids[:0]
			f.ReadDir(rootCtx, fs.RootInode, dh, 0, ds)
			for _, id := range ds.ids {
				f.Forget(id, 1)
			}
		},
	} {
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", what, n)
		}
	}
}

// countSink is a READDIRPLUS sink that allocates nothing: it counts
// entries and keeps the IDs to forget.
type countSink struct {
	n   int
	ids []fs.Inode
	buf [16]fs.Inode
}

func (c *countSink) Plus() bool { return true }
func (c *countSink) Add(e fs.DirEntry, plus *fs.Entry) bool {
	if c.ids == nil {
		c.ids = c.buf[:0]
	}
	if len(c.ids) == cap(c.ids) {
		return false
	}
	c.n++
	if plus != nil {
		c.ids = append(c.ids, plus.Ino)
	}
	return true
}

func benchFS(b *testing.B) (*FS, fs.Entry, fs.Handle) {
	f, dir := newTestFS(b, Options{})
	writeFile(b, join(dir, "f"), string(make([]byte, 1<<20)), 0o644)
	e := lookup(b, f, fs.RootInode, "f")
	return f, e, open(b, f, e.Ino, unix.O_RDWR)
}

func BenchmarkGetAttr(b *testing.B) {
	f, e, _ := benchFS(b)
	var ao fs.AttrOut
	b.ReportAllocs()
	for b.Loop() {
		f.GetAttr(rootCtx, e.Ino, 0, false, &ao)
	}
}

func BenchmarkGetAttrParallel(b *testing.B) {
	f, e, _ := benchFS(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ao fs.AttrOut
		for pb.Next() {
			f.GetAttr(rootCtx, e.Ino, 0, false, &ao)
		}
	})
}

func BenchmarkLookupExisting(b *testing.B) {
	f, e, _ := benchFS(b)
	name := []byte("f")
	var le fs.Entry
	b.ReportAllocs()
	for b.Loop() {
		f.Lookup(rootCtx, fs.RootInode, name, &le)
		f.Forget(e.Ino, 1)
	}
}

func BenchmarkRead4K(b *testing.B) {
	f, e, fh := benchFS(b)
	sink := newSink(4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		sink.n = 0
		f.Read(rootCtx, e.Ino, fh, off, 4096, sink)
		off = (off + 4096) % (1 << 20)
	}
}

func BenchmarkWrite4K(b *testing.B) {
	f, e, fh := benchFS(b)
	src := &bufSource{make([]byte, 4096)}
	b.SetBytes(4096)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		f.Write(rootCtx, e.Ino, fh, off, src, 0)
		off = (off + 4096) % (1 << 20)
	}
}

// BenchmarkWrite4KKillSuidGid: the write of an unprivileged caller with
// KILLPRIV_V2, which carries WriteKillSuidGid on every write.
func BenchmarkWrite4KKillSuidGid(b *testing.B) {
	f, e, fh := benchFS(b)
	src := &bufSource{make([]byte, 4096)}
	b.SetBytes(4096)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		f.Write(rootCtx, e.Ino, fh, off, src, fs.WriteKillSuidGid)
		off = (off + 4096) % (1 << 20)
	}
}

// Baselines: the bare system calls the benchmarks above wrap, to read
// the FS's overhead off the difference.

func BenchmarkBaselineFstat(b *testing.B) {
	_, e, _ := benchFS(b)
	_ = e
	fd, err := unix.Open(b.TempDir(), unix.O_PATH, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	b.ReportAllocs()
	for b.Loop() {
		unix.Fstat(fd, &st)
	}
}

func BenchmarkBaselinePread4K(b *testing.B) {
	f, _, fh := benchFS(b)
	h := f.handles.get(fh)
	defer f.putHandle(h)
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		unix.Pread(h.fd, buf, off)
		off = (off + 4096) % (1 << 20)
	}
}

// BenchmarkMkdirAsCaller measures a creating request with the identity
// switch (uid 1000) against one that needs none (uid 0).
func BenchmarkMkdirAsCaller(b *testing.B) {
	for _, c := range []struct {
		name string
		ctx  *fs.Context
	}{{"root", rootCtx}, {"uid1000", &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1000}}}} {
		b.Run(c.name, func(b *testing.B) {
			f, _ := newTestFS(b, Options{})
			var e fs.Entry
			name := make([]byte, 0, 16)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				name = fmt.Appendf(name[:0], "d%d", i)
				i++
				if errno := f.Mkdir(c.ctx, fs.RootInode, name, 0o755, &e); errno != 0 {
					b.Fatal(errno)
				}
				f.Forget(e.Ino, 1)
			}
		})
	}
}
