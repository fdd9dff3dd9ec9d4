package passthrough

import (
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// TestLeaseNoWait: with a write lease held on the host file, an open, a
// CREATE of the existing name and a truncating SETATTR asked with
// ctx.NoWait return fs.WouldWait at once, leaving nothing behind (no
// budget count, no fd, no mode or size change); a client's O_NONBLOCK
// open gets EWOULDBLOCK as open(2) gives it; without NoWait the open
// waits, its interrupt ends the wait with EINTR, and giving the lease up
// lets it complete. A handle opened without O_NONBLOCK does not have it.
func TestLeaseNoWait(t *testing.T) {
	f, dir := newTestFS(t, Options{MaxOpenPerUid: 8})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, join(dir, "l"), "leased", 0o666)
	e := lookup(t, f, fs.RootInode, "l")
	// The lease is this process's; any other open of the file (the
	// FS's included) conflicts with a write lease.
	lfd := holdLease(t, join(dir, "l"), unix.F_WRLCK)

	alice := asUid(1000)
	alice.NoWait = true
	fds := openFds(t)
	var out fs.OpenOut
	t0 := time.Now()
	wantErrno(t, "NoWait open of a leased file", f.Open(alice, e.Ino, unix.O_RDONLY, 0, &out), fs.WouldWait)
	var ce fs.Entry
	wantErrno(t, "NoWait create of a leased existing file",
		f.Create(alice, fs.RootInode, []byte("l"), 0o644, unix.O_RDWR, &ce, &out), fs.WouldWait)
	root := &fs.Context{NoWait: true}
	var ao fs.AttrOut
	wantErrno(t, "NoWait truncate (with chmod) of a leased file",
		f.SetAttr(root, e.Ino, &fs.SetAttrIn{Valid: fs.SetMode | fs.SetSize, Mode: 0o600, Size: 0}, &ao), fs.WouldWait)
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("the NoWait requests took %v: they waited", d)
	}
	if n := f.budget.Held(1000); n != 0 {
		t.Errorf("after WouldWait alice holds %d in the budget, want 0", n)
	}
	if n := openFds(t); n != fds {
		t.Errorf("after WouldWait %d fds are open, want %d", n, fds)
	}
	st, err := os.Stat(join(dir, "l"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o666 || st.Size() != 6 {
		t.Errorf("after WouldWait the file is %v, %d bytes; want -rw-rw-rw-, 6 bytes (unchanged)", st.Mode(), st.Size())
	}
	wantErrno(t, "client O_NONBLOCK open of a leased file",
		f.Open(alice, e.Ino, unix.O_RDONLY|unix.O_NONBLOCK, 0, &out), syscall.EWOULDBLOCK)

	// Without NoWait the open waits; an interrupt ends it.
	var intr fs.Interrupt
	waiter := asUid(1000)
	waiter.SetInterrupt(&intr)
	res := make(chan fs.Errno, 1)
	go func() {
		var o fs.OpenOut
		res <- f.Open(waiter, e.Ino, unix.O_RDONLY, 0, &o)
	}()
	select {
	case got := <-res:
		t.Fatalf("an open without NoWait returned %v before the lease was given up", got)
	case <-time.After(300 * time.Millisecond):
	}
	intr.Set()
	select {
	case got := <-res:
		wantErrno(t, "interrupted open", got, syscall.EINTR)
	case <-time.After(5 * time.Second):
		t.Fatal("an interrupted open still waits 5 s later")
	}
	intr.Clear()
	if n := f.budget.Held(1000); n != 0 {
		t.Errorf("after EINTR alice holds %d in the budget, want 0", n)
	}

	// Giving the lease up lets a waiting open complete.
	var o fs.OpenOut
	go func() { res <- f.Open(waiter, e.Ino, unix.O_RDONLY, 0, &o) }()
	time.Sleep(100 * time.Millisecond)
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-res:
		if got != 0 {
			t.Fatalf("open after the lease was given up: %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("open still waits 5 s after the lease was given up")
	}
	f.Release(waiter, e.Ino, o.Handle, 0)

	// No lease: a NoWait open succeeds, and its fd is not O_NONBLOCK.
	if errno := f.Open(alice, e.Ino, unix.O_RDONLY, 0, &out); errno != 0 {
		t.Fatalf("NoWait open with no lease: %v", errno)
	}
	h := f.handles.get(out.Handle)
	fl, err := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
	f.putHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Errorf("a handle opened without O_NONBLOCK has it (flags %#x)", fl)
	}
	f.Release(alice, e.Ino, out.Handle, 0)
}

// TestLeasePassthroughFd: with a read lease held on the host file, a read
// open in passthrough mode gets its inode's passthrough file without
// waiting and without breaking the lease (F_GETLEASE still F_RDLCK, as
// after a native read-only open): that file is opened read-only, never
// read-write (the kernel opens each client open's own backing file with
// that open's flags; the registered file only names the inode). A write
// open then breaks the lease, as natively: asked with NoWait it returns
// fs.WouldWait, leaving nothing behind, with the lease being broken;
// once the lease is given up it opens and shares the read-only
// passthrough file, closed with the last handle.
func TestLeasePassthroughFd(t *testing.T) {
	f, dir := newTestFS(t, Options{Cache: CacheAuto, Passthrough: true})
	f.ptPath = false // the opened passthrough file (kernels before 6.12); TestPassthroughPathFd has the other
	writeFile(t, join(dir, "r"), "leased", 0o644)
	e := lookup(t, f, fs.RootInode, "r")
	lfd := holdLease(t, join(dir, "r"), unix.F_RDLCK)
	nowait := &fs.Context{NoWait: true}
	res := make(chan fs.Errno, 1)
	var out fs.OpenOut
	go func() { res <- f.Open(nowait, e.Ino, unix.O_RDONLY, 0, &out) }()
	select {
	case got := <-res:
		if got != 0 {
			t.Fatalf("read open with a read lease held: %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read open in passthrough mode waited for a read lease's break")
	}
	if out.Flags&fs.OpenPassthrough == 0 || out.PassthroughFd < 0 {
		t.Fatalf("no passthrough file (flags %#x, fd %d)", out.Flags, out.PassthroughFd)
	}
	fl, err := unix.FcntlInt(uintptr(out.PassthroughFd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	// O_NONBLOCK it keeps: no I/O is done on it (getPassthroughFd).
	if fl&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("passthrough file flags %#x, want O_RDONLY", fl)
	}
	if got, err := unix.FcntlInt(uintptr(lfd), unix.F_GETLEASE, 0); err != nil || got != unix.F_RDLCK {
		t.Fatalf("after a read-only passthrough open F_GETLEASE = %d, %v; want F_RDLCK (%d): the lease is being broken", got, err, unix.F_RDLCK)
	}

	fds := openFds(t)
	var wout fs.OpenOut
	wantErrno(t, "NoWait write open of a read-leased file", f.Open(nowait, e.Ino, unix.O_WRONLY, 0, &wout), fs.WouldWait)
	if n := openFds(t); n != fds {
		t.Errorf("after WouldWait %d fds are open, want %d", n, fds)
	}
	if got, err := unix.FcntlInt(uintptr(lfd), unix.F_GETLEASE, 0); err != nil || got != unix.F_UNLCK {
		t.Errorf("after a write open F_GETLEASE = %d, %v; want F_UNLCK (%d), the lease being broken", got, err, unix.F_UNLCK)
	}
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
		t.Fatal(err)
	}
	if errno := f.Open(nowait, e.Ino, unix.O_WRONLY, 0, &wout); errno != 0 {
		t.Fatalf("write open after the lease was given up: %v", errno)
	}
	if wout.Flags&fs.OpenPassthrough == 0 || wout.PassthroughFd != out.PassthroughFd {
		t.Errorf("write open: flags %#x, passthrough fd %d; want the inode's shared fd %d", wout.Flags, wout.PassthroughFd, out.PassthroughFd)
	}
	h := f.handles.get(wout.Handle)
	hfl, _ := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
	f.putHandle(h)
	if hfl&unix.O_ACCMODE != unix.O_WRONLY {
		t.Errorf("write handle's host flags %#x, want O_WRONLY", hfl)
	}
	f.Release(rootCtx, e.Ino, out.Handle, 0)
	if _, err := unix.FcntlInt(uintptr(wout.PassthroughFd), unix.F_GETFD, 0); err != nil {
		t.Errorf("passthrough fd closed while the write handle still uses it")
	}
	f.Release(rootCtx, e.Ino, wout.Handle, 0)
	if _, err := unix.FcntlInt(uintptr(wout.PassthroughFd), unix.F_GETFD, 0); err == nil {
		t.Errorf("passthrough fd still open after the last release")
	}
}

// holdLease opens path read-only and takes a lease of type typ
// (F_RDLCK, F_WRLCK) on it, held by this process until the test ends;
// it skips the test if the host refuses the lease. It returns the
// lease's fd.
func holdLease(t *testing.T, path string, typ int) int {
	t.Helper()
	lfd := hostOpen(t, path, unix.O_RDONLY)
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, typ); err != nil {
		t.Skipf("F_SETLEASE %d: %v (needs to own the file or CAP_LEASE)", typ, err)
	}
	return lfd
}

// TestPassthroughPathFd: where the kernel registers O_PATH backing files
// (ptPath, Linux 6.12+), a passthrough open's PassthroughFd is its inode's
// own O_PATH fd: no file is opened for it (one fd per open, the handle's),
// so a read lease another process holds on the host file is left alone
// with no open that might break it, and nothing is left after the
// release. Create hands out the new inode's O_PATH fd the same way.
func TestPassthroughPathFd(t *testing.T) {
	f, dir := newTestFS(t, Options{Cache: CacheAuto, Passthrough: true})
	f.ptPath = true
	writeFile(t, join(dir, "r"), "leased", 0o644)
	e := lookup(t, f, fs.RootInode, "r")
	lfd := holdLease(t, join(dir, "r"), unix.F_RDLCK)
	fds := openFds(t)
	var out fs.OpenOut
	if errno := f.Open(&fs.Context{NoWait: true}, e.Ino, unix.O_RDONLY, 0, &out); errno != 0 {
		t.Fatalf("read open with a read lease held: %v", errno)
	}
	in := f.inodes.get(e.Ino)
	inFd := in.fd
	f.inodes.put(in)
	fl, err := unix.FcntlInt(uintptr(out.PassthroughFd), unix.F_GETFL, 0)
	if out.Flags&fs.OpenPassthrough == 0 || out.PassthroughFd != inFd || err != nil || fl&unix.O_PATH == 0 {
		t.Errorf("PassthroughFd %d (flags %#x, %v, open flags %#x), want the inode's O_PATH fd %d", out.PassthroughFd, fl, err, out.Flags, inFd)
	}
	if n := openFds(t) - fds; n != 1 {
		t.Errorf("a passthrough open opened %d fds, want 1 (the handle's)", n)
	}
	if got, err := unix.FcntlInt(uintptr(lfd), unix.F_GETLEASE, 0); err != nil || got != unix.F_RDLCK {
		t.Errorf("after a read-only passthrough open F_GETLEASE = %d, %v; want F_RDLCK", got, err)
	}
	f.Release(rootCtx, e.Ino, out.Handle, 0)
	if n := openFds(t) - fds; n != 0 {
		t.Errorf("%d fds left after the release", n)
	}

	var ce fs.Entry
	var co fs.OpenOut
	if errno := f.Create(rootCtx, fs.RootInode, []byte("new"), 0o644, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, &ce, &co); errno != 0 {
		t.Fatal(errno)
	}
	in = f.inodes.get(ce.Ino)
	inFd = in.fd
	f.inodes.put(in)
	if co.Flags&fs.OpenPassthrough == 0 || co.PassthroughFd != inFd {
		t.Errorf("create: PassthroughFd %d (open flags %#x), want the new inode's fd %d", co.PassthroughFd, co.Flags, inFd)
	}
	f.Release(rootCtx, ce.Ino, co.Handle, 0)
}
