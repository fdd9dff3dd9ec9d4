package memfs_test

import (
	"bytes"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/memfs"
)

var root = &fs.Context{}

// sink is an fs.Sink over a buffer.
type sink struct {
	buf []byte
	n   int
}

func (s *sink) Cap() int { return len(s.buf) - s.n }
func (s *sink) Len() int { return s.n }
func (s *sink) Append(p []byte) int {
	c := copy(s.buf[s.n:], p)
	s.n += c
	return c
}
func (s *sink) ReadFrom(int, int64, int) (int, fs.Errno) { return 0, syscall.ENOSYS }

type bytesSource []byte

func (b bytesSource) Len() int                           { return len(b) }
func (b bytesSource) CopyTo(p []byte) int                { return copy(p, b) }
func (b bytesSource) WriteTo(int, int64) (int, fs.Errno) { return 0, syscall.ENOSYS }

func create(t *testing.T, fsys *memfs.FS, ctx *fs.Context, parent fs.Inode, name string) (fs.Inode, fs.Handle) {
	t.Helper()
	var e fs.Entry
	var o fs.OpenOut
	if errno := fsys.Create(ctx, parent, []byte(name), 0o644, syscall.O_RDWR, &e, &o); errno != 0 {
		t.Fatalf("create %s: %v", name, errno)
	}
	return e.Ino, o.Handle
}

func write(t *testing.T, fsys *memfs.FS, ino fs.Inode, fh fs.Handle, off int64, data []byte) {
	t.Helper()
	if n, errno := fsys.Write(root, ino, fh, off, bytesSource(data), 0); errno != 0 || int(n) != len(data) {
		t.Fatalf("write %d bytes at %d: %d, %v", len(data), off, n, errno)
	}
}

func read(t *testing.T, fsys *memfs.FS, ino fs.Inode, fh fs.Handle, off int64, size int) []byte {
	t.Helper()
	s := &sink{buf: make([]byte, size)}
	if errno := fsys.Read(root, ino, fh, off, uint32(size), s); errno != 0 {
		t.Fatalf("read %d at %d: %v", size, off, errno)
	}
	return s.buf[:s.n]
}

func attr(t *testing.T, fsys *memfs.FS, ino fs.Inode) fs.Attr {
	t.Helper()
	var a fs.AttrOut
	if errno := fsys.GetAttr(root, ino, 0, false, &a); errno != 0 {
		t.Fatalf("getattr %d: %v", ino, errno)
	}
	return a.Attr
}

