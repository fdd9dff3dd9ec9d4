package passthrough

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

func setattr(t testing.TB, f *FS, ino fs.Inode, in fs.SetAttrIn) fs.AttrOut {
	t.Helper()
	var out fs.AttrOut
	if e := f.SetAttr(rootCtx, ino, &in, &out); e != 0 {
		t.Fatalf("SetAttr(%+v): %v", in, e)
	}
	return out
}

func TestSetAttr(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	p := join(dir, "f")
	writeFile(t, p, "0123456789", 0o644)
	e := lookup(t, f, fs.RootInode, "f")

	out := setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetMode, Mode: 0o600})
	if st := lstat(t, p); st.Mode&07777 != 0o600 || out.Attr.Mode != st.Mode {
		t.Errorf("chmod: host %o, out %o", st.Mode, out.Attr.Mode)
	}
	// Truncate without a handle (reopened O_WRONLY) and with one.
	setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetSize, Size: 4})
	if st := lstat(t, p); st.Size != 4 {
		t.Errorf("truncate: size %d", st.Size)
	}
	fh := open(t, f, e.Ino, unix.O_RDWR)
	out = setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetSize | fs.SetHandle, Handle: fh, Size: 100})
	if st := lstat(t, p); st.Size != 100 || out.Attr.Size != 100 {
		t.Errorf("ftruncate: size %d, out %d", st.Size, out.Attr.Size)
	}
	// A read-only handle cannot truncate, as ftruncate(2) says.
	ro := open(t, f, e.Ino, unix.O_RDONLY)
	var ao fs.AttrOut
	hf, _ := os.Open(p)
	herr := hf.Truncate(0)
	hf.Close()
	wantErrno(t, "ftruncate on O_RDONLY", f.SetAttr(rootCtx, e.Ino, &fs.SetAttrIn{Valid: fs.SetSize | fs.SetHandle, Handle: ro, Size: 1}, &ao), hostErrno(herr))
	wantErrno(t, "SetAttr with bad handle", f.SetAttr(rootCtx, e.Ino, &fs.SetAttrIn{Valid: fs.SetSize | fs.SetHandle, Handle: 999, Size: 1}, &ao), syscall.EBADF)
	f.Release(rootCtx, e.Ino, ro, 0)
	f.Release(rootCtx, e.Ino, fh, 0)

	// Times: explicit, NOW, and OMIT of the other.
	out = setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetAtime | fs.SetMtime, Atime: 1000, AtimeNsec: 5, Mtime: 2000, MtimeNsec: 7})
	st := lstat(t, p)
	if st.Atim.Sec != 1000 || st.Atim.Nsec != 5 || st.Mtim.Sec != 2000 || st.Mtim.Nsec != 7 || out.Attr.Mtime != 2000 {
		t.Errorf("utimes: atime %v mtime %v", st.Atim, st.Mtim)
	}
	setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetMtime | fs.SetMtimeNow})
	st = lstat(t, p)
	if st.Atim.Sec != 1000 || st.Mtim.Sec < 1e9 {
		t.Errorf("mtime now (atime omitted): atime %v mtime %v", st.Atim, st.Mtim)
	}
	wantErrno(t, "bad nsec", f.SetAttr(rootCtx, e.Ino, &fs.SetAttrIn{Valid: fs.SetAtime, AtimeNsec: 2e9}, &ao), syscall.EINVAL)

	// chown, and times on a symlink itself.
	if os.Geteuid() == 0 {
		out = setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetUid | fs.SetGid, Uid: 123, Gid: 456})
		if st := lstat(t, p); st.Uid != 123 || st.Gid != 456 || out.Attr.Uid != 123 {
			t.Errorf("chown: %d:%d", st.Uid, st.Gid)
		}
	}
	os.Symlink("f", join(dir, "l"))
	l := lookup(t, f, fs.RootInode, "l")
	setattr(t, f, l.Ino, fs.SetAttrIn{Valid: fs.SetMtime, Mtime: 3000})
	if st := lstat(t, join(dir, "l")); st.Mtim.Sec != 3000 {
		t.Errorf("symlink mtime %d", st.Mtim.Sec)
	}
	if st := lstat(t, p); st.Mtim.Sec == 3000 {
		t.Errorf("setting the symlink's mtime followed it")
	}
	wantErrno(t, "chmod symlink", f.SetAttr(rootCtx, l.Ino, &fs.SetAttrIn{Valid: fs.SetMode, Mode: 0o777}, &ao),
		hostErrno(unix.Fchmodat(unix.AT_FDCWD, join(dir, "l"), 0o777, unix.AT_SYMLINK_NOFOLLOW)))
	// Truncate a directory.
	os.Mkdir(join(dir, "d"), 0o755)
	d := lookup(t, f, fs.RootInode, "d")
	wantErrno(t, "truncate dir", f.SetAttr(rootCtx, d.Ino, &fs.SetAttrIn{Valid: fs.SetSize}, &ao), hostErrno(unix.Truncate(join(dir, "d"), 0)))
}

