package passthrough

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

func TestNewErrors(t *testing.T) {
	if _, err := New("/nonexistent/dir", Options{}); err == nil {
		t.Error("New on a missing dir succeeded")
	}
	f := t.TempDir() + "/file"
	writeFile(t, f, "x", 0o644)
	if _, err := New(f, Options{}); err == nil {
		t.Error("New on a file succeeded")
	}
	if _, err := New(t.TempDir(), Options{Cache: 42}); err == nil {
		t.Error("New with a bad cache mode succeeded")
	}
}

func TestParseCacheMode(t *testing.T) {
	for s, want := range map[string]CacheMode{"auto": CacheAuto, "always": CacheAlways, "never": CacheNever, "metadata": CacheMetadata} {
		got, err := ParseCacheMode(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("ParseCacheMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseCacheMode("sometimes"); err == nil {
		t.Error("ParseCacheMode accepted nonsense")
	}
}

// TestCacheMetadata: names and attributes cached a day, file data not
// cached (direct I/O), directories cached (virtiofsd's --cache=metadata).
func TestCacheMetadata(t *testing.T) {
	f, dir := newTestFS(t, Options{Cache: CacheMetadata})
	writeFile(t, join(dir, "a"), "hello", 0o644)
	e := lookup(t, f, fs.RootInode, "a")
	if e.EntryTimeout != alwaysTimeout || e.AttrTimeout != alwaysTimeout {
		t.Errorf("timeouts %v/%v, want %v", e.EntryTimeout, e.AttrTimeout, alwaysTimeout)
	}
	var o fs.OpenOut
	if errno := f.Open(rootCtx, e.Ino, syscall.O_RDONLY, 0, &o); errno != 0 {
		t.Fatal(errno)
	}
	if o.Flags&fs.OpenDirectIO == 0 || o.Flags&fs.OpenKeepCache != 0 {
		t.Errorf("file open flags %#x: want direct I/O, no keep-cache", o.Flags)
	}
	f.Release(rootCtx, e.Ino, o.Handle, 0)
	var d fs.OpenOut
	if errno := f.OpenDir(rootCtx, fs.RootInode, 0, &d); errno != 0 {
		t.Fatal(errno)
	}
	if d.Flags&fs.OpenCacheDir == 0 {
		t.Errorf("dir open flags %#x: want cache-dir", d.Flags)
	}
	f.ReleaseDir(rootCtx, fs.RootInode, d.Handle)
}

func TestLookupGetAttr(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "a"), "hello", 0o640)
	if err := os.Link(join(dir, "a"), join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(join(dir, "sub"), 0o755)

	e := lookup(t, f, fs.RootInode, "a")
	st := lstat(t, join(dir, "a"))
	if e.Ino <= fs.RootInode || e.Attr.Ino != st.Ino || e.Attr.Size != 5 || e.Attr.Mode != st.Mode || e.Attr.Nlink != 2 {
		t.Errorf("entry %+v, host %+v", e, st)
	}
	if e.Generation != f.gen || e.EntryTimeout != autoTimeout || e.AttrTimeout != autoTimeout {
		t.Errorf("generation/timeouts: %+v", e)
	}
	h := lookup(t, f, fs.RootInode, "hard")
	if h.Ino != e.Ino {
		t.Errorf("hard link got inode %d, want %d", h.Ino, e.Ino)
	}
	if n := f.inodes.nlookupOf(e.Ino); n != 2 {
		t.Errorf("nlookup %d, want 2", n)
	}
	var out fs.AttrOut
	if errno := f.GetAttr(rootCtx, e.Ino, 0, false, &out); errno != 0 || out.Attr != e.Attr {
		t.Errorf("GetAttr = %v, %+v; want %+v", errno, out.Attr, e.Attr)
	}
	if errno := f.GetAttr(rootCtx, 999999, 0, false, &out); errno != syscall.ESTALE {
		t.Errorf("GetAttr(unknown) = %v, want ESTALE", errno)
	}

	// Errors, compared with the host where the host has an answer.
	var x fs.Entry
	// cache=auto (newTestFS's default) caches an absent name: no error,
	// Ino 0, the entry timeout of names.
	if errno := f.Lookup(rootCtx, fs.RootInode, []byte("missing"), &x); errno != 0 || x.Ino != 0 || x.EntryTimeout != autoTimeout {
		t.Errorf("missing: %v, %+v; want a negative entry for %v", errno, x, autoTimeout)
	}
	_, herr := os.Lstat(join(dir, "a", "x"))
	wantErrno(t, "lookup in a file", f.Lookup(rootCtx, e.Ino, []byte("x"), &x), hostErrno(herr))
	wantErrno(t, "slash", f.Lookup(rootCtx, fs.RootInode, []byte("sub/x"), &x), syscall.EINVAL)
	wantErrno(t, "NUL", f.Lookup(rootCtx, fs.RootInode, []byte("a\x00"), &x), syscall.EINVAL)
	wantErrno(t, "empty", f.Lookup(rootCtx, fs.RootInode, nil, &x), syscall.ENOENT)
	long := bytes.Repeat([]byte("n"), 256)
	_, herr = os.Lstat(join(dir, string(long)))
	wantErrno(t, "long", f.Lookup(rootCtx, fs.RootInode, long, &x), hostErrno(herr))

	// "." and "..".
	if r := lookup(t, f, fs.RootInode, ".."); r.Ino != fs.RootInode {
		t.Errorf(`".." of root = %d`, r.Ino)
	}
	if r := lookup(t, f, fs.RootInode, "."); r.Ino != fs.RootInode {
		t.Errorf(`"." of root = %d`, r.Ino)
	}
	sub := lookup(t, f, fs.RootInode, "sub")
	if r := lookup(t, f, sub.Ino, ".."); r.Ino != fs.RootInode {
		t.Errorf(`".." of sub = %d`, r.Ino)
	}
	if r := lookup(t, f, sub.Ino, "."); r.Ino != sub.Ino {
		t.Errorf(`"." of sub = %d, want %d`, r.Ino, sub.Ino)
	}
}

func TestForgetLifecycle(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "a"), "", 0o644)
	fds0 := openFds(t)
	e1 := lookup(t, f, fs.RootInode, "a")
	lookup(t, f, fs.RootInode, "a")
	if f.inodes.count() != 2 {
		t.Fatalf("table has %d inodes, want 2", f.inodes.count())
	}
	f.Forget(e1.Ino, 1)
	var out fs.AttrOut
	if e := f.GetAttr(rootCtx, e1.Ino, 0, false, &out); e != 0 {
		t.Fatalf("GetAttr after one of two forgets: %v", e)
	}
	// An open handle keeps the fd of a forgotten inode usable.
	fh := open(t, f, e1.Ino, unix.O_RDONLY)
	f.Forget(e1.Ino, 1)
	if e := f.GetAttr(rootCtx, e1.Ino, 0, false, &out); e != syscall.ESTALE {
		t.Fatalf("GetAttr after forget = %v, want ESTALE", e)
	}
	if e := f.GetAttr(rootCtx, e1.Ino, fh, true, &out); e != 0 {
		t.Fatalf("GetAttr via handle of forgotten inode: %v", e)
	}
	f.Release(rootCtx, e1.Ino, fh, 0)
	// Forgetting too much, twice, or the root does no harm.
	f.Forget(e1.Ino, 5)
	f.Forget(fs.RootInode, 100)
	if e := f.GetAttr(rootCtx, fs.RootInode, 0, false, &out); e != 0 {
		t.Fatalf("root GetAttr after forget: %v", e)
	}
	if got := openFds(t); got != fds0 {
		t.Errorf("open fds %d, want %d: an inode or handle fd leaked", got, fds0)
	}
	e2 := lookup(t, f, fs.RootInode, "a")
	if e2.Ino <= e1.Ino {
		t.Errorf("ID %d reused or went back (was %d)", e2.Ino, e1.Ino)
	}
}