// TestSparse: data across page boundaries, holes reading as zeros, a
// write far out using one page, SEEK_DATA/SEEK_HOLE, punch hole and
// truncate returning pages.
func TestSparse(t *testing.T) {
	fsys := memfs.New(&memfs.Options{MaxBytes: 1 << 20})
	ino, fh := create(t, fsys, root, fs.RootInode, "f")
	data := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes: three pages
	write(t, fsys, ino, fh, 100, data)
	if got := read(t, fsys, ino, fh, 0, 20000); len(got) != 10100 || !bytes.Equal(got[100:], data) || !bytes.Equal(got[:100], make([]byte, 100)) {
		t.Fatalf("read back %d bytes", len(got))
	}
	write(t, fsys, ino, fh, 1<<40, []byte("far"))
	a := attr(t, fsys, ino)
	if a.Size != 1<<40+3 || a.Blocks != 4*8 {
		t.Errorf("after a write at 1 TiB: size %d, blocks %d; want %d and 32 (four pages)", a.Size, a.Blocks, 1<<40+3)
	}
	if got := read(t, fsys, ino, fh, 1<<35, 4096); !bytes.Equal(got, make([]byte, 4096)) {
		t.Errorf("the hole at 32 GiB does not read as zeros")
	}
	for _, c := range []struct {
		whence uint32
		off    int64
		want   int64
		errno  fs.Errno
	}{
		{3, 0, 0, 0},                     // SEEK_DATA: page 0 is data
		{4, 0, 3 * 4096, 0},              // SEEK_HOLE: after pages 0-2
		{3, 3 * 4096, 1 << 40, 0},        // the next data is the far page
		{4, 1 << 40, 1<<40 + 3, 0},       // its hole is the end of file
		{3, 1<<40 + 3, 0, syscall.ENXIO}, // at EOF
	} {
		got, errno := fsys.Lseek(root, ino, fh, c.off, c.whence)
		if got != c.want || errno != c.errno {
			t.Errorf("lseek(%d, whence %d) = %d, %v; want %d, %v", c.off, c.whence, got, errno, c.want, c.errno)
		}
	}
	if _, errno := fsys.Write(root, ino, fh, 1<<63-2, bytesSource("xyz"), 0); errno != syscall.EFBIG {
		t.Errorf("write past 2^63-1: %v, want EFBIG", errno)
	}
	if errno := fsys.Fallocate(root, ino, fh, 0, 4096, 0x3); errno != 0 {
		t.Fatal(errno)
	}
	if a := attr(t, fsys, ino); a.Blocks != 3*8 {
		t.Errorf("after punching page 0: %d blocks, want 24", a.Blocks)
	}
	// The cap: 1 MiB is 256 pages; three are held.
	if _, errno := fsys.Write(root, ino, fh, 8192, bytesSource(make([]byte, 2<<20)), 0); errno != 0 {
		t.Logf("a write past the cap: %v", errno) // short or ENOSPC
	}
	_, errno := fsys.Write(root, ino, fh, 16<<20, bytesSource(make([]byte, 4096)), 0)
	if errno != syscall.ENOSPC {
		t.Errorf("a write with the cap used up: %v, want ENOSPC", errno)
	}
	var in fs.SetAttrIn
	in.Valid, in.Size = fs.SetSize, 0
	var ao fs.AttrOut
	if errno := fsys.SetAttr(root, ino, &in, &ao); errno != 0 || ao.Attr.Size != 0 || ao.Attr.Blocks != 0 {
		t.Fatalf("truncate to 0: %v, size %d blocks %d", errno, ao.Attr.Size, ao.Attr.Blocks)
	}
	write(t, fsys, ino, fh, 0, make([]byte, 512<<10)) // the cap's pages are back
}

// TestUnlinkedFreed: an unlinked file's data is freed at its last
// release, and its pages count against the cap no more.
func TestUnlinkedFreed(t *testing.T) {
	fsys := memfs.New(&memfs.Options{MaxBytes: 64 << 10})
	ino, fh := create(t, fsys, root, fs.RootInode, "f")
	write(t, fsys, ino, fh, 0, make([]byte, 60<<10))
	if errno := fsys.Unlink(root, fs.RootInode, []byte("f")); errno != 0 {
		t.Fatal(errno)
	}
	if got := read(t, fsys, ino, fh, 0, 10); len(got) != 10 {
		t.Errorf("read of the open unlinked file: %d bytes", len(got))
	}
	if a := attr(t, fsys, ino); a.Nlink != 0 {
		t.Errorf("nlink %d after unlink, want 0", a.Nlink)
	}
	fsys.Release(root, ino, fh, 0)
	ino2, fh2 := create(t, fsys, root, fs.RootInode, "g")
	write(t, fsys, ino2, fh2, 0, make([]byte, 60<<10)) // fits again
}