// TestKillSuidGid: the KILLPRIV_V2 duties on write, truncate, open and chown.
func TestKillSuidGid(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	p := join(dir, "f")
	writeFile(t, p, "data", 0o755)
	e := lookup(t, f, fs.RootInode, "f")
	mode := func() uint32 { st := lstat(t, p); return st.Mode & 07777 }
	set := func(m uint32) {
		if err := unix.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	fh := open(t, f, e.Ino, unix.O_RDWR)
	defer f.Release(rootCtx, e.Ino, fh, 0)

	if os.Geteuid() == 0 { // with CAP_FSETID the host keeps them
		set(0o6755)
		f.Write(rootCtx, e.Ino, fh, 0, &bufSource{[]byte("x")}, 0)
		if m := mode(); m != 0o6755 {
			t.Errorf("write without the flag changed mode to %o", m)
		}
	}
	f.Write(rootCtx, e.Ino, fh, 0, &bufSource{[]byte("x")}, fs.WriteKillSuidGid)
	if m := mode(); m != 0o755 {
		t.Errorf("write with kill: mode %o, want 755", m)
	}
	set(0o6745) // sgid without group exec is mandatory locking: kept
	f.Write(rootCtx, e.Ino, fh, 0, &bufSource{[]byte("x")}, fs.WriteKillSuidGid)
	if m := mode(); m != 0o2745 {
		t.Errorf("write with kill, g-x: mode %o, want 2745", m)
	}
	set(0o6755)
	setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetSize | fs.SetKillSuidGid, Size: 2})
	if m := mode(); m != 0o755 {
		t.Errorf("truncate with kill: mode %o", m)
	}
	set(0o6755)
	setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetSize | fs.SetHandle | fs.SetKillSuidGid, Handle: fh, Size: 1})
	if m := mode(); m != 0o755 {
		t.Errorf("ftruncate with kill: mode %o", m)
	}
	set(0o6755)
	var oo fs.OpenOut
	if errno := f.Open(rootCtx, e.Ino, unix.O_WRONLY|unix.O_TRUNC, fs.OpenKillSuidGid, &oo); errno != 0 {
		t.Fatal(errno)
	}
	f.Release(rootCtx, e.Ino, oo.Handle, 0)
	if m := mode(); m != 0o755 {
		t.Errorf("open O_TRUNC with kill: mode %o", m)
	}
	if os.Geteuid() == 0 {
		// chown as root: the host clears them itself.
		set(0o6755)
		setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetUid, Uid: 1000})
		if m := mode(); m != 0o755 {
			t.Errorf("chown: mode %o, want the host to clear suid/sgid", m)
		}
		// Owner and mode in one request: the mode asked for wins.
		setattr(t, f, e.Ino, fs.SetAttrIn{Valid: fs.SetUid | fs.SetMode, Uid: 2000, Mode: 0o4755})
		if m := mode(); m != 0o4755 {
			t.Errorf("chown+chmod u+s: mode %o, want 4755", m)
		}
	}
}

