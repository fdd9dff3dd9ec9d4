package passthrough

import (
	"bytes"
	"math"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

func TestXattr(t *testing.T) {
	f, dir := newTestFS(t, Options{Xattr: true})
	p := join(dir, "f")
	writeFile(t, p, "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	if err := unix.Setxattr(p, "user.probe", []byte("x"), 0); err != nil {
		t.Skipf("host fs has no user xattrs: %v", err)
	}
	unix.Removexattr(p, "user.probe")

	if errno := f.SetXattr(rootCtx, e.Ino, []byte("user.k"), []byte("value"), 0); errno != 0 {
		t.Fatal(errno)
	}
	hv := make([]byte, 16)
	if n, err := unix.Getxattr(p, "user.k", hv); err != nil || string(hv[:n]) != "value" {
		t.Errorf("host sees %q, %v", hv[:n], err)
	}
	if n, errno := f.GetXattr(rootCtx, e.Ino, []byte("user.k"), nil); errno != 0 || n != 5 {
		t.Errorf("size probe = %d, %v", n, errno)
	}
	buf := make([]byte, 5)
	if n, errno := f.GetXattr(rootCtx, e.Ino, []byte("user.k"), buf); errno != 0 || string(buf[:n]) != "value" {
		t.Errorf("GetXattr = %q, %v", buf[:n], errno)
	}
	if _, errno := f.GetXattr(rootCtx, e.Ino, []byte("user.k"), buf[:4]); errno != syscall.ERANGE {
		t.Errorf("GetXattr into short buf = %v, want ERANGE", errno)
	}
	_, herr := unix.Getxattr(p, "user.none", buf)
	if _, errno := f.GetXattr(rootCtx, e.Ino, []byte("user.none"), buf); errno != hostErrno(herr) {
		t.Errorf("GetXattr missing = %v, host %v", errno, herr)
	}
	wantErrno(t, "XATTR_CREATE existing", f.SetXattr(rootCtx, e.Ino, []byte("user.k"), []byte("v"), unix.XATTR_CREATE),
		hostErrno(unix.Setxattr(p, "user.k", []byte("v"), unix.XATTR_CREATE)))
	wantErrno(t, "XATTR_REPLACE missing", f.SetXattr(rootCtx, e.Ino, []byte("user.n"), []byte("v"), unix.XATTR_REPLACE),
		hostErrno(unix.Setxattr(p, "user.n", []byte("v"), unix.XATTR_REPLACE)))
	wantErrno(t, "bad flags", f.SetXattr(rootCtx, e.Ino, []byte("user.n"), nil, 8), syscall.EINVAL)
	f.SetXattr(rootCtx, e.Ino, []byte("user.k2"), []byte("2"), 0)
	n, errno := f.ListXattr(rootCtx, e.Ino, nil)
	list := make([]byte, n)
	if m, errno2 := f.ListXattr(rootCtx, e.Ino, list); errno != 0 || errno2 != 0 || m != n ||
		!bytes.Contains(list, []byte("user.k\x00")) || !bytes.Contains(list, []byte("user.k2\x00")) {
		t.Errorf("ListXattr = %q (%d, %v, %v)", list, n, errno, errno2)
	}
	if n > 1 {
		if _, errno := f.ListXattr(rootCtx, e.Ino, list[:n-1]); errno != syscall.ERANGE {
			t.Errorf("ListXattr short = %v", errno)
		}
	}
	if errno := f.RemoveXattr(rootCtx, e.Ino, []byte("user.k")); errno != 0 {
		t.Fatal(errno)
	}
	wantErrno(t, "remove missing", f.RemoveXattr(rootCtx, e.Ino, []byte("user.k")), hostErrno(unix.Removexattr(p, "user.k")))

	// On a directory, a FIFO (never opened) and a symlink (the link
	// itself, never its target).
	os.Mkdir(join(dir, "d"), 0o755)
	d := lookup(t, f, fs.RootInode, "d")
	if errno := f.SetXattr(rootCtx, d.Ino, []byte("user.d"), []byte("dir"), 0); errno != 0 {
		t.Errorf("dir xattr: %v", errno)
	}
	unix.Mkfifo(join(dir, "fifo"), 0o644)
	fi := lookup(t, f, fs.RootInode, "fifo")
	_, herr = unix.Getxattr(join(dir, "fifo"), "user.x", buf)
	if _, errno := f.GetXattr(rootCtx, fi.Ino, []byte("user.x"), buf); errno != hostErrno(herr) {
		t.Errorf("fifo GetXattr = %v, host %v", errno, herr)
	}
	os.Symlink("f", join(dir, "l"))
	l := lookup(t, f, fs.RootInode, "l")
	wantErrno(t, "user xattr on symlink", f.SetXattr(rootCtx, l.Ino, []byte("user.l"), []byte("x"), 0),
		hostErrno(unix.Lsetxattr(join(dir, "l"), "user.l", []byte("x"), 0)))
	if os.Geteuid() == 0 {
		if errno := f.SetXattr(rootCtx, l.Ino, []byte("trusted.l"), []byte("link"), 0); errno != 0 {
			t.Errorf("trusted xattr on symlink: %v", errno)
		}
		if n, err := unix.Lgetxattr(join(dir, "l"), "trusted.l", hv); err != nil || string(hv[:n]) != "link" {
			t.Errorf("symlink's own xattr: %q %v", hv[:n], err)
		}
		if _, err := unix.Getxattr(p, "trusted.l", hv); err == nil {
			t.Errorf("xattr landed on the symlink's target")
		}
	}
	// Names the syscalls refuse.
	if _, errno := f.GetXattr(rootCtx, e.Ino, bytes.Repeat([]byte("u"), 300), buf); errno != syscall.ERANGE {
		t.Errorf("long name = %v", errno)
	}
	if errno := f.SetXattr(rootCtx, e.Ino, []byte("user.big"), make([]byte, 1<<16+1), 0); errno != syscall.E2BIG {
		t.Errorf("huge value = %v", errno)
	}

	off, _ := newTestFS(t, Options{})
	if _, errno := off.GetXattr(rootCtx, fs.RootInode, []byte("user.k"), buf); errno != syscall.ENOSYS {
		t.Errorf("xattrs off: GetXattr = %v, want ENOSYS", errno)
	}
}

func TestPosixLocks(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "0123456789", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	h1 := open(t, f, e.Ino, unix.O_RDWR)
	h2 := open(t, f, e.Ino, unix.O_RDWR)
	wr := func(s, end uint64) *fs.Lock { return &fs.Lock{Start: s, End: end, Type: unix.F_WRLCK} }
	rd := func(s, end uint64) *fs.Lock { return &fs.Lock{Start: s, End: end, Type: unix.F_RDLCK} }

	lk := wr(0, 99)
	lk.Pid = 4242
	if errno := f.SetLk(rootCtx, e.Ino, h1, 1, lk, false, false); errno != 0 {
		t.Fatal(errno)
	}
	var out fs.Lock
	if errno := f.GetLk(rootCtx, e.Ino, h2, 2, wr(50, 60), &out); errno != 0 || out.Type != unix.F_WRLCK || out.Start != 0 || out.End != 99 || out.Pid != 4242 {
		t.Errorf("GetLk by other owner = %v %+v, want the holder's pid 4242", errno, out)
	}
	wantErrno(t, "conflicting SetLk", f.SetLk(rootCtx, e.Ino, h2, 2, rd(50, 60), false, false), syscall.EAGAIN)
	// Same owner through another handle: no conflict.
	if errno := f.GetLk(rootCtx, e.Ino, h2, 1, wr(0, 10), &out); errno != 0 || out.Type != unix.F_UNLCK {
		t.Errorf("GetLk by the holder = %v %+v", errno, out)
	}
	if errno := f.SetLk(rootCtx, e.Ino, h2, 1, rd(50, 60), false, false); errno != 0 {
		t.Errorf("same owner relock: %v", errno)
	}
	// Disjoint range: fine.
	if errno := f.SetLk(rootCtx, e.Ino, h2, 2, wr(100, math.MaxUint64), false, false); errno != 0 {
		t.Errorf("disjoint lock: %v", errno)
	}
	if errno := f.GetLk(rootCtx, e.Ino, h1, 1, wr(1000, 2000), &out); errno != 0 || out.Type != unix.F_WRLCK || out.Start != 100 || out.End != math.MaxInt64 {
		t.Errorf("GetLk of a to-EOF lock = %v %+v", errno, out)
	}

	// A waiting lock gives up with EINTR when interrupted.
	var intr fs.Interrupt
	ctx := &fs.Context{}
	ctx.SetInterrupt(&intr)
	time.AfterFunc(50*time.Millisecond, intr.Set)
	start := time.Now()
	wantErrno(t, "interrupted wait", f.SetLk(ctx, e.Ino, h2, 2, wr(0, 0), true, false), syscall.EINTR)
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Errorf("interrupted wait took %v", d)
	}
	// A waiting lock gets it when the holder unlocks.
	done := make(chan syscall.Errno, 1)
	go func() { done <- f.SetLk(rootCtx, e.Ino, h2, 2, wr(0, 0), true, false) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case errno := <-done:
		t.Fatalf("wait returned early: %v", errno)
	default:
	}
	f.SetLk(rootCtx, e.Ino, h1, 1, &fs.Lock{Start: 0, End: math.MaxUint64, Type: unix.F_UNLCK}, false, false)
	select {
	case errno := <-done:
		if errno != 0 {
			t.Errorf("waited lock: %v", errno)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waited lock never granted")
	}
	// Flush of owner 2 drops its locks.
	if errno := f.SetLk(rootCtx, e.Ino, h1, 1, wr(0, 0), false, false); errno != syscall.EAGAIN {
		t.Errorf("owner 2 should hold byte 0: %v", errno)
	}
	f.Flush(rootCtx, e.Ino, h2, 2)
	if errno := f.SetLk(rootCtx, e.Ino, h1, 1, wr(0, 0), false, false); errno != 0 {
		t.Errorf("after owner 2's flush: %v", errno)
	}
	// OFD locks conflict with a host process's traditional locks.
	hf, _ := os.OpenFile(join(dir, "f"), os.O_RDWR, 0)
	defer hf.Close()
	hl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 500, Len: 10}
	if err := unix.FcntlFlock(hf.Fd(), unix.F_SETLK, &hl); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "against a host lock", f.SetLk(rootCtx, e.Ino, h1, 3, wr(505, 505), false, false), syscall.EAGAIN)

	// Bad input.
	wantErrno(t, "end < start", f.SetLk(rootCtx, e.Ino, h1, 1, wr(10, 5), false, false), syscall.EINVAL)
	wantErrno(t, "bad type", f.SetLk(rootCtx, e.Ino, h1, 1, &fs.Lock{Type: 9}, false, false), syscall.EINVAL)
	wantErrno(t, "start > MaxInt64", f.SetLk(rootCtx, e.Ino, h1, 1, wr(1<<63, math.MaxUint64), false, false), syscall.EINVAL)
	wantErrno(t, "bad handle", f.SetLk(rootCtx, e.Ino, 999, 1, wr(0, 1), false, false), syscall.EBADF)
	wantErrno(t, "GetLk F_UNLCK", f.GetLk(rootCtx, e.Ino, h1, 1, &fs.Lock{Type: unix.F_UNLCK}, &out), syscall.EINVAL)

	f.Release(rootCtx, e.Ino, h1, 0)
	f.Release(rootCtx, e.Ino, h2, 0)

	// An OFD lock (owner = the client's open file) is dropped by Release
	// alone: the client sends no unlock and no FLUSH with that owner.
	h3 := open(t, f, e.Ino, unix.O_RDWR)
	h4 := open(t, f, e.Ino, unix.O_RDWR)
	if errno := f.SetLk(rootCtx, e.Ino, h3, 77, wr(0, 9), false, false); errno != 0 {
		t.Fatal(errno)
	}
	f.Flush(rootCtx, e.Ino, h3, 1) // a close by some process: not this owner
	wantErrno(t, "OFD lock held", f.SetLk(rootCtx, e.Ino, h4, 78, wr(0, 0), false, false), syscall.EAGAIN)
	f.Release(rootCtx, e.Ino, h3, 0)
	if errno := f.SetLk(rootCtx, e.Ino, h4, 78, wr(0, 0), false, false); errno != 0 {
		t.Errorf("lock after the OFD holder's release: %v", errno)
	}
	f.Release(rootCtx, e.Ino, h4, 0)
}