func TestRename(t *testing.T) {
	fsys := memfs.New(nil)
	var d1, d2, sub fs.Entry
	fsys.Mkdir(root, fs.RootInode, []byte("d1"), 0o755, &d1)
	fsys.Mkdir(root, fs.RootInode, []byte("d2"), 0o755, &d2)
	fsys.Mkdir(root, d1.Ino, []byte("sub"), 0o755, &sub)
	a, _ := create(t, fsys, root, d1.Ino, "a")
	b, _ := create(t, fsys, root, d2.Ino, "b")
	for _, c := range []struct {
		what    string
		from    fs.Inode
		name    string
		to      fs.Inode
		newName string
		flags   uint32
		want    fs.Errno
	}{
		{"a directory under itself", fs.RootInode, "d1", sub.Ino, "x", 0, syscall.EINVAL},
		{"a file over a directory", d1.Ino, "a", fs.RootInode, "d2", 0, syscall.EISDIR},
		{"a directory over a file", d1.Ino, "sub", d2.Ino, "b", 0, syscall.ENOTDIR},
		{"onto a non-empty directory", fs.RootInode, "d2", fs.RootInode, "d1", 0, syscall.ENOTEMPTY},
		{"NOREPLACE onto a name", d1.Ino, "a", d2.Ino, "b", 1, syscall.EEXIST},
		{"EXCHANGE with nothing", d1.Ino, "a", d2.Ino, "none", 2, syscall.ENOENT},
		{"a missing name", d1.Ino, "none", d2.Ino, "x", 0, syscall.ENOENT},
		{"both flags", d1.Ino, "a", d2.Ino, "b", 3, syscall.EINVAL},
		{"EXCHANGE a and b", d1.Ino, "a", d2.Ino, "b", 2, 0},
		{"sub across", d1.Ino, "sub", d2.Ino, "sub2", 0, 0},
		{"over a file", d1.Ino, "a", d2.Ino, "b", 0, 0},
	} {
		if errno := fsys.Rename(root, c.from, []byte(c.name), c.to, []byte(c.newName), c.flags); errno != c.want {
			t.Errorf("rename %s: %v, want %v", c.what, errno, c.want)
		}
	}
	// After the exchange d1/a is b's file and d2/b a's; then d1/a
	// replaced d2/b: d2/b is the old b, a is gone (nlink 0).
	var e fs.Entry
	if errno := fsys.Lookup(root, d2.Ino, []byte("b"), &e); errno != 0 || e.Ino != b {
		t.Errorf("d2/b is %d (%v), want %d", e.Ino, errno, b)
	}
	if at := attr(t, fsys, a); at.Nlink != 0 {
		t.Errorf("the replaced file has nlink %d, want 0", at.Nlink)
	}
	if at := attr(t, fsys, d1.Ino); at.Nlink != 2 {
		t.Errorf("d1 has nlink %d after its subdirectory moved out, want 2", at.Nlink)
	}
	if at := attr(t, fsys, d2.Ino); at.Nlink != 3 {
		t.Errorf("d2 has nlink %d with one subdirectory, want 3", at.Nlink)
	}
	if errno := fsys.Lookup(root, sub.Ino, []byte(".."), &e); errno != 0 || e.Ino != d2.Ino {
		t.Errorf("sub's .. is %d, want d2 (%d)", e.Ino, d2.Ino)
	}
}