func TestMknodSymlinkLink(t *testing.T) {
	f, dir := newTestFS(t, Options{AllowDevices: true})
	var e fs.Entry
	for _, c := range []struct {
		name string
		mode uint32
		rdev uint32
		root bool
	}{
		{"fifo", unix.S_IFIFO | 0o600, 0, false},
		{"sock", unix.S_IFSOCK | 0o600, 0, false},
		{"reg", 0o600, 0, false},
		{"null", unix.S_IFCHR | 0o666, uint32(unix.Mkdev(1, 3)), true},
	} {
		if c.root && os.Geteuid() != 0 {
			continue
		}
		if errno := f.Mknod(rootCtx, fs.RootInode, []byte(c.name), c.mode, c.rdev, &e); errno != 0 {
			t.Errorf("Mknod %s: %v", c.name, errno)
			continue
		}
		st := lstat(t, join(dir, c.name))
		wantType := c.mode & unix.S_IFMT
		if wantType == 0 {
			wantType = unix.S_IFREG
		}
		if st.Mode != e.Attr.Mode || st.Mode&unix.S_IFMT != wantType || uint32(st.Rdev) != c.rdev || e.Attr.Rdev != c.rdev {
			t.Errorf("Mknod %s: host mode %o rdev %x, entry %o %x", c.name, st.Mode, st.Rdev, e.Attr.Mode, e.Attr.Rdev)
		}
	}
	wantErrno(t, "Mknod dir type", f.Mknod(rootCtx, fs.RootInode, []byte("x"), unix.S_IFDIR|0o755, 0, &e), syscall.EINVAL)
	wantErrno(t, "Mknod existing", f.Mknod(rootCtx, fs.RootInode, []byte("fifo"), unix.S_IFIFO|0o600, 0, &e),
		hostErrno(unix.Mknod(join(dir, "fifo"), unix.S_IFIFO|0o600, 0)))
	// Special files are not opened by the daemon.
	fifo := lookup(t, f, fs.RootInode, "fifo")
	wantErrno(t, "Open fifo", f.Open(rootCtx, fifo.Ino, unix.O_RDONLY, 0, &fs.OpenOut{}), syscall.EBADF)

	if errno := f.Symlink(rootCtx, fs.RootInode, []byte("sl"), []byte("some/target"), &e); errno != 0 {
		t.Fatal(errno)
	}
	if tgt, _ := os.Readlink(join(dir, "sl")); tgt != "some/target" || e.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("symlink target %q mode %o", tgt, e.Attr.Mode)
	}
	buf := make([]byte, 11)
	if n, errno := f.Readlink(rootCtx, e.Ino, buf); errno != 0 || string(buf[:n]) != "some/target" {
		t.Errorf("Readlink exact = %q, %v", buf[:n], errno)
	}
	if _, errno := f.Readlink(rootCtx, e.Ino, buf[:5]); errno != syscall.ENAMETOOLONG {
		t.Errorf("Readlink into short buf = %v", errno)
	}
	_, herr := os.Readlink(join(dir, "fifo"))
	if _, errno := f.Readlink(rootCtx, fifo.Ino, buf); errno != hostErrno(herr) {
		t.Errorf("Readlink of non-symlink = %v, host %v", errno, herr)
	}
	wantErrno(t, "Symlink empty target", f.Symlink(rootCtx, fs.RootInode, []byte("s2"), nil, &e), hostErrno(unix.Symlink("", join(dir, "s2"))))
	wantErrno(t, "Symlink existing", f.Symlink(rootCtx, fs.RootInode, []byte("sl"), []byte("x"), &e), hostErrno(unix.Symlink("x", join(dir, "sl"))))

	// Link: same inode, same ID, nlink 2; links a symlink itself.
	writeFile(t, join(dir, "orig"), "o", 0o644)
	o := lookup(t, f, fs.RootInode, "orig")
	if errno := f.Link(rootCtx, o.Ino, fs.RootInode, []byte("alias"), &e); errno != 0 {
		t.Fatal(errno)
	}
	if e.Ino != o.Ino || e.Attr.Nlink != 2 || lstat(t, join(dir, "alias")).Ino != o.Attr.Ino {
		t.Errorf("Link: entry %+v", e)
	}
	if n := f.inodes.nlookupOf(o.Ino); n != 2 {
		t.Errorf("Link: nlookup %d, want 2", n)
	}
	sl := lookup(t, f, fs.RootInode, "sl")
	if errno := f.Link(rootCtx, sl.Ino, fs.RootInode, []byte("sl2"), &e); errno != 0 {
		t.Fatal(errno)
	}
	if tgt, _ := os.Readlink(join(dir, "sl2")); tgt != "some/target" {
		t.Errorf("linked symlink reads %q", tgt)
	}
	wantErrno(t, "Link existing", f.Link(rootCtx, o.Ino, fs.RootInode, []byte("alias"), &e), hostErrno(os.Link(join(dir, "orig"), join(dir, "alias"))))
	os.Mkdir(join(dir, "d"), 0o755)
	dd := lookup(t, f, fs.RootInode, "d")
	wantErrno(t, "Link dir", f.Link(rootCtx, dd.Ino, fs.RootInode, []byte("dlink"), &e), hostErrno(os.Link(join(dir, "d"), join(dir, "dlink"))))
}