func TestReadWrite(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	var e fs.Entry
	var oo fs.OpenOut
	if errno := f.Create(rootCtx, fs.RootInode, []byte("f"), 0o644, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Fatal(errno)
	}
	if st := lstat(t, join(dir, "f")); st.Mode != unix.S_IFREG|0o644 || st.Ino != e.Attr.Ino {
		t.Errorf("created %o ino %d, entry %+v", st.Mode, st.Ino, e.Attr)
	}
	data := []byte("0123456789abcdef")
	n, errno := f.Write(rootCtx, e.Ino, oo.Handle, 4, &bufSource{data}, 0)
	if errno != 0 || n != uint32(len(data)) {
		t.Fatalf("Write = %d, %v", n, errno)
	}
	got, _ := os.ReadFile(join(dir, "f"))
	if want := append(make([]byte, 4), data...); !bytes.Equal(got, want) {
		t.Errorf("host file %q, want %q", got, want)
	}
	s := newSink(64)
	if errno := f.Read(rootCtx, e.Ino, oo.Handle, 6, 8, s); errno != 0 || string(s.Bytes()) != "23456789" {
		t.Errorf("Read = %q, %v", s.Bytes(), errno)
	}
	s = newSink(64)
	if errno := f.Read(rootCtx, e.Ino, oo.Handle, 100, 8, s); errno != 0 || s.Len() != 0 {
		t.Errorf("Read past EOF = %q, %v", s.Bytes(), errno)
	}
	s = newSink(3) // the sink's capacity bounds the read
	if errno := f.Read(rootCtx, e.Ino, oo.Handle, 4, 100, s); errno != 0 || string(s.Bytes()) != "012" {
		t.Errorf("Read into small sink = %q, %v", s.Bytes(), errno)
	}
	if errno := f.Read(rootCtx, e.Ino, oo.Handle, -1, 8, newSink(8)); errno != syscall.EINVAL {
		t.Errorf("Read at -1 = %v", errno)
	}
	if errno := f.Read(rootCtx, e.Ino, 12345, 0, 8, newSink(8)); errno != syscall.EBADF {
		t.Errorf("Read of unknown handle = %v", errno)
	}
	if errno := f.Flush(rootCtx, e.Ino, oo.Handle, 1); errno != 0 {
		t.Errorf("Flush: %v", errno)
	}
	if errno := f.Fsync(rootCtx, e.Ino, oo.Handle, true); errno != 0 {
		t.Errorf("Fsync: %v", errno)
	}
	if errno := f.Release(rootCtx, e.Ino, oo.Handle, 0); errno != 0 {
		t.Errorf("Release: %v", errno)
	}
	if errno := f.Release(rootCtx, e.Ino, oo.Handle, 0); errno != syscall.EBADF {
		t.Errorf("second Release: %v", errno)
	}

	// A read-only handle refuses writes as the host does.
	ro := open(t, f, e.Ino, unix.O_RDONLY)
	hf, _ := os.Open(join(dir, "f"))
	_, herr := hf.WriteAt([]byte("x"), 0)
	hf.Close()
	_, errno = f.Write(rootCtx, e.Ino, ro, 0, &bufSource{[]byte("x")}, 0)
	wantErrno(t, "write on O_RDONLY", errno, hostErrno(herr))
	f.Release(rootCtx, e.Ino, ro, 0)

	// O_TRUNC through Open; O_APPEND passes through.
	tr := open(t, f, e.Ino, unix.O_WRONLY|unix.O_TRUNC|unix.O_APPEND)
	f.Write(rootCtx, e.Ino, tr, 0, &bufSource{[]byte("ab")}, 0)
	f.Write(rootCtx, e.Ino, tr, 0, &bufSource{[]byte("cd")}, 0)
	f.Release(rootCtx, e.Ino, tr, 0)
	if got, _ := os.ReadFile(join(dir, "f")); string(got) != "abcd" {
		t.Errorf("after O_TRUNC|O_APPEND writes: %q", got)
	}

	// Create with O_EXCL on an existing name.
	var e2 fs.Entry
	var o2 fs.OpenOut
	_, herr = os.OpenFile(join(dir, "f"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	wantErrno(t, "O_EXCL", f.Create(rootCtx, fs.RootInode, []byte("f"), 0o644, unix.O_RDWR|unix.O_EXCL, &e2, &o2), hostErrno(herr))
	// Create without O_EXCL opens the existing file, the same inode.
	if errno := f.Create(rootCtx, fs.RootInode, []byte("f"), 0o644, unix.O_RDWR, &e2, &o2); errno != 0 || e2.Ino != e.Ino {
		t.Errorf("Create existing = %v, ino %d want %d", errno, e2.Ino, e.Ino)
	}
	f.Release(rootCtx, e2.Ino, o2.Handle, 0)
}

func TestDirOps(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	var e fs.Entry
	if errno := f.Mkdir(rootCtx, fs.RootInode, []byte("d"), 0o750, &e); errno != 0 {
		t.Fatal(errno)
	}
	if st := lstat(t, join(dir, "d")); st.Mode != unix.S_IFDIR|0o750 || e.Attr.Mode != st.Mode {
		t.Errorf("mkdir mode %o, entry %o", st.Mode, e.Attr.Mode)
	}
	d := e.Ino
	herr := os.Mkdir(join(dir, "d"), 0o755)
	wantErrno(t, "mkdir existing", f.Mkdir(rootCtx, fs.RootInode, []byte("d"), 0o755, &e), hostErrno(herr))
	wantErrno(t, `mkdir "."`, f.Mkdir(rootCtx, d, []byte("."), 0o755, &e), hostErrno(os.Mkdir(join(dir, "d")+"/.", 0o755)))
	wantErrno(t, `mkdir ".."`, f.Mkdir(rootCtx, d, []byte(".."), 0o755, &e), hostErrno(os.Mkdir(join(dir, "d")+"/..", 0o755)))

	writeFile(t, join(dir, "d", "file"), "x", 0o644)
	wantErrno(t, "rmdir non-empty", f.Rmdir(rootCtx, fs.RootInode, []byte("d")), hostErrno(unix.Rmdir(join(dir, "d"))))
	wantErrno(t, "rmdir file", f.Rmdir(rootCtx, d, []byte("file")), hostErrno(unix.Rmdir(join(dir, "d", "file"))))
	wantErrno(t, "unlink dir", f.Unlink(rootCtx, fs.RootInode, []byte("d")), hostErrno(unix.Unlink(join(dir, "d"))))
	wantErrno(t, `rmdir "."`, f.Rmdir(rootCtx, d, []byte(".")), hostErrno(unix.Rmdir(join(dir, "d")+"/.")))
	wantErrno(t, `rmdir ".."`, f.Rmdir(rootCtx, d, []byte("..")), hostErrno(unix.Rmdir(join(dir, "d")+"/..")))
	wantErrno(t, `unlink ".."`, f.Unlink(rootCtx, d, []byte("..")), hostErrno(unix.Unlink(join(dir, "d")+"/..")))
	wantErrno(t, "unlink missing", f.Unlink(rootCtx, d, []byte("nope")), hostErrno(unix.Unlink(join(dir, "d", "nope"))))
	if errno := f.Unlink(rootCtx, d, []byte("file")); errno != 0 {
		t.Fatal(errno)
	}
	if errno := f.Rmdir(rootCtx, fs.RootInode, []byte("d")); errno != 0 {
		t.Fatal(errno)
	}
	if _, err := os.Lstat(join(dir, "d")); !os.IsNotExist(err) {
		t.Errorf("d still there: %v", err)
	}
	// The forgotten-by-host directory inode is stale-but-safe.
	wantErrno(t, "mkdir in removed dir", f.Mkdir(rootCtx, d, []byte("x"), 0o755, &e), syscall.ENOENT)

	var sfs fs.StatFs
	var hs unix.Statfs_t
	unix.Statfs(dir, &hs)
	if errno := f.StatFs(rootCtx, fs.RootInode, &sfs); errno != 0 || sfs.Blocks != hs.Blocks || sfs.Bsize != uint32(hs.Bsize) || sfs.NameLen != uint32(hs.Namelen) {
		t.Errorf("StatFs = %v %+v, host %+v", errno, sfs, hs)
	}
}

// TestForgetDuringUse: a Forget that drops the last lookup while a request
// still uses the inode must not close the fd under that request.
func TestForgetDuringUse(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "a"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "a")
	in := f.inodes.get(e.Ino) // what a request in flight holds
	fd := in.fd
	f.Forget(e.Ino, 1)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		t.Fatalf("fd closed while a request holds the inode: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != e.Attr.Ino {
		t.Fatalf("fd no longer the inode's: %v", err)
	}
	f.inodes.put(in)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Errorf("fd still open after the last reference went")
	}
}