// TestLocks: POSIX ranges split and merge per owner; a blocked waiter
// gets the lock when it is released; an interrupt ends a wait with EINTR;
// releasing the open drops the locks taken through it.
func TestLocks(t *testing.T) {
	fsys := memfs.New(nil)
	ino, fh := create(t, fsys, root, fs.RootInode, "f")
	lk := func(owner uint64, start, end uint64, typ uint32) fs.Errno {
		return fsys.SetLk(root, ino, fh, owner, &fs.Lock{Start: start, End: end, Type: typ}, false, false)
	}
	getlk := func(owner uint64, start, end uint64, typ uint32) fs.Lock {
		var out fs.Lock
		if errno := fsys.GetLk(root, ino, fh, owner, &fs.Lock{Start: start, End: end, Type: typ}, &out); errno != 0 {
			t.Fatal(errno)
		}
		return out
	}
	const a, b = 1, 2
	if e := lk(a, 0, 99, syscall.F_WRLCK); e != 0 {
		t.Fatal(e)
	}
	if e := lk(a, 40, 59, syscall.F_UNLCK); e != 0 { // a holds 0-39 and 60-99
		t.Fatal(e)
	}
	if e := lk(b, 40, 59, syscall.F_WRLCK); e != 0 {
		t.Errorf("b locking the hole a left: %v", e)
	}
	if e := lk(b, 30, 45, syscall.F_RDLCK); e != syscall.EAGAIN {
		t.Errorf("b over a's 0-39: %v, want EAGAIN", e)
	}
	if c := getlk(b, 60, 1<<63-1, syscall.F_RDLCK); c.Type != syscall.F_WRLCK || c.Start != 60 || c.End != 99 {
		t.Errorf("getlk for b from 60: %+v, want a's 60-99 write lock", c)
	}
	if c := getlk(a, 0, 1<<63-1, syscall.F_WRLCK); c.Type != syscall.F_WRLCK || c.Start != 40 || c.End != 59 {
		t.Errorf("getlk for a: %+v, want b's 40-59", c)
	}

	// b waits for a's 60-99, a unlocks: b gets it.
	got := make(chan fs.Errno, 1)
	go func() {
		ctx := &fs.Context{}
		ctx.SetInterrupt(&fs.Interrupt{})
		got <- fsys.SetLk(ctx, ino, fh, b, &fs.Lock{Start: 70, End: 80, Type: syscall.F_WRLCK}, true, false)
	}()
	select {
	case e := <-got:
		t.Fatalf("a waiter returned %v while a holds the lock", e)
	case <-time.After(50 * time.Millisecond):
	}
	lk(a, 0, 1<<63-1, syscall.F_UNLCK)
	select {
	case e := <-got:
		if e != 0 {
			t.Errorf("the waiter: %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock 10 s after it was released")
	}

	// An interrupted waiter gets EINTR.
	var intr fs.Interrupt
	go func() {
		ctx := &fs.Context{}
		ctx.SetInterrupt(&intr)
		got <- fsys.SetLk(ctx, ino, fh, a, &fs.Lock{Start: 70, End: 70, Type: syscall.F_RDLCK}, true, false)
	}()
	time.Sleep(20 * time.Millisecond)
	intr.Set()
	select {
	case e := <-got:
		if e != syscall.EINTR {
			t.Errorf("interrupted waiter: %v, want EINTR", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an interrupt did not end the wait")
	}

	// flock: whole file, apart from POSIX locks; the release of the open
	// drops b's locks of both kinds.
	if e := fsys.SetLk(root, ino, fh, a, &fs.Lock{Type: syscall.F_WRLCK}, false, true); e != 0 {
		t.Errorf("flock by a (b holds POSIX locks only): %v", e)
	}
	_, fh2 := fh, fs.Handle(0)
	var o fs.OpenOut
	fsys.Open(root, ino, syscall.O_RDWR, 0, &o)
	fh2 = o.Handle
	if e := fsys.SetLk(root, ino, fh2, b, &fs.Lock{Type: syscall.F_RDLCK}, false, true); e != syscall.EAGAIN {
		t.Errorf("flock by b while a holds one: %v, want EAGAIN", e)
	}
	fsys.Release(root, ino, fh, 0) // a's flock and b's POSIX locks (taken through fh) go
	if e := fsys.SetLk(root, ino, fh2, a+10, &fs.Lock{Start: 0, End: 1<<63 - 1, Type: syscall.F_WRLCK}, false, false); e != 0 {
		t.Errorf("after the open was released, its locks remain: %v", e)
	}
	if e := fsys.SetLk(root, ino, fh2, b, &fs.Lock{Type: syscall.F_WRLCK}, false, true); e != 0 {
		t.Errorf("flock after the holder's open was released: %v", e)
	}
}

// TestSetgidDir: in a set-group-ID directory new nodes get its group, and
// new directories the bit.
func TestSetgidDir(t *testing.T) {
	fsys := memfs.New(nil)
	var d fs.Entry
	fsys.Mkdir(root, fs.RootInode, []byte("d"), 0o2775, &d)
	var in fs.SetAttrIn
	in.Valid, in.Gid = fs.SetGid, 500
	var ao fs.AttrOut
	fsys.SetAttr(root, d.Ino, &in, &ao)
	user := &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1000}}
	var sub, f fs.Entry
	fsys.Mkdir(user, d.Ino, []byte("sub"), 0o755, &sub)
	fsys.Mknod(user, d.Ino, []byte("f"), syscall.S_IFREG|0o644, 0, &f)
	if sub.Attr.Gid != 500 || sub.Attr.Mode != syscall.S_IFDIR|0o2755 || sub.Attr.Uid != 1000 {
		t.Errorf("subdirectory: uid %d gid %d mode %o; want 1000, 500, 42755", sub.Attr.Uid, sub.Attr.Gid, sub.Attr.Mode)
	}
	if f.Attr.Gid != 500 || f.Attr.Mode != syscall.S_IFREG|0o644 {
		t.Errorf("file: gid %d mode %o; want 500, 100644", f.Attr.Gid, f.Attr.Mode)
	}
}

// TestConcurrent: creates, writes, reads, renames and unlinks in many
// goroutines (run with -race); every file ends with what its writer
// wrote.
func TestConcurrent(t *testing.T) {
	fsys := memfs.New(nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := &fs.Context{}
			for i := range 200 {
				name := fmt.Sprintf("g%d-%d", g, i)
				var e fs.Entry
				var o fs.OpenOut
				if errno := fsys.Create(ctx, fs.RootInode, []byte(name), 0o644, syscall.O_RDWR, &e, &o); errno != 0 {
					t.Error(errno)
					return
				}
				fsys.Write(ctx, e.Ino, o.Handle, 0, bytesSource(name), 0)
				s := &sink{buf: make([]byte, 64)}
				fsys.Read(ctx, e.Ino, o.Handle, 0, 64, s)
				if string(s.buf[:s.n]) != name {
					t.Errorf("%s reads %q", name, s.buf[:s.n])
				}
				fsys.Release(ctx, e.Ino, o.Handle, 0)
				fsys.Rename(ctx, fs.RootInode, []byte(name), fs.RootInode, []byte(name+"r"), 0)
				if i%2 == 0 {
					fsys.Unlink(ctx, fs.RootInode, []byte(name+"r"))
				}
				fsys.Forget(e.Ino, 1)
			}
		}()
	}
	wg.Wait()
	var n int
	d := &dirSink{}
	var o fs.OpenOut
	fsys.OpenDir(root, fs.RootInode, 0, &o)
	fsys.ReadDir(root, fs.RootInode, o.Handle, 0, d)
	n = len(d.names) - 2
	if n != 8*100 {
		t.Errorf("%d names left, want 800", n)
	}
}