func TestRename(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "a"), "A", 0o644)
	writeFile(t, join(dir, "b"), "B", 0o644)
	os.Mkdir(join(dir, "d"), 0o755)
	d := lookup(t, f, fs.RootInode, "d")
	wantErrno(t, "NOREPLACE", f.Rename(rootCtx, fs.RootInode, []byte("a"), fs.RootInode, []byte("b"), unix.RENAME_NOREPLACE),
		hostErrno(unix.Renameat2(unix.AT_FDCWD, join(dir, "a"), unix.AT_FDCWD, join(dir, "b"), unix.RENAME_NOREPLACE)))
	if e := f.Rename(rootCtx, fs.RootInode, []byte("a"), fs.RootInode, []byte("b"), unix.RENAME_EXCHANGE); e != 0 {
		t.Fatal(e)
	}
	if a, _ := os.ReadFile(join(dir, "a")); string(a) != "B" {
		t.Errorf("EXCHANGE: a = %q", a)
	}
	if e := f.Rename(rootCtx, fs.RootInode, []byte("a"), d.Ino, []byte("moved"), 0); e != 0 {
		t.Fatal(e)
	}
	if m, _ := os.ReadFile(join(dir, "d", "moved")); string(m) != "B" {
		t.Errorf("moved = %q", m)
	}
	wantErrno(t, "missing source", f.Rename(rootCtx, fs.RootInode, []byte("a"), fs.RootInode, []byte("c"), 0),
		hostErrno(unix.Rename(join(dir, "a"), join(dir, "c"))))
	wantErrno(t, "bad flags", f.Rename(rootCtx, fs.RootInode, []byte("b"), fs.RootInode, []byte("c"), 0x80), syscall.EINVAL)
	if os.Geteuid() == 0 {
		// WHITEOUT leaves a 0/0 char device behind (needs CAP_MKNOD and fs support).
		errno := f.Rename(rootCtx, fs.RootInode, []byte("b"), fs.RootInode, []byte("c"), unix.RENAME_WHITEOUT)
		if errno == syscall.EINVAL || errno == syscall.EOPNOTSUPP {
			t.Logf("RENAME_WHITEOUT unsupported by the host fs: %v", errno)
		} else if errno != 0 {
			t.Errorf("WHITEOUT: %v", errno)
		} else if st := lstat(t, join(dir, "b")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("WHITEOUT left mode %o rdev %d", st.Mode, st.Rdev)
		}
	}
}

func TestTmpfile(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	var e fs.Entry
	var oo fs.OpenOut
	if errno := f.Tmpfile(rootCtx, fs.RootInode, 0o600, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Fatal(errno)
	}
	if e.Attr.Nlink != 0 || e.Attr.Mode != unix.S_IFREG|0o600 {
		t.Errorf("tmpfile attr %+v", e.Attr)
	}
	if n, errno := f.Write(rootCtx, e.Ino, oo.Handle, 0, &bufSource{[]byte("tmp")}, 0); errno != 0 || n != 3 {
		t.Fatalf("write tmpfile: %d %v", n, errno)
	}
	// It can be linked into the tree afterwards.
	var le fs.Entry
	if errno := f.Link(rootCtx, e.Ino, fs.RootInode, []byte("named"), &le); errno != 0 {
		t.Fatal(errno)
	}
	if got, _ := os.ReadFile(join(dir, "named")); string(got) != "tmp" || le.Ino != e.Ino {
		t.Errorf("linked tmpfile: %q, ino %d vs %d", got, le.Ino, e.Ino)
	}
	f.Release(rootCtx, e.Ino, oo.Handle, 0)
	wantErrno(t, "Tmpfile O_RDONLY", f.Tmpfile(rootCtx, fs.RootInode, 0o600, unix.O_RDONLY, &e, &oo), syscall.EINVAL)
}