func TestFlock(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	h1 := open(t, f, e.Ino, unix.O_RDONLY)
	h2 := open(t, f, e.Ino, unix.O_RDONLY)
	ex := &fs.Lock{Type: unix.F_WRLCK}
	if errno := f.SetLk(rootCtx, e.Ino, h1, 1, ex, false, true); errno != 0 {
		t.Fatal(errno)
	}
	wantErrno(t, "second flock", f.SetLk(rootCtx, e.Ino, h2, 2, ex, false, true), syscall.EAGAIN)
	var intr fs.Interrupt
	intr.Set()
	ctx := &fs.Context{}
	ctx.SetInterrupt(&intr)
	wantErrno(t, "interrupted flock wait", f.SetLk(ctx, e.Ino, h2, 2, ex, true, true), syscall.EINTR)
	// Release closes the fd, which drops the flock.
	f.Release(rootCtx, e.Ino, h1, 0)
	if errno := f.SetLk(rootCtx, e.Ino, h2, 2, ex, false, true); errno != 0 {
		t.Errorf("flock after the holder's release: %v", errno)
	}
	if errno := f.SetLk(rootCtx, e.Ino, h2, 2, &fs.Lock{Type: unix.F_UNLCK}, false, true); errno != 0 {
		t.Errorf("unlock: %v", errno)
	}
	f.Release(rootCtx, e.Ino, h2, 0)
}