type dirSink struct{ names []string }

func (d *dirSink) Plus() bool { return false }
func (d *dirSink) Add(e fs.DirEntry, _ *fs.Entry) bool {
	d.names = append(d.names, string(e.Name))
	return true
}

// TestSetTimes: explicit times keep their nanoseconds; "now" (sent with
// the time bit, as FUSE and 9P do) is now, not the zero value beside it.
func TestSetTimes(t *testing.T) {
	fsys := memfs.New(nil)
	ino, _ := create(t, fsys, root, fs.RootInode, "f")
	var ao fs.AttrOut
	in := fs.SetAttrIn{Valid: fs.SetAtime | fs.SetMtime, Atime: 1e9, AtimeNsec: 123456789, Mtime: 12e8, MtimeNsec: 987654321}
	if errno := fsys.SetAttr(root, ino, &in, &ao); errno != 0 || ao.Attr.Atime != 1e9 || ao.Attr.AtimeNsec != 123456789 || ao.Attr.Mtime != 12e8 || ao.Attr.MtimeNsec != 987654321 {
		t.Errorf("explicit times: %v, %+v", errno, ao.Attr)
	}
	before := uint64(time.Now().Unix())
	in = fs.SetAttrIn{Valid: fs.SetAtime | fs.SetAtimeNow | fs.SetMtime | fs.SetMtimeNow}
	if errno := fsys.SetAttr(root, ino, &in, &ao); errno != 0 || ao.Attr.Atime < before || ao.Attr.Mtime < before {
		t.Errorf("times set to now: %v, atime %d mtime %d, want ≥ %d", errno, ao.Attr.Atime, ao.Attr.Mtime, before)
	}
}