func TestFallocateLseekCopy(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	var e fs.Entry
	var oo fs.OpenOut
	if errno := f.Create(rootCtx, fs.RootInode, []byte("f"), 0o644, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Fatal(errno)
	}
	fh := oo.Handle
	const mb = 1 << 20
	if errno := f.Fallocate(rootCtx, e.Ino, fh, 0, 4*mb, 0); errno != 0 {
		t.Fatal(errno)
	}
	if st := lstat(t, join(dir, "f")); st.Size != 4*mb {
		t.Errorf("fallocate size %d", st.Size)
	}
	if errno := f.Fallocate(rootCtx, e.Ino, fh, 4*mb, mb, unix.FALLOC_FL_KEEP_SIZE); errno != 0 {
		t.Fatal(errno)
	}
	if st := lstat(t, join(dir, "f")); st.Size != 4*mb || st.Blocks < 5*mb/512 {
		t.Errorf("keep size: size %d blocks %d", st.Size, st.Blocks)
	}
	// Data in [0,1M) and [3M,4M), hole punched in between.
	big := make([]byte, mb)
	for i := range big {
		big[i] = byte(i)
	}
	f.Write(rootCtx, e.Ino, fh, 0, &bufSource{big}, 0)
	f.Write(rootCtx, e.Ino, fh, 3*mb, &bufSource{big}, 0)
	if errno := f.Fallocate(rootCtx, e.Ino, fh, mb, 2*mb, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE); errno != 0 {
		t.Fatal(errno)
	}
	hole, errno := f.Lseek(rootCtx, e.Ino, fh, 0, unix.SEEK_HOLE)
	if errno != 0 || hole != mb {
		t.Errorf("SEEK_HOLE = %d, %v; want %d", hole, errno, mb)
	}
	data, errno := f.Lseek(rootCtx, e.Ino, fh, mb, unix.SEEK_DATA)
	if errno != 0 || data != 3*mb {
		t.Errorf("SEEK_DATA = %d, %v; want %d", data, errno, 3*mb)
	}
	_, errno = f.Lseek(rootCtx, e.Ino, fh, 5*mb, unix.SEEK_DATA)
	wantErrno(t, "SEEK_DATA past EOF", errno, syscall.ENXIO)
	_, errno = f.Lseek(rootCtx, e.Ino, fh, 0, 9)
	wantErrno(t, "bad whence", errno, syscall.EINVAL)
	wantErrno(t, "fallocate bad mode", f.Fallocate(rootCtx, e.Ino, fh, 0, 1, 0xff00), syscall.EOPNOTSUPP)

	// copy_file_range between two handles.
	var e2 fs.Entry
	var o2 fs.OpenOut
	if errno := f.Create(rootCtx, fs.RootInode, []byte("g"), 0o644, unix.O_RDWR, &e2, &o2); errno != 0 {
		t.Fatal(errno)
	}
	n, errno := f.CopyFileRange(rootCtx, e.Ino, fh, 3*mb+10, e2.Ino, o2.Handle, 5, 1000, 0)
	if errno != 0 || n != 1000 {
		t.Fatalf("CopyFileRange = %d, %v", n, errno)
	}
	got, _ := os.ReadFile(join(dir, "g"))
	if len(got) != 1005 || string(got[5:]) != string(big[10:1010]) {
		t.Errorf("copied %d bytes, wrong content", len(got))
	}
	_, errno = f.CopyFileRange(rootCtx, e.Ino, fh, 0, e2.Ino, o2.Handle, 0, 10, 1)
	wantErrno(t, "CopyFileRange flags", errno, syscall.EINVAL)

	// MapFd hands out the handle's fd.
	fd, errno := f.MapFd(rootCtx, e.Ino, fh, true)
	var st unix.Stat_t
	if errno != 0 || unix.Fstat(fd, &st) != nil || st.Ino != e.Attr.Ino {
		t.Errorf("MapFd = %d, %v", fd, errno)
	}
	ro := open(t, f, e.Ino, unix.O_RDONLY)
	if _, errno := f.MapFd(rootCtx, e.Ino, ro, true); errno != syscall.EACCES {
		t.Errorf("MapFd writable on O_RDONLY = %v", errno)
	}
	if _, errno := f.MapFd(rootCtx, e.Ino, 777, false); errno != syscall.EBADF {
		t.Errorf("MapFd bad handle = %v", errno)
	}

	// Statx, FsyncDir, SyncFs.
	var sx fs.StatxOut
	if errno := f.Statx(rootCtx, e.Ino, fh, true, 0, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx); errno != 0 || sx.Statx.Size != 4*mb || sx.Statx.Ino != e.Attr.Ino || sx.Statx.Mode != unix.S_IFREG|0o644 {
		t.Errorf("Statx = %v %+v", errno, sx.Statx)
	}
	dh := openDir(t, f, fs.RootInode)
	if errno := f.FsyncDir(rootCtx, fs.RootInode, dh, false); errno != 0 {
		t.Errorf("FsyncDir: %v", errno)
	}
	if errno := f.SyncFs(rootCtx, fs.RootInode); errno != 0 {
		t.Errorf("SyncFs: %v", errno)
	}
}

func TestReadOnly(t *testing.T) {
	f, dir := newTestFS(t, Options{ReadOnly: true, Xattr: true})
	writeFile(t, join(dir, "f"), "data", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	var x fs.Entry
	var oo fs.OpenOut
	var ao fs.AttrOut
	for what, errno := range map[string]syscall.Errno{
		"Open O_RDWR":  f.Open(rootCtx, e.Ino, unix.O_RDWR, 0, &oo),
		"Open O_TRUNC": f.Open(rootCtx, e.Ino, unix.O_RDONLY|unix.O_TRUNC, 0, &oo),
		"Create":       f.Create(rootCtx, fs.RootInode, []byte("n"), 0o644, unix.O_RDWR, &x, &oo),
		"Mkdir":        f.Mkdir(rootCtx, fs.RootInode, []byte("n"), 0o755, &x),
		"Unlink":       f.Unlink(rootCtx, fs.RootInode, []byte("f")),
		"Rename":       f.Rename(rootCtx, fs.RootInode, []byte("f"), fs.RootInode, []byte("g"), 0),
		"SetAttr":      f.SetAttr(rootCtx, e.Ino, &fs.SetAttrIn{Valid: fs.SetMode, Mode: 0o600}, &ao),
		"SetXattr":     f.SetXattr(rootCtx, e.Ino, []byte("user.x"), []byte("v"), 0),
		"Access W_OK":  f.Access(rootCtx, e.Ino, unix.W_OK),
	} {
		wantErrno(t, what, errno, syscall.EROFS)
	}
	fh := open(t, f, e.Ino, unix.O_RDONLY)
	s := newSink(10)
	if errno := f.Read(rootCtx, e.Ino, fh, 0, 10, s); errno != 0 || string(s.Bytes()) != "data" {
		t.Errorf("read on read-only FS: %q %v", s.Bytes(), errno)
	}
	if st := lstat(t, join(dir, "f")); st.Mode&0o777 != 0o644 {
		t.Errorf("mode changed on a read-only FS")
	}
}

func TestODirect(t *testing.T) {
	for _, pass := range []bool{false, true} {
		f, dir := newTestFS(t, Options{DirectIO: pass})
		writeFile(t, join(dir, "f"), "x", 0o644)
		e := lookup(t, f, fs.RootInode, "f")
		fh := open(t, f, e.Ino, unix.O_RDONLY|unix.O_DIRECT)
		h := f.handles.get(fh)
		fl, _ := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
		f.putHandle(h)
		if got := fl&unix.O_DIRECT != 0; got != pass {
			t.Errorf("DirectIO %v: host fd O_DIRECT %v", pass, got)
		}
	}
}

func TestOpenFlagsByOptions(t *testing.T) {
	for _, c := range []struct {
		opts          Options
		entryTimeout  bool
		fileFlags     uint32
		dirFlags      uint32
		wantPassthru  bool
		wantWriteback bool
		// locks: the client sends lock requests, so closes must reach
		// Flush; without them and without writeback, opens say NoFlush.
		locks bool
	}{
		{Options{Cache: CacheNever}, false, fs.OpenDirectIO | fs.OpenParallelDirectWrites | fs.OpenNoFlush, 0, false, false, false},
		{Options{Cache: CacheAuto}, true, fs.OpenNoFlush, 0, false, false, false},
		{Options{Cache: CacheAuto}, true, 0, 0, false, false, true},
		{Options{Cache: CacheAlways}, true, fs.OpenKeepCache | fs.OpenNoFlush, fs.OpenKeepCache | fs.OpenCacheDir, false, false, false},
		{Options{Cache: CacheAuto, Passthrough: true}, true, fs.OpenPassthrough | fs.OpenNoFlush, 0, true, false, false},
		{Options{Cache: CacheAuto, Passthrough: true}, true, fs.OpenPassthrough, 0, true, false, true},
		{Options{Cache: CacheAuto}, true, 0, 0, false, true, false},
	} {
		t.Run(c.opts.Cache.String(), func(t *testing.T) {
			f, dir := newTestFS(t, c.opts)
			f.ptPath = false // the opened passthrough file (kernels before 6.12); TestPassthroughPathFd has the other
			f.Init(rootCtx, &fs.InitInfo{Writeback: c.wantWriteback, Locks: c.locks})
			writeFile(t, join(dir, "f"), "x", 0o644)
			e := lookup(t, f, fs.RootInode, "f")
			if (e.EntryTimeout > 0) != c.entryTimeout || (e.AttrTimeout > 0) != c.entryTimeout {
				t.Errorf("timeouts %v/%v", e.EntryTimeout, e.AttrTimeout)
			}
			var oo fs.OpenOut
			if errno := f.Open(rootCtx, e.Ino, unix.O_WRONLY|unix.O_APPEND, 0, &oo); errno != 0 {
				t.Fatal(errno)
			}
			if oo.Flags != c.fileFlags {
				t.Errorf("file open flags %#x, want %#x", oo.Flags, c.fileFlags)
			}
			h := f.handles.get(oo.Handle)
			if c.wantPassthru {
				// Every open of the inode shares one backing file until
				// the last one is released; it only names the inode (the
				// kernel opens each open's own with its flags), read-only
				// even for this write open.
				var st unix.Stat_t
				ptfl, _ := unix.FcntlInt(uintptr(oo.PassthroughFd), unix.F_GETFL, 0)
				if unix.Fstat(oo.PassthroughFd, &st) != nil || st.Ino != e.Attr.Ino || ptfl&unix.O_ACCMODE != unix.O_RDONLY {
					t.Errorf("PassthroughFd %d: ino %d, flags %#x", oo.PassthroughFd, st.Ino, ptfl)
				}
				var o2 fs.OpenOut
				if errno := f.Open(rootCtx, e.Ino, unix.O_RDONLY, 0, &o2); errno != 0 || o2.PassthroughFd != oo.PassthroughFd || o2.Flags&fs.OpenPassthrough == 0 {
					t.Errorf("second open: %v, fd %d flags %#x; want fd %d", errno, o2.PassthroughFd, o2.Flags, oo.PassthroughFd)
				}
				f.Release(rootCtx, e.Ino, o2.Handle, 0)
				defer func() {
					if _, err := unix.FcntlInt(uintptr(oo.PassthroughFd), unix.F_GETFD, 0); err == nil {
						t.Errorf("passthrough fd still open after the last release")
					}
				}()
			}
			fl, _ := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
			if c.wantWriteback {
				// Reads must work on the "write-only" handle, and no O_APPEND.
				if fl&unix.O_ACCMODE != unix.O_RDWR || fl&unix.O_APPEND != 0 {
					t.Errorf("writeback: host flags %#x", fl)
				}
				if errno := f.Read(rootCtx, e.Ino, oo.Handle, 0, 1, newSink(1)); errno != 0 {
					t.Errorf("read on O_WRONLY handle with writeback: %v", errno)
				}
			} else if fl&unix.O_ACCMODE != unix.O_WRONLY || fl&unix.O_APPEND == 0 {
				t.Errorf("host flags %#x, want O_WRONLY|O_APPEND", fl)
			}
			f.putHandle(h)
			f.Release(rootCtx, e.Ino, oo.Handle, 0)
			var neg fs.Entry
			errno := f.Lookup(rootCtx, fs.RootInode, []byte("missing"), &neg)
			if c.opts.Cache != CacheNever {
				if errno != 0 || neg.Ino != 0 || neg.EntryTimeout != f.entryTimeout || neg.EntryTimeout == 0 {
					t.Errorf("negative entry: %v %+v", errno, neg)
				}
			} else if errno != syscall.ENOENT {
				t.Errorf("missing name: %v, want ENOENT", errno)
			}
			var do fs.OpenOut
			if errno := f.OpenDir(rootCtx, fs.RootInode, 0, &do); errno != 0 || do.Flags != c.dirFlags {
				t.Errorf("dir open flags %#x, want %#x (%v)", do.Flags, c.dirFlags, errno)
			}
		})
	}
}

func TestDestroy(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "x", 0o644)
	fds0 := openFds(t)
	e := lookup(t, f, fs.RootInode, "f")
	open(t, f, e.Ino, unix.O_RDONLY)
	openDir(t, f, fs.RootInode)
	f.Destroy()
	if got := openFds(t); got != fds0 {
		t.Errorf("fds after Destroy %d, want %d", got, fds0)
	}
	var ao fs.AttrOut
	wantErrno(t, "forgotten by Destroy", f.GetAttr(rootCtx, e.Ino, 0, false, &ao), syscall.ESTALE)
	if errno := f.GetAttr(rootCtx, fs.RootInode, 0, false, &ao); errno != 0 {
		t.Errorf("root after Destroy: %v", errno)
	}
}

// TestChmodProcFallback: the pre-6.6 chmod path through /proc/self/fd
// changes the inode an O_PATH fd holds.
func TestLinkProcFallback(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, join(dir, "f"), "", 0o644)
	os.Symlink("f", join(dir, "l"))
	procFd, _ := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY, 0)
	defer unix.Close(procFd)
	dfd, _ := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	defer unix.Close(dfd)
	for _, name := range []string{"f", "l"} {
		fd, err := unix.Open(join(dir, name), unix.O_PATH|unix.O_NOFOLLOW, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The fallback itself, as an unprivileged daemon runs it.
		if err := unix.Linkat(procFd, procName(fd), dfd, name+"2", unix.AT_SYMLINK_FOLLOW); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		unix.Close(fd)
		if a, b := lstat(t, join(dir, name)), lstat(t, join(dir, name+"2")); a.Ino != b.Ino {
			t.Errorf("%s: linked inode %d, want %d", name, b.Ino, a.Ino)
		}
	}
}

func TestChmodProcFallback(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, join(dir, "f"), "", 0o644)
	fd, err := unix.Open(join(dir, "f"), unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := chmodProc(fd, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, join(dir, "f")); st.Mode&07777 != 0o600 {
		t.Errorf("mode %o", st.Mode&07777)
	}
	var p procPath
	p.set(123456)
	if p.String() != "/proc/self/fd/123456" {
		t.Errorf("procPath %q", p.String())
	}
}

// TestCreatePassthroughFd: the inode of a file Create makes gets a
// passthrough file opened read-only whatever the create's access mode (the
// kernel opens each client open's own backing file with its flags), never
// the handle's own open file (a dup would keep the handle's access mode,
// and its status flags, for as long as the inode has passthrough opens);
// a later open shares it, and the last release closes it. The handle
// keeps the create's access mode.
func TestCreatePassthroughFd(t *testing.T) {
	f, _ := newTestFS(t, Options{Cache: CacheAuto, Passthrough: true})
	f.ptPath = false // the opened passthrough file (kernels before 6.12)
	f.Init(rootCtx, &fs.InitInfo{Locks: true})
	for _, c := range []struct {
		name  string
		flags uint32
	}{
		{"wronly", unix.O_WRONLY},
		{"rdwr", unix.O_RDWR},
		{"append", unix.O_WRONLY | unix.O_APPEND},
		{"rdonly", unix.O_RDONLY},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e fs.Entry
			var oo fs.OpenOut
			if errno := f.Create(rootCtx, fs.RootInode, []byte(c.name), 0o600, c.flags|unix.O_CREAT|unix.O_EXCL, &e, &oo); errno != 0 {
				t.Fatal(errno)
			}
			h := f.handles.get(oo.Handle)
			ptfl, err := unix.FcntlInt(uintptr(oo.PassthroughFd), unix.F_GETFL, 0)
			if oo.Flags&fs.OpenPassthrough == 0 || err != nil || ptfl&unix.O_ACCMODE != unix.O_RDONLY || ptfl&unix.O_APPEND != 0 {
				t.Fatalf("passthrough fd %d: open flags %#x, host flags %#x %v; want a read-only file without O_APPEND", oo.PassthroughFd, oo.Flags, ptfl, err)
			}
			hfl, _ := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
			if hfl&unix.O_ACCMODE != int(c.flags)&unix.O_ACCMODE || hfl&unix.O_APPEND != int(c.flags)&unix.O_APPEND {
				t.Errorf("handle's host flags %#x, want the create's %#x", hfl, c.flags)
			}
			// A dup would share the open file description: a status flag
			// set on one would show on the other. (O_NOATIME: the
			// passthrough file keeps the O_NONBLOCK it was opened with.)
			if _, err := unix.FcntlInt(uintptr(h.fd), unix.F_SETFL, hfl|unix.O_NOATIME); err != nil {
				t.Fatal(err)
			}
			ptfl, _ = unix.FcntlInt(uintptr(oo.PassthroughFd), unix.F_GETFL, 0)
			unix.FcntlInt(uintptr(h.fd), unix.F_SETFL, hfl)
			f.putHandle(h)
			if ptfl&unix.O_NOATIME != 0 {
				t.Errorf("the passthrough file is the handle's own open file")
			}
			var o2 fs.OpenOut
			if errno := f.Open(rootCtx, e.Ino, unix.O_RDWR, 0, &o2); errno != 0 || o2.PassthroughFd != oo.PassthroughFd {
				t.Errorf("second open: %v, passthrough fd %d, want %d", errno, o2.PassthroughFd, oo.PassthroughFd)
			}
			f.Release(rootCtx, e.Ino, o2.Handle, 0)
			f.Release(rootCtx, e.Ino, oo.Handle, 0)
			if _, err := unix.FcntlInt(uintptr(oo.PassthroughFd), unix.F_GETFD, 0); err == nil {
				t.Errorf("passthrough fd still open after the last release")
			}
		})
	}
}
